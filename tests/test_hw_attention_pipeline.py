"""A layer's attention pipeline (score unit, softmax, context unit, context staircase) in Amaranth's
simulator on the built-in model's first layer: every context code equal to the simulator's trace of
the same sentence (``layer0.context_codes``), from its own Q, K and V codes; the cycles from the first
query slice taken to the last context beat out equal to the pipeline's model, the one the encoder's
schedule uses."""

from __future__ import annotations

import numpy as np
import pytest

from bebert.builtin import BUILTIN_DIR
from bebert.hw.blocks.attention_pipeline import AttentionPipeline, PipelineShape
from bebert.hw.blocks.attention_products import AttentionShape
from bebert.hw.blocks.softmax import SoftmaxShape
from bebert.hw.testbench.amaranth_streams import stream_rows
from bebert.hw.testbench.attention import slice_writes, stored
from bebert.sim.ensemble import load_simulation
from bebert.sim.execute import run_member
from bebert.sim.program import context_staircase

SENTENCE = [101, 1037, 2307, 3185, 999, 2009, 2001, 102]  # [CLS] ... [SEP], 8 tokens


@pytest.fixture(scope="module")
def member():
    return load_simulation(BUILTIN_DIR).members[0]


def layer_trace(member, length: int) -> dict:
    trace = {}
    run_member(member, [SENTENCE[:length]], trace=trace)
    return {name[len(member.prefix):]: value for name, value in trace.items()}


def pipeline_shape(member, tokens: int, lanes: int) -> PipelineShape:
    layer = member.layers[0]
    att = layer.attention
    shape = AttentionShape(tokens, att.heads, att.head_size, lanes, att.query_codes, att.key_codes, att.probs_codes,
                           att.value_codes)
    softmax = SoftmaxShape(tokens, lanes, shape.score_bits, len(att.exp_table), att.probs_codes.bits,
                           int(att.prob_step))
    return PipelineShape(shape, softmax, att.context_quantizer.codes, shape.context_bits + 1, att.heads)


@pytest.mark.parametrize("tokens,lanes,length", [(8, 4, 3), (4, 2, 1)])
def test_context_codes_equal_the_simulators(member, tokens, lanes, length):
    shape = pipeline_shape(member, tokens, lanes)
    a = shape.attention
    layer = member.layers[0]
    att = layer.attention
    trace = layer_trace(member, length)
    split = lambda name: trace[f"layer0.{name}"].reshape(length, a.heads, a.head_size)  # noqa: E731
    q, k, v = split("query.codes"), split("key.codes"), split("value.codes")
    stairs = context_staircase(layer, member.max_position)
    levels = shape.staircase.levels
    word = np.repeat(stairs.up[:, :levels], a.head_size, axis=0) if stairs.up.shape[0] == 1 else None
    unit = AttentionPipeline(shape)

    async def write_banks(ctx):
        for writes, port in ((slice_writes(k, a.key), unit.key_write), (slice_writes(v, a.value), unit.value_write)):
            for token, head, codes in writes:
                ctx.set(port.en, 1)
                ctx.set(port.token, token)
                ctx.set(port.head, head)
                ctx.set(port.codes, codes)
                await ctx.tick()
            ctx.set(port.en, 0)

    def memories(ctx):
        addresses = [ctx.get(unit.table_addr[lane]) for lane in range(lanes)]

        def drive(ctx):
            for lane, address in enumerate(addresses):
                ctx.set(unit.table_data[lane], int(att.exp_table[min(address, len(att.exp_table) - 1)]))
            for lane in range(a.head_size):
                for level in range(levels):
                    ctx.set(unit.thresholds[lane][level], int(word[lane, level]))
        return drive

    queries = [int(codes) for _, _, codes in slice_writes(q, a.query)]
    held = ((unit.length, length), (unit.table_last, len(att.exp_table) - 1), (unit.prob_step, int(att.prob_step)),
            (unit.context_base, 0))
    out, cycles = stream_rows(unit, queries, budget=40_000, memory=memories, held=held, prologue=write_banks,
                              source="query_in", sink="context_out", beats_out=length * a.heads)
    want = stored(trace["layer0.context_codes"], shape.context_codes).reshape(length * a.heads, a.head_size)
    assert np.array_equal(np.array(out), want)
    assert cycles == shape.queries([0] * length, length)[-1] + 1
