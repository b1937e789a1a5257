"""The encoder's memory images (hw/generator/encoder_images.py): each memory as deep as the block
that reads it expects, every resident member's constants at the words the layout names (read back
from the bits, a later member and layer included; the built-in model's staircases one row a word,
shared by every channel), and thresholds clamped to their word so that a
level no state reaches stays unreached. The blocks' own tests read these images bit for bit
(test_hw_residual_norm.py, test_hw_attention_pipeline.py)."""

from __future__ import annotations

import numpy as np
import pytest

from bebert.builtin import BUILTIN_DIR
from bebert.hw.blocks.softmax import EXP_BITS
from bebert.hw.design.config import HardwareConfig
from bebert.hw.design.plan import plan_for
from bebert.hw.encoder_units import encoder_units
from bebert.hw.generator.encoder_images import EncoderLayout, encoder_images, rising_thresholds
from bebert.sim.ensemble import load_simulation
from bebert.sim.program import Staircase, context_staircase


@pytest.fixture(scope="module")
def layout():
    simulation = load_simulation(BUILTIN_DIR)
    plan = plan_for(simulation, HardwareConfig(64, 64, len(simulation.members), 4))
    return EncoderLayout(plan, encoder_units(plan, 32, 4, 8))


def fields(bits: np.ndarray, width: int, signed: bool = True) -> np.ndarray:
    """(words, n x width) bits as (words, n) integers, two's complement unless not ``signed``."""
    grouped = bits.reshape(bits.shape[0], -1, width).astype(np.int64)
    values = (grouped << np.arange(width)).sum(axis=-1)
    return np.where(signed & (values >= 1 << width - 1), values - (1 << width), values)


def test_depths_are_what_the_blocks_read(layout):
    images, units = encoder_images(layout), layout.units
    assert {name: bits.shape[0] for name, bits in images.items()} == layout.depths()
    assert layout.depths()["hidden_thresholds"] == units.residual.threshold_words
    assert layout.depths()["norm"] == units.residual.norm_words
    assert layout.depths()["context_thresholds"] == units.pipeline.threshold_words


def test_a_later_members_constants_are_where_the_layout_says(layout):
    plan, units = layout.plan, layout.units
    assert plan.resident == 2
    images, slot, layer_index = encoder_images(layout), 1, 1
    member = plan.members[slot]
    layer, constants = member.layers[layer_index], layout.layer(slot, layer_index)
    r, ln, beats = units.residual, units.layer_norm, layout.beats
    hidden = r.hidden

    norm = images["norm"][constants.ffn_norm:constants.ffn_norm + beats]
    gains = fields(norm[:, :r.lanes * ln.gain_bits], ln.gain_bits).reshape(-1)[:hidden]
    biases = fields(norm[:, r.lanes * ln.gain_bits:], ln.bias_bits).reshape(-1)[:hidden]
    assert np.array_equal(gains, layer.ffn_norm.gamma) and np.array_equal(biases, layer.ffn_norm.beta)

    # the built-in model's 4-bit quantizers have one scale a tensor: each staircase is one row, one word
    q = r.quantizer
    assert (r.shared, q.staircase_words, q.threshold_lanes) == (True, 1, 1)
    stairs = images["hidden_thresholds"][constants.ffn_in_staircase:constants.ffn_in_staircase + 1]
    up = fields(stairs, r.threshold_bits).reshape(1, r.levels)
    assert np.array_equal(up, rising_thresholds(layer.ffn_in_stairs, 1, r.levels, r.threshold_bits))
    assert layout.layer(slot, layer_index + 1).input_staircase == constants.ffn_in_staircase + 1

    table = images["exp_table"][constants.table_base:constants.table_base + constants.table_last + 1]
    assert np.array_equal(fields(table, EXP_BITS, signed=False)[:, 0], layer.attention.exp_table)
    assert constants.prob_step == layer.attention.prob_step

    assert units.pipeline.shared and layout.layer(slot, layer_index + 1).context_base == constants.context_base + 1
    context = images["context_thresholds"][constants.context_base:constants.context_base + 1]
    levels = units.pipeline.staircase.levels
    want = rising_thresholds(context_staircase(layer, member.max_position), 1, levels, units.pipeline.threshold_bits)
    assert np.array_equal(fields(context, units.pipeline.threshold_bits).reshape(-1, levels), want)


def test_thresholds_are_clamped_to_their_word():
    stairs = Staircase(np.array([[-1000, 3, 1 << 62]]), np.full((1, 3), -(1 << 62)), 0)
    assert rising_thresholds(stairs, 2, 3, 8).tolist() == [[-128, 3, 127]] * 2


def test_per_channel_staircases_a_word_a_beat(tiny_backbone, tmp_path):
    """BiT's 1-1-1 binarizers shift each channel: their staircases are stored a row per channel, a
    word a beat of L channels (and a context word a head), at the words the layout names."""
    from conftest import make_tiny_ensemble

    simulation = load_simulation(make_tiny_ensemble(tiny_backbone, "w1e1a1", 1, tmp_path / "artifact"))
    plan = plan_for(simulation, HardwareConfig(8, 8, 1, 1))
    layout = EncoderLayout(plan, encoder_units(plan, 8, 2, 4))
    r, p, images = layout.units.residual, layout.units.pipeline, encoder_images(layout)
    assert not r.shared and not p.shared and r.quantizer.staircase_words == layout.beats
    layer, constants = plan.members[0].layers[-1], layout.layer(0, layout.layers - 1)
    stairs = images["hidden_thresholds"][constants.input_staircase:constants.input_staircase + layout.beats]
    up = fields(stairs, r.threshold_bits).reshape(layout.beats * r.lanes, r.levels)[:r.hidden]
    assert np.array_equal(up, rising_thresholds(layer.input_stairs, r.hidden, r.levels, r.threshold_bits))
    a = layout.units.attention
    context = images["context_thresholds"][constants.context_base:constants.context_base + a.heads]
    want = rising_thresholds(context_staircase(layer, plan.members[0].max_position), a.heads * a.head_size,
                             p.staircase.levels, p.threshold_bits)
    assert np.array_equal(fields(context, p.threshold_bits).reshape(-1, p.staircase.levels), want)
