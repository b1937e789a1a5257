"""The residual stream and the LayerNorm unit joined, in Amaranth's simulator on the built-in model's
first layer, its gains, biases and thresholds read from the encoder's memory images
(hw/generator/encoder_images.py): the embedding rows, then the attention output and the FFN output
rows of a sentence (the simulator's trace), each row's codes equal to the simulator's (layer 0's input codes, its
FFN-in codes, layer 1's input codes), each with its token; the cycles of each pass equal to the
model the encoder's schedule uses."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from bebert.builtin import BUILTIN_DIR
from bebert.hw.blocks.residual_norm import ResidualNorm
from bebert.hw.design.config import HardwareConfig
from bebert.hw.design.plan import plan_for
from bebert.hw.encoder_units import encoder_units
from bebert.hw.generator.encoder_images import EncoderLayout, encoder_images, lane_rows
from bebert.hw.generator.images import image_words
from bebert.hw.testbench.amaranth_streams import image_reads, stream_phase
from bebert.sim.ensemble import load_simulation
from bebert.sim.execute import run_member

SENTENCE = [101, 1037, 2307, 3185, 999, 102]


@pytest.fixture(scope="module")
def built_in():
    simulation = load_simulation(BUILTIN_DIR)
    return simulation, plan_for(simulation, HardwareConfig(64, 64, 1, 4))


@pytest.mark.parametrize("lanes,length", [(16, 3), (8, 1)])
def test_rows_equal_the_simulators_codes(built_in, lanes, length):
    simulation, plan = built_in
    member = simulation.members[0]
    units = encoder_units(plan, 8, 4, lanes)
    norm = units.norm
    r = norm.residual
    trace = {}
    run_member(member, [SENTENCE[:length]], trace=trace)
    trace = {name[len(member.prefix):]: value for name, value in trace.items()}
    layout = EncoderLayout(plan, units)
    images = {name: image_words(bits) for name, bits in encoder_images(layout).items()}
    passes = [  # (rows in, embed, its LayerNorm word, its staircase word, the codes it must give)
        (trace["embeddings.sum"], 1, layout.embedding_norm(0), layout.layer(0, 0).input_staircase,
         trace["layer0.input_codes"]),
        (trace["layer0.attention_output.out"], 0, layout.layer(0, 0).attention_norm, layout.layer(0, 0).ffn_in_staircase,
         trace["layer0.ffn_in.codes"]),
        (trace["layer0.ffn_out.out"], 0, layout.layer(0, 0).ffn_norm, layout.layer(0, 1).input_staircase,
         trace["layer1.input_codes"])]
    beats = r.beats
    unit = ResidualNorm(norm)
    memories = image_reads([(unit.norm_addr, (unit.gain, unit.bias), images["norm"]),
                            (unit.threshold_addr, unit.thresholds, images["hidden_thresholds"])])

    def codes_and_token(ctx, payload):
        return [ctx.get(payload.codes[lane]) for lane in range(lanes)] + [ctx.get(payload.tag)]

    found = []

    async def bench(ctx):
        for rows, embed, norm_base, threshold_base, _ in passes:
            beats_in = [list(b) for row in rows for b in lane_rows(row, beats, lanes)]
            tags = [{"token": t, "embed": embed, "threshold_base": threshold_base, "norm_base": norm_base}
                    for t in range(length)]
            out, cycles = await stream_phase(ctx, unit.add_in, unit.codes_out, beats_in, len(beats_in), 100_000,
                                             memory=memories, tags=(unit.add_row, tags), read=codes_and_token)
            found.append((out, cycles))

    simulator = Simulator(unit)
    simulator.add_clock(1e-8)
    simulator.add_testbench(bench)
    simulator.run()
    mask = (1 << r.code_bits) - 1
    for (rows, _, _, _, want), (out, cycles) in zip(passes, found):
        codes = np.array([beat[:-1] for beat in out]).reshape(length, -1)[:, :r.hidden]
        assert np.array_equal(codes, want & mask)
        assert [beat[-1] for beat in out[::beats]] == list(range(length))
        assert cycles == norm.rows([t * beats for t in range(length)])[-1] + 1
