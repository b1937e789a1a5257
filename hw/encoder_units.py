"""The encoder blocks beside the PE array, sized for one compiled ensemble and one longest sentence.

``encoder_units`` derives every block's shape (hw/blocks) from the members' constants
(``EncoderConstants``): the attention's code formats and heads, the widest exponential table and
probability step, the LayerNorm gains and biases, and the widths of the rows the residual add joins
(a LayerNorm output plus a product's fixed-point output, or an embedding sum). A shape from
dimensions (design/dims.py) has no trained constants: ``nominal_constants`` takes its code formats
from its products and the fixed-point constants from the built-in model, so the design-space
exploration can size (and synthesize) its encoder too. Lanes are the build's choice: L keys a beat
for the attention units and the softmax, L hidden values a beat for the residual stream and the
LayerNorm unit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bebert.sim.program import Codes, Member, Staircase, context_staircase

from .blocks.attention_pipeline import PipelineShape
from .blocks.attention_products import AttentionShape
from .blocks.layer_norm import LayerNormShape
from .blocks.residual_norm import NormTiming
from .blocks.residual_stream import ResidualShape
from .blocks.softmax import SoftmaxShape
from .design.dims import REFERENCE_ENCODER
from .design.plan import AcceleratorPlan, signed_bits
from .resources import ceil_div


@dataclass(frozen=True)
class EncoderUnits:
    """The encoder blocks' shapes."""

    pipeline: PipelineShape  # the attention: score, softmax and context units, the context staircase
    norm: NormTiming  # the residual stream and the LayerNorm unit

    @property
    def layer_norm(self) -> LayerNormShape:
        return self.norm.layer_norm

    @property
    def residual(self) -> ResidualShape:
        return self.norm.residual

    @property
    def attention(self) -> AttentionShape:
        return self.pipeline.attention

    @property
    def softmax(self) -> SoftmaxShape:
        return self.pipeline.softmax


def _largest(arrays) -> int:
    return max(int(np.abs(np.asarray(a, dtype=np.int64)).max()) for a in arrays)


@dataclass(frozen=True)
class EncoderConstants:
    """What sizes the encoder blocks beside the plan: the attention's heads and code formats (the
    probabilities' and the context staircase's), the deepest exponential table, the largest
    probability step, LayerNorm gain and bias, and embedding sum."""

    heads: int
    head_size: int
    query: Codes
    key: Codes
    probs: Codes
    value: Codes
    context: Codes
    table_depth: int
    prob_step_bound: int
    gain_bound: int
    bias_bound: int
    embedding_bound: int
    shared_hidden: bool = False  # every hidden staircase one row for all channels (a per-tensor quantizer)
    shared_context: bool = False  # every context staircase too


def artifact_constants(members: list[Member]) -> EncoderConstants:
    """The constants of compiled members: the widest over every member and layer."""
    first = members[0]
    att = first.layers[0].attention
    layers = [layer for member in members for layer in member.layers]
    norms = [m.embedding_norm for m in members] + [n for layer in layers for n in (layer.attention_norm,
                                                                                   layer.ffn_norm)]
    return EncoderConstants(
        att.heads, att.head_size, att.query_codes, att.key_codes, att.probs_codes, att.value_codes,
        att.context_quantizer.codes, max(len(layer.attention.exp_table) for layer in layers),
        max(int(layer.attention.prob_step) for layer in layers),
        _largest(n.gamma for n in norms), _largest(n.beta for n in norms),
        max(_largest([m.word_scale]) + _largest([m.position]) + _largest([m.token_type]) for m in members),
        shared_hidden=all(_one_row(s) for m in members for s in hidden_staircases(m)),
        shared_context=all(_one_row(context_staircase(layer, m.max_position)) for m in members for layer in m.layers))


def hidden_staircases(member: Member) -> list[Staircase]:
    """The staircases that read a member's hidden state, in the memory's order: per layer the input's
    (Q, K, V codes) and the FFN-in's, then the pooler's."""
    return [s for layer in member.layers for s in (layer.input_stairs, layer.ffn_in_stairs)] + [member.pooler_stairs]


