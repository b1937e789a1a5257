"""The residual stream alone: the add and norm paths in Amaranth's simulator, then the generated
Verilog in Verilator and Icarus (cocotb): every sum equal to ``x + y`` and every code to the
simulator's ``Staircase.apply``, for 4-bit and bipolar codes, at the format's ends and at the
thresholds, rows in a shuffled order of tokens with their own staircases, with one token and the
longest sentence, stalls and a reset mid-row; both paths' cycle counts equal to the model; the
resource model against Yosys."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator

from bebert.hw.flows.cosim import SIMULATORS, build, run
from bebert.hw.blocks.residual_stream import ResidualStream, residual_resources
from bebert.hw.testbench.amaranth_streams import stream_phase
from bebert.hw.testbench.residual_stream import ADD_BITS, beats_of, phases, rows_of, shape_of, staircase, threshold_words
from cocotb_tools.check_results import get_results
from conftest import assert_block_resources

# (longest sentence, hidden, lanes, setting, sentence length)
SHAPES = [(4, 16, 4, "1-1-4", 4), (6, 20, 8, "1-1-4", 5), (3, 12, 1, "1-1-1", 1), (8, 24, 16, "1-1-1", 8),
          (5, 7, 2, "1-1-4", 3)]


def run_sentence(shape, length, rng, stall=None):
    """The sentence's phases (testbench.residual_stream.phases) in one simulation; returns, per phase,
    the rows out, the tokens they carry (norm) and the cycles."""
    unit = ResidualStream(shape)
    stairs = staircase(shape, rng)
    words = threshold_words(shape, stairs)
    todo = phases(shape, length, stairs, rng)
    found = []

    def thresholds(ctx):
        address = min(ctx.get(unit.threshold_addr), len(words) - 1)

        def drive(ctx):
            for lane in range(shape.lanes):
                for level in range(shape.levels):
                    ctx.set(unit.thresholds[lane][level], int(words[address][lane, level]))
        return drive

    def codes_and_token(ctx, payload):
        return [ctx.get(payload.codes[lane]) for lane in range(shape.lanes)] + [ctx.get(payload.tag)]

    async def bench(ctx):
        budget = 20 * shape.rows_cycles(length, "norm") + 100
        for phase in todo:
            beats = beats_of(phase.rows, shape)
            if phase.path == "add":
                out, cycles = await stream_phase(ctx, unit.add_in, unit.sum_out, beats, len(beats), budget, stall,
                                                 thresholds, tags=(unit.add_row, phase.tags))
                tokens = phase.tokens
            else:
                out, cycles = await stream_phase(ctx, unit.norm_in, unit.codes_out, beats, len(beats), budget, stall,
                                                 thresholds, read=codes_and_token)
                tokens = [beat[-1] for beat in out[::shape.beats]]
                out = [beat[:-1] for beat in out]
            found.append((phase, rows_of(out, shape, len(phase.rows)), tokens, cycles))

    simulator = Simulator(unit)
    simulator.add_clock(1e-8)
    simulator.add_testbench(bench)
    simulator.run()
    return found


@pytest.mark.parametrize("tokens,hidden,lanes,setting,length", SHAPES)
def test_paths_equal_simulator(tokens, hidden, lanes, setting, length):
    shape = shape_of(tokens, hidden, lanes, setting)
    for phase, rows, row_tokens, cycles in run_sentence(shape, length, np.random.default_rng(hidden)):
        assert np.array_equal(rows, phase.expected), (phase.path, phase.tokens, np.argwhere(rows != phase.expected)[:4])
        assert row_tokens == phase.tokens
        assert cycles == shape.rows_cycles(len(phase.rows), phase.path), phase.path


def test_stalls_change_no_result():
    shape = shape_of(6, 20, 8, "1-1-4")
    found = run_sentence(shape, 6, np.random.default_rng(1), stall=np.random.default_rng(2))
    for phase, rows, row_tokens, _ in found:
        assert np.array_equal(rows, phase.expected) and row_tokens == phase.tokens, phase.path
    assert sum(c for *_, c in found) > sum(shape.rows_cycles(len(p.rows), p.path) for p, *_ in found)  # pauses happened


def test_sums_cover_both_formats():
    """The add path's sum holds the largest state plus the largest product without wrapping."""
    shape = shape_of(2, 4, 4, "1-1-4")
    assert shape.sum_bits == max(shape.state_bits, ADD_BITS) + 1


@pytest.mark.parametrize("bad", [{"lanes": 0}, {"lanes": 17}, {"tokens": 0}])
def test_shapes_the_unit_cannot_build_are_refused(bad):
    settings = {"tokens": 4, "hidden": 16, "lanes": 4, "setting": "1-1-4", **bad}
    with pytest.raises(ValueError):
        shape_of(**settings)


@pytest.mark.parametrize("simulator", SIMULATORS)
@pytest.mark.parametrize("tokens,hidden,lanes,setting,length", [(6, 20, 8, "1-1-4", 5), (4, 8, 2, "1-1-1", 4)])
def test_residual_stream_in_verilog(tmp_path: Path, simulator, tokens, hidden, lanes, setting, length):
    shape = shape_of(tokens, hidden, lanes, setting)
    source = tmp_path / "residual.v"
    source.write_text(verilog.convert(ResidualStream(shape), name="residual", emit_src=False))
    runner = build([source], "residual", tmp_path / "build", simulator=simulator)
    results = run(runner, "bebert.hw.testbench.residual_stream", "residual", tmp_path,
                  {"tokens": tokens, "hidden": hidden, "lanes": lanes, "setting": setting, "length": length,
                   "seed": hidden})
    tests, failures = get_results(Path(results))
    assert tests == 1 and failures == 0, f"see {tmp_path / 'bebert.hw.testbench.residual_stream.log'}"


def test_resource_model_against_yosys(cache):
    """synth_xilinx on the unit at two shapes (scripts/block_check.py runs more): LUTs and FFs within
    15% of the model; distributed and block RAM exact, no DSPs."""
    assert_block_resources([(ResidualStream(s), residual_resources(s))
                            for s in (shape_of(8, 64, 4, "1-1-4"), shape_of(32, 384, 16, "1-1-1"))])
