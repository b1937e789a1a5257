"""The LayerNorm unit alone: its helpers (divider, root) and whole rows in Amaranth's simulator, then
the generated Verilog in Verilator and Icarus (cocotb): every lane equal to the simulator's
layer_norm on random and worst-case rows, the cycle count equal to the model, with stalls and a
reset mid-row; its resource model against Yosys."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator

from bebert.hw.flows.cosim import SIMULATORS, build, run
from bebert.hw.blocks.layer_norm import (LayerNormShape, LayerNormUnit, SequentialDivider, SquareRoot,
                                  layer_norm_resources)
from bebert.hw.testbench.amaranth_streams import stream_rows
from bebert.hw.testbench.layer_norm import beats_of, extreme_constants, worst_case_rows
from bebert.sim.execute import layer_norm
from bebert.sim.fixed import FRAC, LN_INPUT_BITS
from bebert.sim.program import LayerNorm
from cocotb_tools.check_results import get_results
from conftest import assert_block_resources

GAIN_BOUND, BIAS_BOUND = 4 << FRAC, 1 << 26  # gains up to 4, biases up to 4, as in trained BERTs and beyond


def simulate_rows(shape: LayerNormShape, rows, gains, biases, stall=None) -> tuple[list[np.ndarray], int]:
    """Rows through the unit in Amaranth's simulator (the testbench plays the parameter memory);
    returns the output rows and the cycles from the first beat in to the last beat out. ``stall``:
    a random generator pausing both streams."""
    unit = LayerNormUnit(shape)
    inputs = [b for row in rows for b in beats_of(row, shape)]
    gain_beats, bias_beats = beats_of(gains, shape), beats_of(biases, shape)

    def parameter_memory(ctx):
        address = ctx.get(unit.param_addr)

        def drive(ctx):
            for lane in range(shape.lanes):
                ctx.set(unit.gain[lane], int(gain_beats[address][lane]))
                ctx.set(unit.bias[lane], int(bias_beats[address][lane]))
        return drive

    out, cycles = stream_rows(unit, inputs, 20 * shape.rows_cycles(len(rows)), stall, parameter_memory)
    return list(np.array(out, dtype=np.int64).reshape(len(rows), shape.beats * shape.lanes)), cycles


def assert_rows_equal(rows, outputs, gains, biases, width):
    for i, (row, out) in enumerate(zip(rows, outputs)):
        expected = layer_norm(row[None], LayerNorm(gains, biases))[0]
        assert np.array_equal(out[:width], expected), (i, np.flatnonzero(out[:width] != expected)[:8])
        assert not out[width:].any(), i


@pytest.mark.parametrize("width,lanes,in_bits", [
    (20, 8, 33),  # a ragged last beat, the built-in model's hidden-state width
    (7, 7, 20),  # one beat per row
    (5, 1, 12),  # one lane
    (384, 16, LN_INPUT_BITS),  # MiniLM's width at the widest input the datapath holds
])
def test_rows_equal_simulator_and_cycles_equal_model(width, lanes, in_bits):
    shape = LayerNormShape(width, lanes, in_bits, GAIN_BOUND, BIAS_BOUND)
    rng = np.random.default_rng(width * lanes)
    gains, biases = extreme_constants(shape, rng)
    rows = worst_case_rows(shape, rng)
    outputs, cycles = simulate_rows(shape, rows, gains, biases)
    assert_rows_equal(rows, outputs, gains, biases, width)
    assert cycles == shape.rows_cycles(len(rows))


def test_stalls_change_no_result():
    shape = LayerNormShape(20, 8, 33, GAIN_BOUND, BIAS_BOUND)
    rng = np.random.default_rng(3)
    gains, biases = extreme_constants(shape, rng)
    rows = worst_case_rows(shape, rng)
    outputs, cycles = simulate_rows(shape, rows, gains, biases, stall=np.random.default_rng(4))
    assert_rows_equal(rows, outputs, gains, biases, 20)
    assert cycles > shape.rows_cycles(len(rows))  # the pauses did happen


def test_spike_reaches_the_normalized_bound_and_stays_inside():
    """One value against all others at the other extreme gives |d / sigma| = sqrt(H - 1), the
    largest a row can have: it must fit the width the unit derives, with little to spare."""
    for width in (2, 20, 384, 1024):
        shape = LayerNormShape(width, 1, 33, 1 << FRAC, 0)
        row = np.where(np.arange(width) == 0, (1 << 32) - 1, -(1 << 32))
        normalized = layer_norm(row[None], LayerNorm(np.full(width, 1 << FRAC), np.zeros(width, np.int64)))[0]
        assert np.abs(normalized).max() <= shape.normalized_bound
        assert np.abs(normalized).max() >= math.sqrt(width - 1) * 2**FRAC * 0.999


def test_divider_and_root_in_amaranths_simulator():
    rng = np.random.default_rng(0)
    divider, root = SequentialDivider(26, 33), SquareRoot(31)
    cases = [(int(n), int(d)) for d in (1, 3, 768, 2**32 - 1) for n in (0, d * 2**26 - 1, int(rng.integers(0, d * 2**26)))]
    roots = [0, 1, 2**62 - 1, 2**59, int(rng.integers(0, 2**62))]

    async def bench(ctx):
        for n, d in cases:
            ctx.set(divider.start, 1)
            ctx.set(divider.high, n >> 26)
            ctx.set(divider.low, n & (2**26 - 1))
            ctx.set(divider.divisor, d)
            ctx.set(divider.steps, 26)
            await ctx.tick()
            ctx.set(divider.start, 0)
            await ctx.tick().repeat(26)
            assert ctx.get(divider.done) and ctx.get(divider.quotient) == n // d, (n, d)
        for x in roots:
            ctx.set(root.start, 1)
            ctx.set(root.value, x)
            await ctx.tick()
            ctx.set(root.start, 0)
            await ctx.tick().repeat(31)
            assert ctx.get(root.done) and ctx.get(root.root) == math.isqrt(x), x

    from amaranth import Module
    top = Module()
    top.submodules.divider, top.submodules.root = divider, root
    simulator = Simulator(top)
    simulator.add_clock(1e-8)
    simulator.add_testbench(bench)
    simulator.run()


@pytest.mark.parametrize("width,bad", [(8, {"lanes": 0}), (8, {"lanes": 9}), (8, {"in_bits": LN_INPUT_BITS + 1})])
def test_shapes_the_unit_cannot_build_are_refused(width, bad):
    settings = {"lanes": 4, "in_bits": 33, **bad}
    with pytest.raises(ValueError):
        LayerNormShape(width, settings["lanes"], settings["in_bits"], GAIN_BOUND, BIAS_BOUND)


@pytest.mark.parametrize("simulator", SIMULATORS)
@pytest.mark.parametrize("width,lanes", [(20, 8), (5, 1)])
def test_layer_norm_in_verilog(tmp_path: Path, simulator, width, lanes):
    shape = LayerNormShape(width, lanes, 33, GAIN_BOUND, BIAS_BOUND)
    source = tmp_path / "layer_norm.v"
    source.write_text(verilog.convert(LayerNormUnit(shape), name="layer_norm", emit_src=False))
    runner = build([source], "layer_norm", tmp_path / "build", simulator=simulator)
    results = run(runner, "bebert.hw.testbench.layer_norm", "layer_norm", tmp_path,
                  {"width": width, "lanes": lanes, "in_bits": 33, "gain_bound": GAIN_BOUND,
                   "bias_bound": BIAS_BOUND, "seed": width})
    tests, failures = get_results(Path(results))
    assert tests == 1 and failures == 0, f"see {tmp_path / 'bebert.hw.testbench.layer_norm.log'}"


def test_resource_model_against_yosys(cache):
    """synth_xilinx on the unit at two shapes (scripts/block_check.py runs six): LUTs and FFs
    within 15% of the model; DSPs, distributed RAM and block RAM exact."""
    shapes = [LayerNormShape(64, 2, 20, GAIN_BOUND, BIAS_BOUND), LayerNormShape(128, 8, 24, GAIN_BOUND, BIAS_BOUND)]
    assert_block_resources([(LayerNormUnit(s), layer_norm_resources(s)) for s in shapes])
