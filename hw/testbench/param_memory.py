"""cocotb testbench of one parameter memory alone (tests/test_hw_param_memory.py runs it): every word
read back equals its image, then words written through the write port read back as written.

Settings (BEBERT_COSIM): depth, width, image (one hexadecimal string per word), seed. Every read is
four-state checked (streams.resolved): a word that a simulator or a netlist leaves X fails.
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


@cocotb.test()
async def reads_its_image_and_what_is_written(dut):
    s = settings()
    depth, width = s["depth"], s["width"]
    image = [int(word, 16) for word in s["image"]]
    rng = random.Random(s["seed"])
    Clock(dut.clk, 10, unit="ns").start()
    dut.we.value = 0
    dut.raddr.value = 0
    dut.waddr.value = 0
    dut.wdata.value = 0
    await RisingEdge(dut.clk)
    for address in range(depth):
        word = await read(dut, address)
        assert word == image[address], f"word {address}: read {word:#x}, image {image[address]:#x}"
    written = {}
    for address in rng.sample(range(depth), min(depth, 8)):
        written[address] = rng.getrandbits(width)
        dut.waddr.value, dut.wdata.value, dut.we.value = address, written[address], 1
        await RisingEdge(dut.clk)
    dut.we.value = 0
    for address in range(depth):
        want = written.get(address, image[address])
        word = await read(dut, address)
        assert word == want, f"word {address} after the writes: read {word:#x}, want {want:#x}"
