"""A layer's attention pipeline (score unit, softmax, context unit, context staircase) in Amaranth's
simulator on layers of the built-in model, each with its exponential table and context thresholds
read from the encoder's memory images (hw/generator/encoder_images.py): every context code equal to
the simulator's trace of the same sentence (``layerI.context_codes``), from its own Q, K and V
codes; the cycles from the first query slice taken to the last context beat out equal to the
pipeline's model, the one the encoder's schedule uses."""

from __future__ import annotations

import numpy as np
import pytest

from bebert.builtin import BUILTIN_DIR
from bebert.hw.blocks.attention_pipeline import AttentionPipeline
from bebert.hw.design.config import HardwareConfig
from bebert.hw.design.plan import plan_for
from bebert.hw.encoder_units import encoder_units
from bebert.hw.generator.encoder_images import EncoderLayout, encoder_images
from bebert.hw.generator.images import image_words
from bebert.hw.testbench.amaranth_streams import image_reads, stream_rows
from bebert.hw.testbench.attention import slice_writes, stored
from bebert.sim.ensemble import load_simulation
from bebert.sim.execute import run_member

SENTENCE = [101, 1037, 2307, 3185, 999, 2009, 2001, 102]  # [CLS] ... [SEP], 8 tokens


@pytest.fixture(scope="module")
def built_in():
    simulation = load_simulation(BUILTIN_DIR)
    return simulation.members[0], plan_for(simulation, HardwareConfig(64, 64, 1, 4))


def layer_trace(member, length: int) -> dict:
    trace = {}
    run_member(member, [SENTENCE[:length]], trace=trace)
    return {name[len(member.prefix):]: value for name, value in trace.items()}


@pytest.mark.parametrize("tokens,lanes,length,layer", [(8, 4, 3, 1), (4, 2, 1, 0)])
def test_context_codes_equal_the_simulators(built_in, tokens, lanes, length, layer):
    member, plan = built_in
    units = encoder_units(plan, tokens, lanes, 8)
    shape = units.pipeline
    a = shape.attention
    trace = layer_trace(member, length)
    split = lambda name: trace[f"layer{layer}.{name}"].reshape(length, a.heads, a.head_size)  # noqa: E731
    q, k, v = split("query.codes"), split("key.codes"), split("value.codes")
    layout = EncoderLayout(plan, units)
    constants = layout.layer(0, layer)
    images = {name: image_words(bits) for name, bits in encoder_images(layout).items()}
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

    memories = image_reads([((unit.table_addr[lane], constants.table_base), unit.table_data[lane], images["exp_table"])
                            for lane in range(lanes)]
                           + [(unit.threshold_addr, unit.thresholds, images["context_thresholds"])])

    queries = [int(codes) for _, _, codes in slice_writes(q, a.query)]
    held = ((unit.length, length), (unit.table_last, constants.table_last), (unit.prob_step, constants.prob_step),
            (unit.context_base, constants.context_base))
    out, cycles = stream_rows(unit, queries, budget=40_000, memory=memories, held=held, prologue=write_banks,
                              source="query_in", sink="context_out", beats_out=length * a.heads)
    want = stored(trace[f"layer{layer}.context_codes"], shape.context_codes).reshape(length * a.heads, a.head_size)
    assert np.array_equal(np.array(out), want)
    assert cycles == shape.queries([0] * length, length)[-1] + 1
