"""The residual stream and the LayerNorm unit joined, in Amaranth's simulator on the built-in model's
first layer: the embedding rows, then the attention output and the FFN output rows of a sentence
(the simulator's trace), each row's codes equal to the simulator's (layer 0's input codes, its
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
from bebert.hw.testbench.amaranth_streams import stream_phase
from bebert.sim.ensemble import load_simulation
from bebert.sim.execute import run_member

SENTENCE = [101, 1037, 2307, 3185, 999, 102]


@pytest.fixture(scope="module")
def built_in():
    simulation = load_simulation(BUILTIN_DIR)
    return simulation, plan_for(simulation, HardwareConfig(64, 64, 1, 4))


def lane_words(rows: np.ndarray, beats: int, lanes: int) -> np.ndarray:
    """(channels, ...) values as (beats, lanes, ...) memory words, padding channels 0."""
    padded = np.zeros((beats * lanes,) + rows.shape[1:], dtype=np.int64)
    padded[:len(rows)] = rows
    return padded.reshape((beats, lanes) + rows.shape[1:])


@pytest.mark.parametrize("lanes,length", [(16, 3), (8, 1)])
def test_rows_equal_the_simulators_codes(built_in, lanes, length):
    simulation, plan = built_in
    member = simulation.members[0]
    norm = encoder_units(plan, 8, 4, lanes).norm
    r, ln = norm.residual, norm.layer_norm
    trace = {}
    run_member(member, [SENTENCE[:length]], trace=trace)
    trace = {name[len(member.prefix):]: value for name, value in trace.items()}
    layer0, layer1 = member.layers[0], member.layers[1]
    passes = [  # (rows in, embed, its LayerNorm, the staircase after it, the codes it must give)
        (trace["embeddings.sum"], 1, member.embedding_norm, layer0.input_stairs, trace["layer0.input_codes"]),
        (trace["layer0.attention_output.out"], 0, layer0.attention_norm, layer0.ffn_in_stairs,
         trace["layer0.ffn_in.codes"]),
        (trace["layer0.ffn_out.out"], 0, layer0.ffn_norm, layer1.input_stairs, trace["layer1.input_codes"])]
    beats = r.beats
    gains = np.concatenate([lane_words(p[2].gamma, beats, lanes) for p in passes])
    biases = np.concatenate([lane_words(p[2].beta, beats, lanes) for p in passes])
    levels = r.levels
    thresholds = np.concatenate([lane_words(np.repeat(p[3].up[:, :levels], r.hidden, axis=0) if p[3].up.shape[0] == 1
                                            else p[3].up[:, :levels], beats, lanes) for p in passes])
    unit = ResidualNorm(norm)

    def memories(ctx):
        norm_address, threshold_address = ctx.get(unit.norm_addr), ctx.get(unit.threshold_addr)

        def drive(ctx):
            for lane in range(lanes):
                ctx.set(unit.gain[lane], int(gains[min(norm_address, len(gains) - 1), lane]))
                ctx.set(unit.bias[lane], int(biases[min(norm_address, len(biases) - 1), lane]))
                for level in range(levels):
                    ctx.set(unit.thresholds[lane][level], int(thresholds[min(threshold_address, len(thresholds) - 1),
                                                                          lane, level]))
        return drive

    def codes_and_token(ctx, payload):
        return [ctx.get(payload.codes[lane]) for lane in range(lanes)] + [ctx.get(payload.tag)]

    found = []

    async def bench(ctx):
        for index, (rows, embed, _, _, _) in enumerate(passes):
            beats_in = [list(b) for row in rows for b in lane_words(row, beats, lanes)]
            tags = [{"token": t, "embed": embed, "threshold_base": index * beats, "norm_base": index * beats}
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
