"""The encoder blocks beside the PE array, sized for one compiled ensemble and one longest sentence.

``encoder_units`` derives every block's shape (hw/blocks) from the members' constants: the
attention's code formats and heads, the widest exponential table and probability step, the
LayerNorm gains and biases, and the widths of the rows the residual add joins (a LayerNorm output
plus a product's fixed-point output, or an embedding sum). Lanes are the build's choice: L keys a
beat for the attention units and the softmax, L hidden values a beat for the residual stream and
the LayerNorm unit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bebert.sim.program import Member

from .blocks.attention_pipeline import PipelineShape
from .blocks.attention_products import AttentionShape
from .blocks.layer_norm import LayerNormShape
from .blocks.residual_norm import NormTiming
from .blocks.residual_stream import ResidualShape
from .blocks.softmax import SoftmaxShape
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


def encoder_units(plan: AcceleratorPlan, tokens: int, attention_lanes: int, hidden_lanes: int) -> EncoderUnits:
    """The blocks of ``plan``'s members (an artifact's plan) for sentences of up to ``tokens`` tokens."""
    members: list[Member] = plan.members or []
    if not members:
        raise ValueError(f"the plan of {plan.shape.name} has no members' constants to size the encoder blocks by")
    first = members[0]
    att = first.layers[0].attention
    attention = AttentionShape(tokens, att.heads, att.head_size, attention_lanes,
                               att.query_codes, att.key_codes, att.probs_codes, att.value_codes)
    layers = [layer for member in members for layer in member.layers]
    softmax = SoftmaxShape(tokens, attention_lanes, attention.score_bits,
                           max(len(layer.attention.exp_table) for layer in layers), att.probs_codes.bits,
                           max(int(layer.attention.prob_step) for layer in layers))
    norms = [m.embedding_norm for m in members] + [n for layer in layers for n in (layer.attention_norm,
                                                                                   layer.ffn_norm)]
    hidden = first.position.shape[1]
    gain, bias = _largest(n.gamma for n in norms), _largest(n.beta for n in norms)
    out_bits = LayerNormShape(hidden, hidden_lanes, 16, gain, bias).out_bits  # whatever the input width
    embedding_bound = max(_largest([m.word_scale]) + _largest([m.position]) + _largest([m.token_type])
                          for m in members)
    add_bits = max(signed_bits(embedding_bound), plan.value_bits, out_bits)  # a product's row or an embedding
    layer_norm = LayerNormShape(hidden, hidden_lanes, add_bits + 1, gain, bias)  # the residual sum
    beats = ceil_div(hidden, hidden_lanes)
    per_member = 2 * len(first.layers) + 1  # staircases: per layer the input's and FFN-in's; the pooler's
    residual = ResidualShape(tokens, hidden, hidden_lanes, out_bits, add_bits, first.layers[0].input_codes,
                             out_bits + 1, plan.resident * per_member * beats,
                             norm_words=plan.resident * per_member * beats)  # LayerNorms: the embeddings', two a layer
    pipeline = PipelineShape(attention, softmax, att.context_quantizer.codes, attention.context_bits + 1,
                             plan.resident * len(first.layers) * att.heads)  # a head's thresholds a word
    return EncoderUnits(pipeline, NormTiming(residual, layer_norm))
