"""cocotb testbench of the softmax unit alone (tests/test_hw_softmax.py runs it): every probability
code against ``bebert.sim.execute.probabilities``, and the cycle count against the unit's model.

Settings (BEBERT_COSIM): tokens, lanes, length (the row length driven), prob_bits, seed; scores are
13 bits, as the built-in model's. The testbench plays the per-lane exponential tables (one cycle
of read latency). Three phases: the rows back to back with no stalls (cycles from the first beat in
to the last beat out equal ``rows_cycles``); the same rows with random pauses on both streams; a
reset in the middle of a row, then one more row.
"""

import math

import cocotb
import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge, with_timeout
from cocotb.utils import get_sim_time

from bebert.hw.flows.cosim import settings
from bebert.hw.blocks.softmax import SoftmaxShape
from bebert.hw.testbench.streams import (StreamSink, StreamSource, pack, reset_mid_row, resolved,
                                         start_after_reset)
from bebert.sim.execute import probabilities
from bebert.sim.fixed import EXP_FRAC, PROB_FRAC
from bebert.sim.program import Codes, exp_table

SCORE_BITS = 13


def layer_constants(prob_bits: int, rng) -> tuple[np.ndarray, int, Codes]:
    """One layer's exponential table, probability step and codes, drawn like a trained model's: a
    table of 200 to 500 entries; a step near 1 / 2^bits (LSQ) or near one half (BiT's {0, 1})."""
    length = int(rng.integers(200, 501))
    table = exp_table((EXP_FRAC + 1) * math.log(2) / length)
    step = (0.5 if prob_bits == 1 else 1.0 / (1 << prob_bits)) * rng.uniform(0.5, 1.5)
    return table, int(round(step * 2**PROB_FRAC)), Codes(prob_bits, signed=False)


def worst_case_rows(shape: SoftmaxShape, length: int, table_length: int, rng) -> list[np.ndarray]:
    """Random rows over the whole score format (most distances past the table), random rows within
    the table's reach, equal scores, distances at the table's last entries (the last, the one
    before, one past), one highest score against the lowest, and every score the lowest."""
    lo, hi = -(1 << (shape.score_bits - 1)), (1 << (shape.score_bits - 1)) - 1
    top = int(rng.integers(0, hi))
    index = np.arange(length)
    ends = top - (table_length - 2 + index % 3)  # distances table_length - 2, - 1, and one past
    rows = [rng.integers(lo, hi + 1, size=length), top - rng.integers(0, table_length // 2, size=length),
            np.full(length, top), np.where(index == 0, top, ends), np.where(index == length // 2, hi, lo),
            np.full(length, lo)]
    return [np.asarray(r, dtype=np.int64) for r in rows]


def beats_of(row: np.ndarray, shape: SoftmaxShape) -> list[np.ndarray]:
    """The row's beats; lanes past its end carry the highest score, which the unit must ignore."""
    beats = shape.row_beats(len(row))
    padded = np.full(beats * shape.lanes, (1 << (shape.score_bits - 1)) - 1, dtype=np.int64)
    padded[:len(row)] = row
    return list(padded.reshape(beats, shape.lanes))


async def exponential_tables(dut, table: np.ndarray, shape: SoftmaxShape):
    """Each lane's table entry at the address seen at each edge, on the ports after it."""
    addresses = [0] * shape.lanes
    while True:
        await RisingEdge(dut.clk)
        dut.table_data.value = pack([table[min(a, len(table) - 1)] for a in addresses], EXP_FRAC + 1)
        await ReadOnly()
        word = resolved(dut.table_addr)
        addresses = [(word >> (lane * shape.address_bits)) & ((1 << shape.address_bits) - 1) for lane in range(shape.lanes)]


async def run_rows(dut, shape, rows, length, source, sink) -> list[np.ndarray]:
    beats = [pack(b, shape.score_bits) for row in rows for b in beats_of(row, shape)]
    sending = cocotb.start_soon(source.send(beats))
    got = await with_timeout(sink.receive(len(beats)), 200 * shape.rows_cycles(len(rows), length), "ns")
    await sending
    mask = (1 << shape.prob_bits) - 1
    codes = [[(b >> (lane * shape.prob_bits)) & mask for lane in range(shape.lanes)] for b in got]
    return list(np.array(codes, dtype=np.int64).reshape(len(rows), -1))


def check(rows, outputs, length, table, prob_step, codes, phase: str) -> None:
    for i, (row, out) in enumerate(zip(rows, outputs)):
        expected = probabilities(row[None], np.ones((1, length), bool), table, prob_step, codes)[0]
        assert np.array_equal(out[:length], expected), \
            f"{phase}, row {i}: lanes {np.flatnonzero(out[:length] != expected)[:8]} differ from the simulator"
        assert not out[length:].any(), f"{phase}, row {i}: padding lanes are not 0"


@cocotb.test()
async def softmax_equals_simulator(dut):
    s = settings()
    rng = np.random.default_rng(s["seed"])
    table, prob_step, codes = layer_constants(s["prob_bits"], rng)
    shape = SoftmaxShape(s["tokens"], s["lanes"], SCORE_BITS, len(table), s["prob_bits"], prob_step)
    length = s["length"]
    rows = worst_case_rows(shape, length, len(table), rng)

    dut.length.value, dut.table_last.value, dut.prob_step.value = length, len(table) - 1, prob_step
    cocotb.start_soon(exponential_tables(dut, table, shape))
    await start_after_reset(dut, ("row_in__ready", "row_out__valid", "busy", "table_addr"))  # no X after reset

    # 1. back to back: results and the cycle model
    source, sink = StreamSource(dut, "row_in", dut.clk), StreamSink(dut, "row_out", dut.clk)
    started = get_sim_time("ns")
    outputs = await run_rows(dut, shape, rows, length, source, sink)
    cycles = round((get_sim_time("ns") - started) / 10)
    check(rows, outputs, length, table, prob_step, codes, "back to back")
    expected = shape.rows_cycles(len(rows), length)
    assert cycles == expected, f"{cycles} cycles, the model says {expected}"

    # 2. random pauses on both streams
    source = StreamSource(dut, "row_in", dut.clk, gap=0.3, seed=s["seed"])
    sink = StreamSink(dut, "row_out", dut.clk, gap=0.3, seed=s["seed"] + 1)
    check(rows, await run_rows(dut, shape, rows, length, source, sink), length, table, prob_step, codes, "with stalls")

    # 3. a reset in the middle of a row, then one whole row
    source = await reset_mid_row(dut, [pack(b, shape.score_bits) for b in beats_of(rows[0], shape)])
    sink = StreamSink(dut, "row_out", dut.clk)
    check(rows[:1], await run_rows(dut, shape, rows[:1], length, source, sink), length, table, prob_step, codes,
          "after a reset")
