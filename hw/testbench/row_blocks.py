"""cocotb testbenches of the row gearbox and the row store alone (tests/test_hw_row_gearbox.py and
tests/test_hw_row_store.py run them in Verilator and Icarus).

Settings (BEBERT_COSIM): the block's shape fields (values, bits, signed, in_width and out_width for
the gearbox; rows, values, bits, in_width and out_width for the store) and a seed.

* ``gearbox_rows_pass_unchanged``: three rows back to back (cycles checked against the model),
  three more with random pauses on both streams, every beat out equal to the row that went in;
* ``row_store_reads_back``: every row written in a shuffled order with gaps, the first again over
  its old codes, each ``written`` pulse naming its row; every (row, beat) read back two cycles
  after its address.

No X after reset on any output (testbench/streams.py).
"""

from __future__ import annotations

import cocotb
import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge, with_timeout
from cocotb.utils import get_sim_time

from bebert.hw.blocks.row_gearbox import GearboxShape
from bebert.hw.blocks.row_store import READ_LATENCY, RowStoreShape
from bebert.hw.flows.cosim import settings
from bebert.hw.testbench.streams import StreamSink, StreamSource, pack, resolved, start_after_reset


def gearbox_shape(s: dict) -> GearboxShape:
    return GearboxShape(s["values"], s["bits"], s["signed"], s["in_width"], s["out_width"])


def random_rows(count: int, values: int, bits: int, is_signed: bool, rng) -> np.ndarray:
    low, high = (-(1 << (bits - 1)), 1 << (bits - 1)) if is_signed else (0, 1 << bits)
    rows = rng.integers(low, high, size=(count, values))
    rows[0, 0], rows[-1, -1] = low, high - 1
    return rows


def beats(rows: np.ndarray, width: int) -> list[list[int]]:
    """Rows as beats of ``width`` lanes, the last beat of each zero-padded."""
    out = []
    for row in rows:
        padded = np.concatenate([row, np.zeros(-len(row) % width, dtype=np.int64)])
        out += [list(padded[i:i + width]) for i in range(0, len(padded), width)]
    return out


@cocotb.test()
async def gearbox_rows_pass_unchanged(dut):
    s = settings()
    shape, rng = gearbox_shape(s), np.random.default_rng(s["seed"])
    dut.row_in__valid.value, dut.row_out__ready.value = 0, 0
    await start_after_reset(dut, ("row_in__ready", "row_out__valid", "busy"))
    mask = (1 << shape.bits) - 1
    for gap in (0.0, 0.3):
        rows = random_rows(3, shape.values, shape.bits, shape.signed, rng)
        source = StreamSource(dut, "row_in", dut.clk, gap=gap, seed=s["seed"])
        sink = StreamSink(dut, "row_out", dut.clk, gap=gap, seed=s["seed"] + 1)
        started = get_sim_time("ns")
        sending = cocotb.start_soon(source.send([pack(b, shape.bits) for b in beats(rows, shape.in_width)]))
        got = await with_timeout(sink.receive(3 * shape.out_beats), 100 * shape.rows_cycles(3) + 1_000, "ns")
        await sending
        cycles = round((get_sim_time("ns") - started) / 10)
        want = [pack(b, shape.bits) for b in beats(rows, shape.out_width)]
        for index, (word, expected) in enumerate(zip(got, want)):
            assert word == expected, f"beat {index}: {word:#x}, the row had {expected:#x} (lanes of {mask:#x})"
        if gap == 0.0:
            assert cycles == shape.rows_cycles(3), f"{cycles} cycles, the model says {shape.rows_cycles(3)}"


async def record_written(dut, pulses: list[int]):
    """Every row the ``written`` pulse names, edge by edge."""
    while True:
        await RisingEdge(dut.clk)
        await ReadOnly()
        if resolved(dut.written):
            pulses.append(resolved(dut.written_row))


@cocotb.test()
async def row_store_reads_back(dut):
    s = settings()
    shape = RowStoreShape(s["rows"], s["values"], s["bits"], s["in_width"], s["out_width"])
    rng = np.random.default_rng(s["seed"])
    dut.write__valid.value, dut.read_row.value, dut.read_beat.value = 0, 0, 0
    await start_after_reset(dut, ("write__ready", "written", "written_row", "read_data"))
    pulses = []
    cocotb.start_soon(record_written(dut, pulses))
    order = [int(r) for r in rng.permutation(shape.rows)] + [0]  # every row, then the first over its old codes
    final = {}
    for row in order:
        codes = rng.integers(0, 1 << shape.bits, size=shape.in_beats * shape.in_width)
        final[row] = codes
        for b in range(shape.in_beats):
            while rng.random() < 0.3:  # a gap
                dut.write__valid.value = 0
                await RisingEdge(dut.clk)
            lanes = codes[b * shape.in_width:(b + 1) * shape.in_width]
            dut.write__payload.value = pack(lanes, shape.bits) | row << (shape.in_width * shape.bits)
            dut.write__valid.value = 1
            await RisingEdge(dut.clk)  # the beat is taken at this edge (the store is always ready)
    dut.write__valid.value = 0
    await RisingEdge(dut.clk)
    await RisingEdge(dut.clk)
    assert pulses == order, f"written pulses for rows {pulses}; the rows written were {order}"
    for row in range(shape.rows):
        padded = np.concatenate([final[row], np.zeros(shape.out_width, dtype=np.int64)])
        for b in range(shape.out_beats):
            dut.read_row.value, dut.read_beat.value = row, b
            for _ in range(READ_LATENCY):
                await RisingEdge(dut.clk)
            await ReadOnly()
            lanes = min(shape.out_width, shape.values - b * shape.out_width)
            word = resolved(dut.read_data) & ((1 << (lanes * shape.bits)) - 1)
            want = pack(padded[b * shape.out_width:b * shape.out_width + lanes], shape.bits)
            assert word == want, f"row {row} beat {b}: {word:#x}, written {want:#x}"
            await RisingEdge(dut.clk)
