"""cocotb testbench of one parameter memory alone (tests/test_hw_param_memory.py runs it): every word
read back equals its image (or zero, for a memory without one), then words written through the write
port read back as written.

Settings (BEBERT_COSIM): depth, width, image (one hexadecimal string per word, or None: the memory
starts all zeros), chunk (None: whole words written; C: chunks of C bits, ``wchunk`` choosing which),
seed. Chunked writes come in random order, every chunk of some words, then single chunks over words
written before and over one word never written. Every read is four-state checked
(streams.resolved): a word that a simulator or a netlist leaves X fails.
"""

import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from bebert.hw.flows.cosim import settings
from bebert.hw.testbench.streams import resolved


async def read(dut, address: int) -> int:
    dut.raddr.value = address
    await RisingEdge(dut.clk)  # the address is registered at this edge; the word follows it
    await ReadOnly()
    word = resolved(dut.rdata)
    await RisingEdge(dut.clk)
    return word


def writes(rng: random.Random, depth: int, width: int, chunk: int | None) -> list[tuple[int, int, int]]:
    """(address, chunk index, data) of each write: whole words (chunk index 0) or chunks (module doc)."""
    addresses = rng.sample(range(depth), min(depth, 8))
    if chunk is None:
        return [(address, 0, rng.getrandbits(width)) for address in addresses]
    chunks = -(-width // chunk)
    order = [(address, j) for address in addresses for j in range(chunks)]
    rng.shuffle(order)
    order += [(rng.choice(addresses), rng.randrange(chunks)) for _ in range(4)]  # partial overwrites
    others = sorted(set(range(depth)) - set(addresses))
    if others:
        order.append((rng.choice(others), rng.randrange(chunks)))  # one chunk of a word never written
    return [(address, j, rng.getrandbits(chunk)) for address, j in order]


@cocotb.test()
async def reads_its_image_and_what_is_written(dut):
    s = settings()
    depth, width, chunk = s["depth"], s["width"], s.get("chunk")
    image = [0] * depth if s["image"] is None else [int(word, 16) for word in s["image"]]
    rng = random.Random(s["seed"])
    Clock(dut.clk, 10, unit="ns").start()
    dut.we.value = 0
    dut.raddr.value = 0
    dut.waddr.value = 0
    dut.wchunk.value = 0
    dut.wdata.value = 0
    await RisingEdge(dut.clk)
    for address in range(depth):
        word = await read(dut, address)
        assert word == image[address], f"word {address}: read {word:#x}, image {image[address]:#x}"
    words = list(image)
    size = chunk or width
    for address, j, data in writes(rng, depth, width, chunk):
        mask = ((1 << size) - 1) << (j * size)
        words[address] = (words[address] & ~mask | data << (j * size)) & ((1 << width) - 1)
        dut.waddr.value, dut.wchunk.value, dut.wdata.value, dut.we.value = address, j, data, 1
        await RisingEdge(dut.clk)
    dut.we.value = 0
    for address in range(depth):
        word = await read(dut, address)
        assert word == words[address], f"word {address} after the writes: read {word:#x}, want {words[address]:#x}"
