"""The attention products alone: the score and context units in Amaranth's simulator, then the
generated Verilog in Verilator and Icarus (cocotb): every score and context accumulator equal to
the simulator's ``product`` on one head, for 1-1-4 codes and BiT's 1-1-1, with one token, the
longest sentence, the format's extreme codes, stalls and a reset mid-row; cycle counts equal to
the models; the resource model against Yosys."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from amaranth.back import verilog

from bebert.hw.blocks.attention_products import ContextUnit, ScoreUnit, context_resources, score_resources
from bebert.hw.flows.cosim import SIMULATORS, build, run
from bebert.hw.testbench.amaranth_streams import stream_rows
from bebert.hw.testbench.attention import (expected_context, expected_scores, layer_data, probability_beats,
                                           shape_of, slice_writes)
from cocotb_tools.check_results import get_results
from conftest import assert_block_resources

# (longest sentence, heads, head size, lanes, setting, sentence length)
SHAPES = [(8, 2, 8, 4, "1-1-4", 8), (32, 3, 32, 4, "1-1-4", 32), (20, 2, 16, 8, "1-1-1", 17),
          (5, 1, 4, 1, "1-1-4", 1), (16, 2, 8, 2, "1-1-1", 16), (12, 2, 6, 4, "1-1-4", 11)]


def writer(unit, writes):
    async def prologue(ctx):
        for token, head, codes in writes:
            ctx.set(unit.write.en, 1)
            ctx.set(unit.write.token, token)
            ctx.set(unit.write.head, head)
            ctx.set(unit.write.codes, codes)
            await ctx.tick()
        ctx.set(unit.write.en, 0)
    return prologue


def scores_through(shape, q, k, length, stall=None):
    unit = ScoreUnit(shape)
    queries = [code for _, _, code in slice_writes(q, shape.query)]
    budget = 20 * shape.score_rows_cycles(len(queries), length) + 20 * length * shape.heads
    out, cycles = stream_rows(unit, queries, budget, stall, held=((unit.length, length),),
                              prologue=writer(unit, slice_writes(k, shape.key)), source="query_in",
                              beats_out=len(queries) * shape.row_beats(length))
    return np.array(out, dtype=np.int64).reshape(len(queries), -1), cycles


def context_through(shape, p, v, length, stall=None, rng=None):
    unit = ContextUnit(shape)
    rng = rng or np.random.default_rng(0)
    beats = [b for i in range(length) for h in range(shape.heads) for b in probability_beats(p[i, h], shape, rng)]
    rows = length * shape.heads
    budget = 20 * shape.context_rows_cycles(rows, length) + 20 * length * shape.heads
    out, cycles = stream_rows(unit, beats, budget, stall, held=((unit.length, length),),
                              prologue=writer(unit, slice_writes(v, shape.value)), beats_out=rows)
    return np.array(out, dtype=np.int64).reshape(rows, -1), cycles


def assert_rows_equal(out, expected, length):
    for i, want in enumerate(expected):
        assert np.array_equal(out[i, :len(want)], want), (i, np.flatnonzero(out[i, :len(want)] != want)[:8])
        assert not out[i, len(want):].any(), i


@pytest.mark.parametrize("tokens,heads,head_size,lanes,setting,length", SHAPES)
def test_scores_equal_simulator(tokens, heads, head_size, lanes, setting, length):
    shape = shape_of(tokens, heads, head_size, lanes, setting)
    q, k, _, _ = layer_data(shape, length, np.random.default_rng(tokens))
    out, cycles = scores_through(shape, q, k, length)
    assert_rows_equal(out, expected_scores(q, k, shape), length)
    assert cycles == shape.score_rows_cycles(length * heads, length)


@pytest.mark.parametrize("tokens,heads,head_size,lanes,setting,length", SHAPES)
def test_context_equals_simulator(tokens, heads, head_size, lanes, setting, length):
    shape = shape_of(tokens, heads, head_size, lanes, setting)
    _, _, v, p = layer_data(shape, length, np.random.default_rng(tokens))
    out, cycles = context_through(shape, p, v, length)
    assert_rows_equal(out, expected_context(p, v, shape), length)
    assert cycles == shape.context_rows_cycles(length * heads, length)


def test_stalls_change_no_result():
    shape = shape_of(12, 2, 8, 4, "1-1-4")
    q, k, v, p = layer_data(shape, 10, np.random.default_rng(3))
    out, cycles = scores_through(shape, q, k, 10, stall=np.random.default_rng(4))
    assert_rows_equal(out, expected_scores(q, k, shape), 10)
    assert cycles > shape.score_rows_cycles(20, 10)  # the pauses did happen
    out, cycles = context_through(shape, p, v, 10, stall=np.random.default_rng(5))
    assert_rows_equal(out, expected_context(p, v, shape), 10)
    assert cycles > shape.context_rows_cycles(20, 10)


@pytest.mark.parametrize("bad", [{"lanes": 0}, {"lanes": 3}, {"lanes": 64}, {"heads": 0}])
def test_shapes_the_units_cannot_build_are_refused(bad):
    settings = {"tokens": 32, "heads": 2, "head_size": 8, "lanes": 4, "setting": "1-1-4", **bad}
    with pytest.raises(ValueError):
        shape_of(**settings)


@pytest.mark.parametrize("simulator", SIMULATORS)
@pytest.mark.parametrize("unit,testcase", [(ScoreUnit, "scores_equal_simulator"),
                                           (ContextUnit, "context_equals_simulator")])
@pytest.mark.parametrize("tokens,heads,head_size,lanes,setting,length", [(12, 2, 8, 4, "1-1-4", 11),
                                                                          (8, 2, 8, 2, "1-1-1", 8)])
def test_units_in_verilog(tmp_path: Path, simulator, unit, testcase, tokens, heads, head_size, lanes, setting, length):
    shape = shape_of(tokens, heads, head_size, lanes, setting)
    source = tmp_path / "attention.v"
    source.write_text(verilog.convert(unit(shape), name="attention", emit_src=False))
    runner = build([source], "attention", tmp_path / "build", simulator=simulator)
    results = run(runner, "bebert.hw.testbench.attention", "attention", tmp_path,
                  {"tokens": tokens, "heads": heads, "head_size": head_size, "lanes": lanes, "setting": setting,
                   "length": length, "seed": tokens}, testcase=testcase)
    tests, failures = get_results(Path(results))
    assert tests == 1 and failures == 0, f"see {tmp_path / 'bebert.hw.testbench.attention.log'}"


def test_resource_models_against_yosys(cache):
    """synth_xilinx on both units at two shapes (scripts/block_check.py runs six): LUTs and FFs within
    15% of the models; distributed and block RAM exact, no DSPs."""
    shapes = [shape_of(16, 4, 16, 2, "1-1-4"), shape_of(32, 12, 32, 4, "1-1-1")]
    assert_block_resources([(unit(s), model(s)) for s in shapes
                            for unit, model in ((ScoreUnit, score_resources), (ContextUnit, context_resources))])