def _one_row(stairs: Staircase) -> bool:
    """A staircase every channel shares (one row of rising thresholds)."""
    return stairs.up.shape[0] == 1


def nominal_constants(plan: AcceleratorPlan, heads: int) -> EncoderConstants:
    """The constants of a shape from dimensions (no trained members): the code formats its products
    take and give (the layer's query, key and value codes; attention_output's input codes for the
    context staircase; probabilities of the setting's width, unsigned: BinaryBERT's 4-bit, BiT's
    {0, 1}), and the built-in model's fixed-point constants (dims.REFERENCE_ENCODER). Staircases are
    shared by every channel where the setting's activations are multi-bit (BinaryBERT's LSQ: one
    scale a tensor), per channel where they are bipolar (BiT's elastic binarizer: a shift a channel)."""
    jobs = {job.name: job for job in plan.jobs}
    query, key, value = (jobs[f"layer0.{name}"].output_codes for name in ("query", "key", "value"))
    hidden = jobs["layer0.query"].k
    if hidden % heads:
        raise ValueError(f"{heads} heads do not divide the hidden width {hidden}")
    ref = REFERENCE_ENCODER
    return EncoderConstants(heads, hidden // heads, query, key, Codes(query.bits, signed=False), value,
                            jobs["layer0.attention_output"].input_codes, ref["table_depth"],
                            ref["prob_step_bound"], ref["gain_bound"], ref["bias_bound"], ref["embedding_bound"],
                            shared_hidden=not jobs["layer0.query"].input_codes.bipolar,
                            shared_context=not jobs["layer0.attention_output"].input_codes.bipolar)


def encoder_units(plan: AcceleratorPlan, tokens: int, attention_lanes: int, hidden_lanes: int,
                  constants: EncoderConstants | None = None) -> EncoderUnits:
    """The blocks for sentences of up to ``tokens`` tokens: of ``plan``'s members (an artifact's
    plan), or of ``constants`` (a shape from dimensions: ``nominal_constants``)."""
    if constants is None:
        if not plan.members:
            raise ValueError(f"the plan of {plan.shape.name} has no members' constants to size the encoder blocks by")
        constants = artifact_constants(plan.members)
    c = constants
    attention = AttentionShape(tokens, c.heads, c.head_size, attention_lanes, c.query, c.key, c.probs, c.value)
    softmax = SoftmaxShape(tokens, attention_lanes, attention.score_bits, c.table_depth, c.probs.bits,
                           c.prob_step_bound)
    first = plan.jobs[0]  # layer 0's query: the hidden width, the layer's input codes
    hidden, layers = first.k, sum(1 for step in plan.steps if step.name.endswith(".qkv"))
    out_bits = LayerNormShape(hidden, hidden_lanes, 16, c.gain_bound, c.bias_bound).out_bits  # whatever the input
    add_bits = max(signed_bits(c.embedding_bound), plan.value_bits, out_bits)  # a product's row or an embedding
    layer_norm = LayerNormShape(hidden, hidden_lanes, add_bits + 1, c.gain_bound, c.bias_bound)  # the residual sum
    beats = ceil_div(hidden, hidden_lanes)
    per_member = 2 * layers + 1  # staircases: per layer the input's and FFN-in's; the pooler's
    stair_words = 1 if c.shared_hidden else beats  # a staircase's words: its one row, or a beat's rows a word
    residual = ResidualShape(tokens, hidden, hidden_lanes, out_bits, add_bits, first.input_codes,
                             out_bits + 1, plan.ensemble_members * per_member * stair_words,
                             norm_words=plan.ensemble_members * per_member * beats,  # LayerNorms: the embeddings', two a layer
                             shared=c.shared_hidden)
    pipeline = PipelineShape(attention, softmax, c.context, attention.context_bits + 1,  # a head's thresholds a word
                             plan.ensemble_members * layers * (1 if c.shared_context else c.heads), shared=c.shared_context)
    return EncoderUnits(pipeline, NormTiming(residual, layer_norm))
