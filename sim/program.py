"""Compile an artifact member into its integer program: every constant the datapath uses.

The datapath (docs/datapath.md) keeps only integers between the matrix products. What a member's
float32 parameters (steps, scales, biases, LayerNorm gains, tables) mean is folded here, once, into
integer constants:

  * **Staircases** turn an integer into the next quantizer's code. A matrix product whose output
    goes straight into a quantizer (Q, K, V; the FFN's first product through GELU; the pooler
    through tanh; the attention context) gets one per output channel, found by evaluating the
    float chain (scale, bias, nonlinearity, quantizer) at every integer the accumulator can hold:
    code = low + sum over levels l of [acc >= up_l or acc <= down_l]. ``down`` is needed only
    where the chain is not monotone (GELU dips below zero). A quantizer reading a fixed-point
    hidden state gets thresholds in that fixed point.
  * **Affine outputs** (attention output, FFN output, classifier) become fixed point by a
    multiply-shift: y = round_shift(acc * M_c, S) + bias_c.
  * LayerNorm gains and biases, embedding tables, the softmax exponential table and the
    probability quantizer's step become fixed-point integers.

NumPy only; the PyTorch integer mode and the RTL's memory images use these same constants.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from scipy.special import erf

from bebert import bitpack
from bebert.artifact import ArtifactError
from bebert.errors import BebertError

from .gemm import FLOAT32_EXACT
from .fixed import EXP_FRAC, FRAC, PROB_FRAC, multiplier, to_fixed


class DatapathError(BebertError):
    """An artifact the integer datapath cannot run (one sentence, names the reason)."""


@dataclass(frozen=True)
class Codes:
    """How a quantizer's integer codes read: ``bits`` wide, two's complement or unsigned, or bipolar
    (+-1 stored as one bit, BiT's signed binarizer). value = scale * code."""

    bits: int
    signed: bool
    bipolar: bool = False

    @property
    def low(self) -> int:
        return -1 if self.bipolar else (-(2 ** (self.bits - 1)) if self.signed else 0)

    @property
    def high(self) -> int:
        return 1 if self.bipolar else (2 ** (self.bits - 1) - 1 if self.signed else 2**self.bits - 1)

    @property
    def levels(self) -> np.ndarray:
        return np.array([-1, 1]) if self.bipolar else np.arange(self.low, self.high + 1)

    @property
    def largest(self) -> int:
        return max(abs(self.low), abs(self.high))


@dataclass(frozen=True)
class Quantizer:
    """One activation quantizer of the artifact: its codes, its scale (LSQ step or elastic alpha)
    and, for BiT's signed binarizer, its shift (scalar or per channel)."""

    codes: Codes
    scale: float
    shift: np.ndarray | None = None

    def codes_of(self, x: np.ndarray, channel_axis: int = -1) -> np.ndarray:
        """The float chain's codes of real values x (float64), as the trained model computes them."""
        if self.codes.bipolar:
            shift = 0.0 if self.shift is None else self.shift
            return np.where(x - shift >= 0, 1, -1)
        return np.clip(np.round(x / self.scale), self.codes.low, self.codes.high).astype(np.int64)

    def boundaries(self) -> np.ndarray:
        """(channels, levels-1) real inputs at which the code steps up by one (monotone chains)."""
        if self.codes.bipolar:  # -1 -> +1 is a step of two: the same boundary counted twice
            shift = np.zeros(1) if self.shift is None else np.atleast_1d(self.shift)
            return np.repeat(shift[:, None], 2, axis=1)
        return ((np.arange(self.codes.low + 1, self.codes.high + 1) - 0.5) * self.scale)[None, :]


@dataclass
class Staircase:
    """code = low + sum_l [x >= up[c, l] or x <= down[c, l]] for channel c (ties go to the higher code).

    ``lut``, when present, holds the same function tabulated over the bounded integer domain
    [domain_low, domain_low + lut.shape[1]) of an accumulator, for fast evaluation.
    """

    up: np.ndarray  # (channels, levels) int64
    down: np.ndarray  # (channels, levels) int64
    low: int
    lut: np.ndarray | None = None
    domain_low: int = 0

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Codes of integer inputs x (..., channels) (or (...) for a single-channel staircase)."""
        x = np.asarray(x, dtype=np.int64)
        if self.lut is not None:
            index = x - self.domain_low
            if self.lut.shape[0] == 1:
                return self.lut[0][index]
            return self.lut[np.arange(self.lut.shape[0]), index]
        if self.up.shape[0] == 1 and not np.any(self.down > np.iinfo(np.int64).min):
            return self.low + np.searchsorted(self.up[0], x, side="right")
        hits = (x[..., None] >= self.up) | (x[..., None] <= self.down)
        return self.low + hits.sum(axis=-1)


NEVER_DOWN = np.iinfo(np.int64).min  # a "down" threshold no input reaches
NEVER_UP = np.iinfo(np.int64).max


def staircase_from_table(codes: np.ndarray, domain_low: int, low: int, high: int, where: str) -> Staircase:
    """The thresholds of a tabulated chain: codes (channels, domain) of the integers domain_low....

    Each channel's codes must fall (weakly) to their minimum and then rise (weakly): the shape of a
    chain through GELU, or of a rising one. Then each level's set {x: code(x) >= l} is a lower ray
    (the falling part) plus an upper ray (the rising part), and counting codes per level finds both.
    """
    channels, size = codes.shape
    xs = np.arange(size, dtype=np.int64) + domain_low
    turn = np.argmin(codes, axis=1)  # first position of each channel's minimum
    step = np.diff(codes.astype(np.int16), axis=1)
    before_turn = np.arange(size - 1)[None, :] < turn[:, None]
    if np.any(before_turn & (step > 0)) or np.any(~before_turn & (step < 0)):
        raise DatapathError(f"{where}: the quantized chain is neither monotone nor falling-then-rising, "
                            "so it has no threshold form.")
    width = high - low + 1
    rising = np.arange(size)[None, :] >= turn[:, None]
    offset = np.arange(channels)[:, None] * width + (codes.astype(np.int64) - low)
    hist_rising = np.bincount(offset[rising], minlength=channels * width).reshape(channels, width)
    hist_falling = np.bincount(offset[~rising], minlength=channels * width).reshape(channels, width)
    levels = np.arange(1, width)  # level index l stands for code low + l
    below = np.cumsum(hist_rising, axis=1)[:, levels - 1]  # rising positions with a code under the level
    at_or_above = hist_falling[:, ::-1].cumsum(axis=1)[:, ::-1][:, levels]  # falling positions reaching it
    first_up = turn[:, None] + below
    up = np.where(first_up < size, xs[np.minimum(first_up, size - 1)], NEVER_UP)
    down = np.where(at_or_above > 0, xs[np.maximum(at_or_above - 1, 0)], NEVER_DOWN)
    return Staircase(up, down, low, lut=codes.astype(np.int8), domain_low=domain_low)


def fixed_point_staircase(quantizer: Quantizer) -> Staircase:
    """A quantizer reading a fixed-point hidden state: T = ceil(boundary * 2^FRAC) per level."""
    up = np.ceil(quantizer.boundaries() * 2.0**FRAC).astype(np.int64)
    return Staircase(up, np.full_like(up, NEVER_DOWN), quantizer.codes.low)


def gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


NONLINEARITIES = {"identity": lambda x: x, "gelu": gelu, "tanh": np.tanh}


def accumulator_staircase(scale: np.ndarray, bias: np.ndarray | None, nonlinearity: str, quantizer: Quantizer,
                          bound: int, where: str) -> Staircase:
    """Staircase of acc -> quantizer(f(scale_c * acc + bias_c)) over every acc in [-bound, bound]."""
    scale = np.atleast_1d(np.asarray(scale, dtype=np.float64))
    channels = max(scale.size, 1 if bias is None else np.size(bias),
                   1 if quantizer.shift is None else np.size(quantizer.shift))
    bias = np.zeros(channels) if bias is None else np.asarray(bias, dtype=np.float64)
    acc = np.arange(-bound, bound + 1, dtype=np.float64)
    # (channels, domain) in float64, one channel block at a time to bound the memory
    codes = np.empty((channels, acc.size), dtype=np.int8)
    block = max(1, 2**22 // acc.size)
    for start in range(0, channels, block):
        stop = min(channels, start + block)
        s = scale[start:stop, None] if scale.size > 1 else scale[0]
        y = NONLINEARITIES[nonlinearity](s * acc[None, :] + bias[start:stop, None])
        shifted = quantizer
        if quantizer.shift is not None and np.size(quantizer.shift) > 1:
            shifted = Quantizer(quantizer.codes, quantizer.scale, np.asarray(quantizer.shift)[start:stop, None])
        codes[start:stop] = shifted.codes_of(y)
    return staircase_from_table(codes, -bound, quantizer.codes.low, quantizer.codes.high, where)


@dataclass
class Linear:
    """A binary matrix product: packed +-1 weights (out, words) over inputs of ``k`` codes.

    ``dense`` is the same matrix unpacked, transposed, as float32 (k, out), kept for the fast engine.
    """

    name: str
    weights: np.ndarray  # (out, words) uint64, the artifact's packing
    k: int
    input_codes: Codes
    staircase: Staircase | None = None  # output codes of the next quantizer ...
    mult: np.ndarray | None = None  # ... or fixed point: round_shift(acc * mult_c, shift) + bias_c
    shift: int = 0
    bias: np.ndarray | None = None

    @property
    def out_features(self) -> int:
        return self.weights.shape[0]

    @cached_property
    def dense(self) -> np.ndarray:
        return np.ascontiguousarray(bitpack.unpack_signs(self.weights, self.k, np.float32).T)

    def accumulator_bound(self) -> int:
        return self.k * self.input_codes.largest


@dataclass
class LayerNorm:
    gamma: np.ndarray  # (hidden,) fixed point FRAC
    beta: np.ndarray


@dataclass
class Attention:
    heads: int
    head_size: int
    query_codes: Codes
    key_codes: Codes
    value_codes: Codes
    probs_codes: Codes
    exp_table: np.ndarray  # exp(delta * c) * 2^EXP_FRAC for delta = 0, -1, -2, ... (then 0)
    prob_step: int  # the probability quantizer's step * 2^PROB_FRAC
    context_scale: float  # probs scale * value scale: the context accumulator's real unit
    context_quantizer: Quantizer  # attention_output's input quantizer


@dataclass
class Layer:
    input_stairs: Staircase  # hidden -> Q/K/V input codes
    input_codes: Codes
    query: Linear
    key: Linear
    value: Linear
    attention: Attention
    attention_output: Linear
    attention_norm: LayerNorm
    ffn_in_stairs: Staircase
    ffn_in: Linear
    ffn_out: Linear
    ffn_norm: LayerNorm
    context_stairs: dict = field(default_factory=dict)  # sequence length bound -> Staircase (cached)


@dataclass
class Member:
    prefix: str
    weight: float  # vote weight alpha
    word_signs: np.ndarray  # (vocab, hidden) int8 +-1
    word_scale: np.ndarray  # (vocab,) fixed point
    position: np.ndarray  # (max_position, hidden) fixed point
    token_type: np.ndarray  # (types, hidden) fixed point
    embedding_norm: LayerNorm
    layers: list[Layer]
    pooler_stairs: Staircase
    pooler_codes: Codes
    pooler: Linear
    classifier: Linear
    hidden: int
    max_position: int


def _codes(spec: dict) -> Codes:
    if spec["type"] == "elastic":
        return Codes(1, spec["signed"], bipolar=spec["signed"])
    return Codes(int(spec["bits"]), bool(spec["signed"]))


class _Reader:
    """Typed access to one member's tensors, with one clear error for anything missing."""

    def __init__(self, artifact, prefix: str):
        self.artifact, self.prefix = artifact, prefix
        self.specs = artifact.manifest["quantizers"]

    def float(self, name: str, shape: tuple | None = None) -> np.ndarray:
        array = np.asarray(self.artifact.tensor(self.prefix + name), dtype=np.float64)
        if shape is not None:
            self.expect(name, array.shape, shape)
        return array

    def expect(self, name: str, found: tuple, *allowed: tuple) -> None:
        if tuple(found) not in [tuple(a) for a in allowed]:
            raise DatapathError(f"{self.artifact.path}: tensor {self.prefix}{name} has shape {tuple(found)}, but the "
                                f"model description needs {' or '.join(str(tuple(a)) for a in allowed)}.")

    def quantizer(self, path: str) -> Quantizer:
        if path not in self.specs:
            raise DatapathError(f"{self.artifact.path}: the artifact has no activation quantizer {path}; "
                                "the integer datapath needs every matrix-product input quantized.")
        codes = _codes(self.specs[path])
        shift = None
        if self.prefix + path + ".shift" in self.artifact.entries:
            shift = self.float(path + ".shift")
        return Quantizer(codes, float(self.float(path + ".step", (1,))[0]), shift)

    def weight(self, layer: str, out: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self.prefix + layer + ".weight_split_signs" in self.artifact.entries:
            raise DatapathError(f"{self.artifact.path}: layer {layer} carries ternary-split weights, which "
                                "the integer datapath does not run yet.")
        name = self.prefix + layer + ".weight_signs"
        packed = self.artifact.raw(name)  # a missing tensor raises here, named
        self.expect(layer + ".weight_signs", self.artifact.entries[name].shape, (out, k))
        scale = self.float(layer + ".weight_scale")
        self.expect(layer + ".weight_scale", scale.shape, (1,), (out,))
        return np.ascontiguousarray(packed), scale.reshape(-1)


def _linear(reader: _Reader, name: str, input_quant: Quantizer, k: int, out: int, *,
            to_quantizer: Quantizer | None = None, nonlinearity: str = "identity") -> Linear:
    words, alpha = reader.weight(name, out, k)
    bias = reader.float(name + ".bias", (out,))
    scale = input_quant.scale * alpha  # the real value of one accumulator unit, per matrix or per row
    layer = Linear(name, words, k, input_quant.codes)
    if layer.accumulator_bound() >= FLOAT32_EXACT:
        raise DatapathError(f"{reader.artifact.path}: {name} sums {k} products; accumulators over 2^24 are "
                            "outside this datapath's range.")
    if to_quantizer is not None:
        layer.staircase = accumulator_staircase(scale, bias, nonlinearity, to_quantizer, layer.accumulator_bound(),
                                                f"{reader.artifact.path}: {reader.prefix}{name}")
    else:
        layer.mult, layer.shift = multiplier(np.broadcast_to(scale * 2.0**FRAC, bias.shape))
        layer.bias = to_fixed(bias)
    return layer


def _layer_norm(reader: _Reader, name: str, width: int) -> LayerNorm:
    return LayerNorm(to_fixed(reader.float(name + ".weight", (width,))), to_fixed(reader.float(name + ".bias", (width,))))


def exp_table(unit: float) -> np.ndarray:
    """round(2^EXP_FRAC * exp(-d * unit)) for d = 0, 1, 2, ... until it rounds to 0 (the last entry)."""
    length = int(math.ceil((EXP_FRAC + 1) * math.log(2) / unit)) + 2
    table = np.round(np.exp(-np.arange(length) * unit) * 2.0**EXP_FRAC).astype(np.int64)
    return table[:int(np.argmax(table == 0)) + 1] if np.any(table == 0) else np.append(table, 0)


def compile_member(artifact, prefix: str, weight: float) -> Member:
    manifest = artifact.manifest
    dims, quant = manifest["model"], manifest["quant"]
    if quant["weight_bits"] != 1 or quant["embedding_bits"] != 1 or quant["activation_bits"] >= 32:
        raise DatapathError(f"{artifact.path}: the integer datapath runs binary models (1-1-1 or 1-1-4), "
                            f"not {manifest['bits']['label']}.")
    if not (quant["quantize_attention"] and quant["quantize_head"]):
        raise DatapathError(f"{artifact.path}: the integer datapath needs quantized attention and head.")
    r = _Reader(artifact, prefix)
    h, heads, inter = dims["hidden_size"], dims["num_heads"], dims["intermediate_size"]
    head_size = h // heads
    layers = []
    for i in range(dims["num_layers"]):
        p = f"layers.{i}."
        attn_in = r.quantizer(p + "attention.input_quant")
        qq, kq, vq, pq = (r.quantizer(p + f"attention.{n}_quant") for n in ("query", "key", "value", "probs"))
        out_in, ffn_in_q, ffn_out_q = (r.quantizer(p + n) for n in ("attention_output.input_quant",
                                                                     "ffn_in.input_quant", "ffn_out.input_quant"))
        score_unit = qq.scale * kq.scale / math.sqrt(head_size)
        attention = Attention(heads, head_size, qq.codes, kq.codes, vq.codes, pq.codes,
                              exp_table(score_unit), int(to_fixed(pq.scale, PROB_FRAC)),
                              pq.scale * vq.scale, out_in)
        layers.append(Layer(
            input_stairs=fixed_point_staircase(attn_in), input_codes=attn_in.codes,
            query=_linear(r, p + "attention.query", attn_in, h, h, to_quantizer=qq),
            key=_linear(r, p + "attention.key", attn_in, h, h, to_quantizer=kq),
            value=_linear(r, p + "attention.value", attn_in, h, h, to_quantizer=vq),
            attention=attention,
            attention_output=_linear(r, p + "attention_output", out_in, h, h),
            attention_norm=_layer_norm(r, p + "attention_norm", h),
            ffn_in_stairs=fixed_point_staircase(ffn_in_q),
            ffn_in=_linear(r, p + "ffn_in", ffn_in_q, h, inter, to_quantizer=ffn_out_q, nonlinearity="gelu"),
            ffn_out=_linear(r, p + "ffn_out", ffn_out_q, inter, h),
            ffn_norm=_layer_norm(r, p + "ffn_norm", h),
        ))
    pooler_in, classifier_in = r.quantizer("pooler.input_quant"), r.quantizer("classifier.input_quant")
    vocab, positions = dims["vocab_size"], dims["max_position"]
    word_signs = artifact.tensor(prefix + "embeddings.word_embeddings.weight_signs")
    r.expect("embeddings.word_embeddings.weight_signs", word_signs.shape, (vocab, h))
    return Member(
        prefix=prefix, weight=weight,
        word_signs=word_signs,
        word_scale=to_fixed(r.float("embeddings.word_embeddings.weight_scale", (vocab,))),
        position=to_fixed(r.float("embeddings.position_embeddings.weight", (positions, h))),
        token_type=to_fixed(r.float("embeddings.token_type_embeddings.weight", (dims["type_vocab_size"], h))),
        embedding_norm=_layer_norm(r, "embeddings.norm", h),
        layers=layers,
        pooler_stairs=fixed_point_staircase(pooler_in), pooler_codes=pooler_in.codes,
        pooler=_linear(r, "pooler", pooler_in, h, h, to_quantizer=classifier_in, nonlinearity="tanh"),
        classifier=_linear(r, "classifier", classifier_in, h, dims["num_labels"]),
        hidden=h, max_position=dims["max_position"],
    )


def context_staircase(layer: Layer, length: int) -> Staircase:
    """Context accumulator -> attention_output input codes, for sequences of up to ``length`` keys
    (the accumulator's range grows with the number of keys; built on first use, then cached)."""
    att = layer.attention
    bound = length * att.probs_codes.largest * att.value_codes.largest
    if bound not in layer.context_stairs:
        layer.context_stairs[bound] = accumulator_staircase(att.context_scale, None, "identity",
                                                            att.context_quantizer, bound, "attention context")
    return layer.context_stairs[bound]


def compile_ensemble(artifact) -> list[Member]:
    """Every member's program, compiled side by side in threads: the staircase tables are NumPy and
    SciPy ufuncs over large arrays, which run without the GIL."""
    try:
        members = artifact.manifest["members"]
        with ThreadPoolExecutor(max_workers=max(1, min(len(members), os.cpu_count() or 1))) as pool:
            return list(pool.map(lambda m: compile_member(artifact, str(m["prefix"]), float(m["weight"])), members))
    except (KeyError, TypeError) as exc:
        raise ArtifactError(f"{artifact.path / 'manifest.yaml'} lacks a valid model description ({exc}).") from None

