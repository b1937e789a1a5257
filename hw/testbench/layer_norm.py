"""cocotb testbench of the LayerNorm unit alone (tests/test_hw_layer_norm.py runs it): every output
lane against ``bebert.sim.execute.layer_norm``, and the cycle count against the unit's model.

Settings (BEBERT_COSIM): width, lanes, in_bits, gain_bound, bias_bound (the unit's shape), seed.
The testbench plays the gain/bias parameter memory (one cycle of read latency). Three phases:
the rows back to back with no stalls (cycles from the first beat in to the last beat out equal
``rows_cycles``); the same rows with random pauses on both streams; a reset in the middle of a row,
then one more row.
"""

import cocotb
import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge, with_timeout
from cocotb.utils import get_sim_time

from bebert.hw.flows.cosim import settings
from bebert.hw.host import beat_lanes
from bebert.hw.blocks.layer_norm import LayerNormShape
from bebert.hw.testbench.streams import (StreamSink, StreamSource, pack, reset_mid_row, resolved,
                                         start_after_reset)
from bebert.sim.execute import layer_norm
from bebert.sim.program import LayerNorm


def worst_case_rows(shape: LayerNormShape, rng) -> list[np.ndarray]:
    """Random rows over the whole input format, and the worst cases: a constant row (zero variance),
    the largest constant, one spike against the most negative value (the largest |d / sigma|),
    alternating extremes (the largest variance), a near-constant row (variance below one unit),
    and small random values."""
    h, lo, hi = shape.width, -(1 << (shape.in_bits - 1)), (1 << (shape.in_bits - 1)) - 1
    index = np.arange(h)
    rows = [rng.integers(lo, hi + 1, size=h), np.full(h, 12345), np.full(h, hi), np.full(h, lo),
            np.where(index == h // 2, hi, lo), np.where(index % 2 == 0, hi, lo), np.where(index == 0, 7, 0),
            rng.integers(-(1 << 20), 1 << 20, size=h) >> max(0, 22 - shape.in_bits)]
    return [np.asarray(r, dtype=np.int64) for r in rows]


def extreme_constants(shape: LayerNormShape, rng) -> tuple[np.ndarray, np.ndarray]:
    """Random gains and biases within the shape's bounds, lane 0 at the largest the build holds."""
    gains = rng.integers(-shape.gain_bound, shape.gain_bound + 1, size=shape.width)
    biases = rng.integers(-shape.bias_bound, shape.bias_bound + 1, size=shape.width)
    gains[0], biases[0] = shape.gain_bound, -shape.bias_bound
    return gains, biases


def beats_of(row: np.ndarray, shape: LayerNormShape) -> list[np.ndarray]:
    padded = np.zeros(shape.beats * shape.lanes, dtype=np.int64)
    padded[:len(row)] = row
    return list(padded.reshape(shape.beats, shape.lanes))


async def parameter_memory(dut, gains, biases, shape: LayerNormShape):
    """The gain and bias words of the address seen at each edge, on the ports after it."""
    gain_words = [pack(b, shape.gain_bits) for b in beats_of(gains, shape)]
    bias_words = [pack(b, shape.bias_bits) for b in beats_of(biases, shape)]
    address = 0
    while True:
        await RisingEdge(dut.clk)
        dut.gain.value, dut.bias.value = gain_words[address], bias_words[address]
        await ReadOnly()
        address = resolved(dut.param_addr)


async def run_rows(dut, shape, rows, source, sink) -> list[np.ndarray]:
    beats = [pack(b, shape.in_bits) for row in rows for b in beats_of(row, shape)]
    sending = cocotb.start_soon(source.send(beats))
    got = await with_timeout(sink.receive(len(beats)), 200 * shape.rows_cycles(len(rows)), "ns")
    await sending
    lanes = [beat_lanes(b, shape.lanes, shape.out_bits) for b in got]
    flat = np.array(lanes, dtype=np.int64).reshape(len(rows), -1)
    return list(flat)


def check(rows, outputs, gains, biases, shape, phase: str) -> None:
    norm = LayerNorm(gains, biases)
    for i, (row, out) in enumerate(zip(rows, outputs)):
        expected = layer_norm(row[None], norm)[0]
        assert np.array_equal(out[:shape.width], expected), \
            f"{phase}, row {i}: lanes {np.flatnonzero(out[:shape.width] != expected)[:8]} differ from the simulator"
        assert not out[shape.width:].any(), f"{phase}, row {i}: padding lanes are not 0"


@cocotb.test()
async def layer_norm_equals_simulator(dut):
    s = settings()
    shape = LayerNormShape(s["width"], s["lanes"], s["in_bits"], s["gain_bound"], s["bias_bound"])
    rng = np.random.default_rng(s["seed"])
    gains, biases = extreme_constants(shape, rng)
    rows = worst_case_rows(shape, rng)

    cocotb.start_soon(parameter_memory(dut, gains, biases, shape))
    await start_after_reset(dut, ("row_in__ready", "row_out__valid", "busy", "param_addr"))  # no X after reset

    # 1. back to back: results and the cycle model
    source, sink = StreamSource(dut, "row_in", dut.clk), StreamSink(dut, "row_out", dut.clk)
    started = get_sim_time("ns")
    outputs = await run_rows(dut, shape, rows, source, sink)
    cycles = round((get_sim_time("ns") - started) / 10)
    check(rows, outputs, gains, biases, shape, "back to back")
    assert cycles == shape.rows_cycles(len(rows)), f"{cycles} cycles, the model says {shape.rows_cycles(len(rows))}"

    # 2. random pauses on both streams
    source = StreamSource(dut, "row_in", dut.clk, gap=0.3, seed=s["seed"])
    sink = StreamSink(dut, "row_out", dut.clk, gap=0.3, seed=s["seed"] + 1)
    check(rows, await run_rows(dut, shape, rows, source, sink), gains, biases, shape, "with stalls")

    # 3. a reset in the middle of a row, then one whole row
    source = await reset_mid_row(dut, [pack(b, shape.in_bits) for b in beats_of(rows[0], shape)])
    sink = StreamSink(dut, "row_out", dut.clk)
    check(rows[:1], await run_rows(dut, shape, rows[:1], source, sink), gains, biases, shape, "after a reset")
