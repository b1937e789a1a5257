"""Quantized drop-in replacements for ``nn.Linear`` and ``nn.Embedding``.

Each layer keeps a float latent weight and quantizes it in ``forward`` (training), or holds the
already-quantized weight when it was rebuilt from an exported artifact (``deployed``): then the
forward pass uses exactly the exported values, so export -> load reproduces predictions bit for bit.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .qconfig import FULL_PRECISION, QuantConfig
from .quantizers import ElasticBinarizer, LsqQuantizer, binarize_weight, ternarize_weight


def activation_quantizer(config: QuantConfig, channels: int | None = None, signed: bool = True) -> nn.Module | None:
    """The input quantizer of one matrix product under ``config``; None means float."""
    bits = config.activation_bits
    if bits == FULL_PRECISION:
        return None
    if bits == 1:
        return ElasticBinarizer(signed=signed, channels=channels if signed else None)
    return LsqQuantizer(bits, signed=signed)


def quantize_input(quantizer: nn.Module | None, x: torch.Tensor) -> torch.Tensor:
    return x if quantizer is None else quantizer(x)


class QuantLinear(nn.Linear):
    """``nn.Linear`` with a quantized weight and, optionally, a quantized input.

    ``weight_split`` is set by ternary weight splitting (BinaryBERT): the layer then computes with
    B(weight) + B(weight_split), two binary matrices whose sum equals the ternary weight it came from.
    """

    def __init__(self, in_features, out_features, bias=True, *, weight_bits=FULL_PRECISION,
                 per_row=False, center=False, input_quant: nn.Module | None = None):
        super().__init__(in_features, out_features, bias=bias)
        self.weight_bits, self.per_row, self.center = weight_bits, per_row, center
        self.input_quant = input_quant
        self.weight_split: nn.Parameter | None = None
        self.deployed = False

    @classmethod
    def for_config(cls, in_features, out_features, config: QuantConfig, *, quantize_input_too=True, bias=True):
        layer = cls(in_features, out_features, bias=bias, weight_bits=config.weight_bits,
                    per_row=config.weight_scale == "row", center=config.weight_quantizer == "bwn_centered",
                    input_quant=activation_quantizer(config, in_features) if quantize_input_too else None)
        if config.weight_split:
            layer.weight_split = nn.Parameter(layer.weight.detach().clone())
        return layer

    def quantized_weight(self) -> torch.Tensor:
        if self.deployed or self.weight_bits == FULL_PRECISION:
            return self.weight
        if self.weight_bits == 2:
            return ternarize_weight(self.weight, self.per_row)
        w = binarize_weight(self.weight, self.per_row, self.center)
        if self.weight_split is not None:
            w = w + binarize_weight(self.weight_split, self.per_row, self.center)
        return w

    def forward(self, x):
        return F.linear(quantize_input(self.input_quant, x), self.quantized_weight(), self.bias)

    def extra_repr(self):
        return super().extra_repr() + f", weight_bits={self.weight_bits}, split={self.weight_split is not None}"


class QuantEmbedding(nn.Embedding):
    """``nn.Embedding`` with a binary table, one scale per row (BinaryBERT, BiT)."""

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, *, weight_bits=FULL_PRECISION,
                 center=False):
        super().__init__(num_embeddings, embedding_dim, padding_idx=padding_idx)
        self.weight_bits, self.center = weight_bits, center
        self.deployed = False

    def quantized_weight(self) -> torch.Tensor:
        if self.deployed or self.weight_bits == FULL_PRECISION:
            return self.weight
        return binarize_weight(self.weight, per_row=True, center=self.center)

    def forward(self, ids):
        return F.embedding(ids, self.quantized_weight(), self.padding_idx)
