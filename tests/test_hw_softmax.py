"""The softmax unit alone: whole score rows in Amaranth's simulator, then the generated Verilog in
Verilator and Icarus (cocotb): every probability code equal to the simulator's ``probabilities``
on random and worst-case rows (table ends, equal scores, one token, the longest row), the cycle
count equal to the model, with stalls and a reset mid-row; its resource model against Yosys."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from amaranth.back import verilog

from bebert.hw.flows.cosim import SIMULATORS, build, run
from bebert.hw.testbench.amaranth_streams import stream_rows
from bebert.hw.blocks.softmax import SoftmaxShape, SoftmaxUnit, softmax_resources
from bebert.hw.testbench.softmax import beats_of, layer_constants, worst_case_rows
from bebert.sim.execute import probabilities
from bebert.sim.program import Codes
from cocotb_tools.check_results import get_results
from conftest import assert_block_resources


def simulate_rows(shape: SoftmaxShape, rows, length: int, table, prob_step: int, stall=None):
    """Rows of ``length`` scores through the unit in Amaranth's simulator (the testbench plays the
    per-lane table memories); returns the output rows and the cycles from the first beat in to the
    last beat out. ``stall``: a random generator pausing both streams."""
    unit = SoftmaxUnit(shape)
    inputs = [b for row in rows for b in beats_of(row, shape)]

    def table_memory(ctx):
        addresses = [ctx.get(unit.table_addr[lane]) for lane in range(shape.lanes)]

        def drive(ctx):
            for lane, address in enumerate(addresses):
                ctx.set(unit.table_data[lane], int(table[min(address, len(table) - 1)]))
        return drive

    held = ((unit.length, length), (unit.table_last, len(table) - 1), (unit.prob_step, prob_step))
    out, cycles = stream_rows(unit, inputs, 20 * shape.rows_cycles(len(rows), length), stall, table_memory, held)
    return list(np.array(out, dtype=np.int64).reshape(len(rows), -1)), cycles


def assert_rows_equal(rows, outputs, length, table, prob_step, codes: Codes):
    for i, (row, out) in enumerate(zip(rows, outputs)):
        expected = probabilities(row[None, :length], np.ones((1, length), bool), table, prob_step, codes)[0]
        assert np.array_equal(out[:length], expected), (i, np.flatnonzero(out[:length] != expected)[:8])
        assert not out[length:].any(), i


@pytest.mark.parametrize("tokens,lanes,length,prob_bits", [
    (32, 8, 32, 4),  # the built-in model's sentence at 32 tokens, whole beats
    (32, 8, 21, 4),  # a shorter sentence than the build holds: a ragged last beat
    (128, 16, 128, 4),  # the longest sentence the default build holds
    (16, 4, 1, 4),  # one token
    (12, 1, 12, 1),  # one lane, BiT's {0, 1} probabilities
    (9, 9, 9, 2),  # one beat per row
])
def test_rows_equal_simulator_and_cycles_equal_model(tokens, lanes, length, prob_bits):
    rng = np.random.default_rng(tokens * lanes + length)
    table, prob_step, codes = layer_constants(prob_bits, rng)
    shape = SoftmaxShape(tokens, lanes, 13, len(table) + 7, prob_bits, prob_step)
    rows = worst_case_rows(shape, length, len(table), rng)
    outputs, cycles = simulate_rows(shape, rows, length, table, prob_step)
    assert_rows_equal(rows, outputs, length, table, prob_step, codes)
    assert cycles == shape.rows_cycles(len(rows), length)


def test_stalls_change_no_result():
    rng = np.random.default_rng(5)
    table, prob_step, codes = layer_constants(4, rng)
    shape = SoftmaxShape(24, 8, 13, len(table), 4, prob_step)
    rows = worst_case_rows(shape, 19, len(table), rng)
    outputs, cycles = simulate_rows(shape, rows, 19, table, prob_step, stall=np.random.default_rng(6))
    assert_rows_equal(rows, outputs, 19, table, prob_step, codes)
    assert cycles > shape.rows_cycles(len(rows), 19)  # the pauses did happen


@pytest.mark.parametrize("bad", [{"lanes": 0}, {"lanes": 33}, {"prob_bits": 0}, {"table_depth": 1}])
def test_shapes_the_unit_cannot_build_are_refused(bad):
    settings = {"tokens": 32, "lanes": 8, "score_bits": 13, "table_depth": 512, "prob_bits": 4,
                "prob_step_bound": 1 << 20, **bad}
    with pytest.raises(ValueError):
        SoftmaxShape(**settings)


@pytest.mark.parametrize("simulator", SIMULATORS)
@pytest.mark.parametrize("tokens,lanes,length,prob_bits", [(20, 8, 17, 4), (6, 1, 6, 1)])
def test_softmax_in_verilog(tmp_path: Path, simulator, tokens, lanes, length, prob_bits):
    rng = np.random.default_rng(tokens)
    table, prob_step, _ = layer_constants(prob_bits, rng)
    shape = SoftmaxShape(tokens, lanes, 13, len(table), prob_bits, prob_step)
    source = tmp_path / "softmax.v"
    source.write_text(verilog.convert(SoftmaxUnit(shape), name="softmax", emit_src=False))
    runner = build([source], "softmax", tmp_path / "build", simulator=simulator)
    results = run(runner, "bebert.hw.testbench.softmax", "softmax", tmp_path,
                  {"tokens": tokens, "lanes": lanes, "length": length, "prob_bits": prob_bits, "seed": tokens})
    tests, failures = get_results(Path(results))
    assert tests == 1 and failures == 0, f"see {tmp_path / 'bebert.hw.testbench.softmax.log'}"


def test_resource_model_against_yosys(cache):
    """synth_xilinx on the unit at two shapes (scripts/block_check.py runs more): LUTs and FFs within
    15% of the model; DSPs, distributed RAM and block RAM exact."""
    shapes = [SoftmaxShape(32, 4, 13, 512, 4, 1 << 20), SoftmaxShape(128, 16, 13, 512, 1, 1 << 24)]
    assert_block_resources([(SoftmaxUnit(s), softmax_resources(s)) for s in shapes])
