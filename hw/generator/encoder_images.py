"""Memory images of the encoder blocks: every member's LayerNorm, staircase, softmax and context
constants (resident even when the matrices' parameters stream in) laid out as the encoder's
parameter memories hold them, and the per-layer constants the controller holds while a layer runs.

Four memories, each holding the members one after another (member slot s's words from s x the
member's words on), least significant bit first:

* **norm**, a LayerNorm's gain and bias words, ceil(H / L) beats each: L gains (``gain_bits``,
  two's complement) then L biases (``bias_bits``); per member the embeddings' LayerNorm, then per
  layer the attention output's and the FFN's (``NORMS_PER_LAYER``). The residual norm's
  ``norm_addr`` reads it (the tag's ``norm_base`` + the beat).
* **hidden_thresholds**, the staircases that read a hidden state, ceil(H / L) beats each: per
  lane its levels' rising thresholds (``threshold_bits``); per member per layer the input's (Q, K,
  V codes) and the FFN-in's, then the pooler's. The residual stream's ``threshold_addr`` reads it.
  When every one of them is one row for all channels (``ResidualShape.shared``: a per-tensor
  quantizer, as BinaryBERT's 4-bit LSQ), a staircase is one word of that row, which every lane
  compares with.
* **exp_table**, per member and layer the softmax's exponential table, ``table_depth`` words of
  ``EXP_BITS`` (the deepest table sets the stride; a layer's ``table_last`` ends its own). Every
  softmax lane reads its own copy.
* **context_thresholds**, per member, layer and head one word: per channel of the head its
  levels' rising thresholds (the context staircase, ``threshold_bits`` of the pipeline); one word
  per member and layer, its one row, when every channel shares it (``PipelineShape.shared``).

Thresholds are clamped to their word: a level past the largest value a state can hold is never
reached, one at or below the smallest always is, as in the unclamped staircase.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bebert.sim.program import Member, Staircase, context_staircase

from ..blocks.softmax import EXP_BITS
from ..design.plan import AcceleratorPlan
from ..encoder_units import EncoderUnits, hidden_staircases
from .images import twos_complement_bits

ENCODER_MEMORIES = ("norm", "hidden_thresholds", "exp_table", "context_thresholds")
NORMS_PER_LAYER = 2  # after the attention output, after the FFN
STAIRCASES_PER_LAYER = 2  # the layer's input (Q, K, V codes), the FFN-in


@dataclass(frozen=True)
class LayerConstants:
    """What the controller holds while one member's layer runs (word addresses in the memories)."""

    input_staircase: int  # hidden_thresholds word of the layer's input staircase
    ffn_in_staircase: int
    attention_norm: int  # norm word of the LayerNorm after the attention output
    ffn_norm: int
    table_base: int  # exp_table word of the layer's table
    table_last: int  # its last entry, relative to table_base
    prob_step: int
    context_base: int  # context_thresholds word of the layer's head 0


@dataclass(frozen=True)
class EncoderLayout:
    """Where each constant of a member slot lives in the encoder's memories."""

    plan: AcceleratorPlan
    units: EncoderUnits

    @property
    def layers(self) -> int:
        return sum(1 for step in self.plan.steps if step.name.endswith(".qkv"))

    @property
    def beats(self) -> int:
        return self.units.residual.beats

    def norm_word(self, slot: int, index: int) -> int:
        """``index`` 0: the embeddings' LayerNorm; 1 + 2 l: layer l's after attention; 2 + 2 l: its FFN's."""
        return (slot * (1 + NORMS_PER_LAYER * self.layers) + index) * self.beats

    def staircase_word(self, slot: int, index: int) -> int:
        """``index`` 2 l: layer l's input staircase; 2 l + 1: its FFN-in; 2 L: the pooler's."""
        return (slot * (STAIRCASES_PER_LAYER * self.layers + 1) + index) * self.units.residual.quantizer.staircase_words

    @property
    def context_words(self) -> int:
        """Words of one layer's context staircase: a head's each, or one (shared)."""
        return self.units.pipeline.staircase.staircase_words  # the context staircase's beats are the heads

    def embedding_norm(self, slot: int) -> int:
        return self.norm_word(slot, 0)

    def pooler_staircase(self, slot: int) -> int:
        return self.staircase_word(slot, STAIRCASES_PER_LAYER * self.layers)

    def layer(self, slot: int, layer: int) -> LayerConstants:
        """A layer's constants; for a plan from dimensions (no members, no images: the resource model
        and synthesis), every table as deep as the units allow and the largest probability step."""
        if self.plan.members:
            att = self.plan.members[slot].layers[layer].attention
            table_last, prob_step = len(att.exp_table) - 1, int(att.prob_step)
        else:
            table_last, prob_step = self.units.softmax.table_depth - 1, self.units.softmax.prob_step_bound
        index = slot * self.layers + layer
        return LayerConstants(
            input_staircase=self.staircase_word(slot, STAIRCASES_PER_LAYER * layer),
            ffn_in_staircase=self.staircase_word(slot, STAIRCASES_PER_LAYER * layer + 1),
            attention_norm=self.norm_word(slot, 1 + NORMS_PER_LAYER * layer),
            ffn_norm=self.norm_word(slot, 2 + NORMS_PER_LAYER * layer),
            table_base=index * self.units.softmax.table_depth, table_last=table_last,
            prob_step=prob_step, context_base=index * self.context_words)

    def depths(self) -> dict[str, int]:
        """Each memory's words: every member slot's."""
        slots, layers = self.plan.ensemble_members, self.layers
        return {"norm": self.norm_word(slots, 0), "hidden_thresholds": self.staircase_word(slots, 0),
                "exp_table": slots * layers * self.units.softmax.table_depth,
                "context_thresholds": slots * layers * self.context_words}

    def widths(self) -> dict[str, int]:
        """Each memory's word width in bits."""
        ln, r, p = self.units.layer_norm, self.units.residual, self.units.pipeline
        hidden, context = r.quantizer, p.staircase
        return {"norm": r.lanes * (ln.gain_bits + ln.bias_bits),
                "hidden_thresholds": hidden.threshold_lanes * hidden.levels * hidden.threshold_bits,
                "exp_table": EXP_BITS,
                "context_thresholds": context.threshold_lanes * context.levels * context.threshold_bits}


