"""A BERT sequence classifier whose every matrix product can be quantized (the binary BERT member).

The encoder is written out here rather than patched into ``transformers``' BertModel, because the
quantization points are the model: the input of each matrix product (Q/K/V, attention output,
FFN in, FFN out, pooler, classifier) and both attention products (scores and context) get their
own quantizer, and distillation needs every hidden state and pre-softmax attention score. With
every bit width at 32 it computes exactly what ``transformers`` computes (a test checks this), so
the full-precision teacher is the same class.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

import torch
import torch.nn.functional as F
from torch import nn

from .errors import BebertError
from .qconfig import QuantConfig
from .qlayers import QuantEmbedding, QuantLinear, activation_quantizer, quantize_input

# Added to the attention scores of padding positions (finite, so masked rows stay well defined).
MASK_VALUE = -10000.0


@dataclass(frozen=True)
class BertDims:
    """The shape of a BERT classifier (what the accelerator and the artifact are sized by)."""

    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    max_position: int
    type_vocab_size: int
    num_labels: int
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            wanted = (int, float) if f.type == "float" else (int,)
            if type(value) not in wanted:  # bool is not a dimension, though isinstance says it is an int
                raise BebertError(f"Model dimension {f.name} must be a number, not {value!r}.")
            if f.type == "int" and value < 0:
                raise BebertError(f"Model dimension {f.name} must not be negative, not {value}.")
        if self.hidden_size % self.num_heads:
            raise BebertError(f"Hidden size {self.hidden_size} is not a multiple of the head count {self.num_heads}.")
        if self.num_labels < 1:
            raise BebertError(f"A classifier needs at least one output, not {self.num_labels}.")

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_heads

    @classmethod
    def from_hf_config(cls, config, num_labels: int) -> "BertDims":
        if getattr(config, "hidden_act", "gelu") not in ("gelu", "gelu_python"):
            raise BebertError(f"Only GELU BERTs are supported, this checkpoint uses {config.hidden_act!r}.")
        return cls(
            vocab_size=config.vocab_size, hidden_size=config.hidden_size, num_layers=config.num_hidden_layers,
            num_heads=config.num_attention_heads, intermediate_size=config.intermediate_size,
            max_position=config.max_position_embeddings, type_vocab_size=config.type_vocab_size,
            num_labels=num_labels, layer_norm_eps=config.layer_norm_eps, pad_token_id=config.pad_token_id or 0,
            hidden_dropout=config.hidden_dropout_prob, attention_dropout=config.attention_probs_dropout_prob,
        )

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class BertOutput:
    logits: torch.Tensor
    hidden_states: list[torch.Tensor] = field(default_factory=list)  # embeddings, then each layer's output
    attention_scores: list[torch.Tensor] = field(default_factory=list)  # per layer, pre-softmax, masked


class Embeddings(nn.Module):
    """Binary word embeddings (E bits); position and token-type tables stay float, as in BinaryBERT."""

    def __init__(self, dims: BertDims, qc: QuantConfig):
        super().__init__()
        self.word_embeddings = QuantEmbedding(dims.vocab_size, dims.hidden_size, dims.pad_token_id,
                                              weight_bits=qc.embedding_bits,
                                              center=qc.weight_quantizer == "bwn_centered")
        self.position_embeddings = nn.Embedding(dims.max_position, dims.hidden_size)
        self.token_type_embeddings = nn.Embedding(dims.type_vocab_size, dims.hidden_size)
        self.norm = nn.LayerNorm(dims.hidden_size, eps=dims.layer_norm_eps)
        self.dropout = nn.Dropout(dims.hidden_dropout)

    def forward(self, input_ids, token_type_ids):
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.word_embeddings(input_ids) + self.position_embeddings(positions) + self.token_type_embeddings(token_type_ids)
        return self.dropout(self.norm(x))


class SelfAttention(nn.Module):
    """Multi-head attention; with ``quantize_attention`` both products run on quantized operands."""

    def __init__(self, dims: BertDims, qc: QuantConfig):
        super().__init__()
        h = dims.hidden_size
        self.num_heads, self.head_size = dims.num_heads, dims.head_size
        # Q, K and V read the same input: one quantizer feeds all three (one activation buffer in hardware).
        self.input_quant = activation_quantizer(qc, h)
        self.query, self.key, self.value = (QuantLinear.for_config(h, h, qc, quantize_input_too=False) for _ in range(3))
        quantize = qc.quantize_attention
        self.query_quant = activation_quantizer(qc) if quantize else None
        self.key_quant = activation_quantizer(qc) if quantize else None
        self.value_quant = activation_quantizer(qc) if quantize else None
        self.probs_quant = activation_quantizer(qc, signed=False) if quantize else None
        self.dropout = nn.Dropout(dims.attention_dropout)

    def _heads(self, x):
        b, t, _ = x.shape
        return x.view(b, t, self.num_heads, self.head_size).transpose(1, 2)

    def forward(self, x, mask_bias):
        x = quantize_input(self.input_quant, x)
        q = quantize_input(self.query_quant, self._heads(self.query(x)))
        k = quantize_input(self.key_quant, self._heads(self.key(x)))
        v = quantize_input(self.value_quant, self._heads(self.value(x)))
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_size) + mask_bias
        probs = quantize_input(self.probs_quant, self.dropout(scores.softmax(dim=-1)))
        context = (probs @ v).transpose(1, 2).flatten(2)
        return context, scores


class EncoderLayer(nn.Module):
    def __init__(self, dims: BertDims, qc: QuantConfig):
        super().__init__()
        h, i = dims.hidden_size, dims.intermediate_size
        self.attention = SelfAttention(dims, qc)
        self.attention_output = QuantLinear.for_config(h, h, qc)
        self.attention_norm = nn.LayerNorm(h, eps=dims.layer_norm_eps)
        self.ffn_in = QuantLinear.for_config(h, i, qc)
        self.ffn_out = QuantLinear.for_config(i, h, qc)
        self.ffn_norm = nn.LayerNorm(h, eps=dims.layer_norm_eps)
        self.dropout = nn.Dropout(dims.hidden_dropout)

    def forward(self, x, mask_bias):
        context, scores = self.attention(x, mask_bias)
        x = self.attention_norm(x + self.dropout(self.attention_output(context)))
        x = self.ffn_norm(x + self.dropout(self.ffn_out(F.gelu(self.ffn_in(x)))))
        return x, scores


class QuantBert(nn.Module):
    """BERT encoder + [CLS] pooler + classifier, quantized as ``qc`` says."""

    def __init__(self, dims: BertDims, qc: QuantConfig):
        super().__init__()
        self.dims, self.qc = dims, qc
        self.embeddings = Embeddings(dims, qc)
        self.layers = nn.ModuleList(EncoderLayer(dims, qc) for _ in range(dims.num_layers))
        head = (lambda i, o: QuantLinear.for_config(i, o, qc)) if qc.quantize_head else nn.Linear
        self.pooler = head(dims.hidden_size, dims.hidden_size)
        self.classifier = head(dims.hidden_size, dims.num_labels)
        self.dropout = nn.Dropout(dims.hidden_dropout)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None) -> BertOutput:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        mask_bias = (1.0 - attention_mask[:, None, None, :].float()) * MASK_VALUE
        x = self.embeddings(input_ids, token_type_ids)
        hidden, scores = [x], []
        for layer in self.layers:
            x, s = layer(x, mask_bias)
            hidden.append(x)
            scores.append(s)
        pooled = torch.tanh(self.pooler(x[:, 0]))
        logits = self.classifier(self.dropout(pooled))
        return BertOutput(logits, hidden, scores)

    def quantized_linears(self) -> dict[str, QuantLinear]:
        return {n: m for n, m in self.named_modules() if isinstance(m, QuantLinear)}


def hf_parameter_names(num_layers: int) -> dict[str, str]:
    """Our parameter name -> the name in a ``transformers`` BertModel state dict."""
    names = {
        "embeddings.word_embeddings.weight": "embeddings.word_embeddings.weight",
        "embeddings.position_embeddings.weight": "embeddings.position_embeddings.weight",
        "embeddings.token_type_embeddings.weight": "embeddings.token_type_embeddings.weight",
        "embeddings.norm.weight": "embeddings.LayerNorm.weight",
        "embeddings.norm.bias": "embeddings.LayerNorm.bias",
    }
    per_layer = {
        "attention.query": "attention.self.query",
        "attention.key": "attention.self.key",
        "attention.value": "attention.self.value",
        "attention_output": "attention.output.dense",
        "attention_norm": "attention.output.LayerNorm",
        "ffn_in": "intermediate.dense",
        "ffn_out": "output.dense",
        "ffn_norm": "output.LayerNorm",
    }
    for i in range(num_layers):
        for ours, theirs in per_layer.items():
            for p in ("weight", "bias"):
                names[f"layers.{i}.{ours}.{p}"] = f"encoder.layer.{i}.{theirs}.{p}"
    return names


def load_hf_weights(model: QuantBert, hf_state: dict[str, torch.Tensor]) -> list[str]:
    """Copy a BertModel's weights into ``model``; returns our names it had no weight for (the head)."""
    missing = []
    own = model.state_dict()
    names = hf_parameter_names(model.dims.num_layers)
    names.update({"pooler.weight": "pooler.dense.weight", "pooler.bias": "pooler.dense.bias"})
    with torch.no_grad():
        for ours, theirs in names.items():
            if theirs in hf_state:
                if own[ours].shape != hf_state[theirs].shape:
                    raise BebertError(f"Checkpoint tensor {theirs} has shape {tuple(hf_state[theirs].shape)}, "
                                      f"expected {tuple(own[ours].shape)}.")
                own[ours].copy_(hf_state[theirs])
            else:
                missing.append(ours)
    return missing