def lane_rows(values: np.ndarray, beats: int, lanes: int) -> np.ndarray:
    """(channels, ...) values as (beats, lanes, ...), channels past the row 0."""
    padded = np.zeros((beats * lanes,) + values.shape[1:], dtype=np.int64)
    padded[:len(values)] = values
    return padded.reshape((beats, lanes) + values.shape[1:])


def rising_thresholds(stairs: Staircase, channels: int, levels: int, bits: int) -> np.ndarray:
    """(channels, levels) rising thresholds of a staircase (one row shared by every channel, or one
    per channel), clamped to ``bits``-bit two's complement."""
    up = np.broadcast_to(stairs.up[:, :levels], (channels, levels))
    return np.clip(up, -(1 << bits - 1), (1 << bits - 1) - 1)


def _bits(values: np.ndarray, width: int) -> np.ndarray:
    """(words, ...) values as (words, fields x width) bits, fields in order."""
    return twos_complement_bits(values, width).reshape(len(values), -1)


def _norm_words(layout: EncoderLayout, member: Member) -> np.ndarray:
    ln, beats, lanes = layout.units.layer_norm, layout.beats, layout.units.residual.lanes
    norms = [member.embedding_norm] + [n for layer in member.layers for n in (layer.attention_norm, layer.ffn_norm)]
    words = []
    for norm in norms:
        gains, biases = lane_rows(norm.gamma, beats, lanes), lane_rows(norm.beta, beats, lanes)
        words.append(np.concatenate([_bits(gains, ln.gain_bits), _bits(biases, ln.bias_bits)], axis=1))
    return np.concatenate(words)


def _hidden_threshold_words(layout: EncoderLayout, member: Member) -> np.ndarray:
    r = layout.units.residual
    stairs = hidden_staircases(member)
    if r.shared:  # one word a staircase: its one row
        return np.concatenate([_bits(rising_thresholds(s, 1, r.levels, r.threshold_bits), r.threshold_bits)
                               for s in stairs])
    return np.concatenate([
        _bits(lane_rows(rising_thresholds(s, r.hidden, r.levels, r.threshold_bits), r.beats, r.lanes), r.threshold_bits)
        for s in stairs])


def _exp_table_words(layout: EncoderLayout, member: Member) -> np.ndarray:
    depth = layout.units.softmax.table_depth
    tables = []
    for layer in member.layers:
        table = np.zeros(depth, dtype=np.int64)
        table[:len(layer.attention.exp_table)] = layer.attention.exp_table
        tables.append(twos_complement_bits(table, EXP_BITS))
    return np.concatenate(tables)


def _context_threshold_words(layout: EncoderLayout, member: Member) -> np.ndarray:
    p = layout.units.pipeline
    a, q = p.attention, p.staircase
    words = []
    for layer in member.layers:
        stairs = context_staircase(layer, member.max_position)
        if p.shared:  # one word a layer: its one row
            words.append(_bits(rising_thresholds(stairs, 1, q.levels, p.threshold_bits), p.threshold_bits))
            continue
        up = rising_thresholds(stairs, a.heads * a.head_size, q.levels, p.threshold_bits)
        words.append(_bits(up.reshape(a.heads, a.head_size, q.levels), p.threshold_bits))
    return np.concatenate(words)


WORDS = {"norm": _norm_words, "hidden_thresholds": _hidden_threshold_words, "exp_table": _exp_table_words,
         "context_thresholds": _context_threshold_words}


def encoder_images(layout: EncoderLayout) -> dict[str, np.ndarray]:
    """Each encoder memory's image as (words, width) bits: every member, in order."""
    members = layout.plan.members
    return {name: np.concatenate([WORDS[name](layout, member) for member in members]) for name in ENCODER_MEMORIES}

