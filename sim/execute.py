"""Run a compiled member on token ids with the integer datapath (docs/datapath.md), batch by batch.

Sentences are grouped by length and padded; padded keys get an exponential of 0 in the softmax,
so each sentence computes exactly what it would alone (the accelerator runs one sentence at a
time, unpadded). With ``trace`` set, one sentence is run and every intermediate integer tensor
is recorded under its datapath name: the golden vectors of the RTL testbenches.
"""

from __future__ import annotations

import numpy as np

from bebert import bitpack

from . import gemm
from .fixed import (FRAC, LN_NORM_BITS, LN_RECIP, LN_VAR_FLOOR, LN_VAR_SHIFT, PROB_FRAC, bit_length, isqrt,
                    mean_square_floor, round_div, round_shift, round_shift_each)
from .program import Codes, LayerNorm, Linear, Member, context_staircase


def product(a: np.ndarray, a_codes: Codes, b: np.ndarray, b_codes: Codes, engine: str) -> np.ndarray:
    """a @ b.T of two code matrices (M, K), (N, K), on the engine the operand kinds call for."""
    k = a.shape[1]
    if a_codes.bipolar and b_codes.bipolar:
        return gemm.xnor_popcount(bitpack.pack_signs(a), bitpack.pack_signs(b), k, engine).astype(np.int64)
    if b_codes.bipolar:
        return gemm.bitserial_matmul(a, bitpack.pack_signs(b), k, a_codes.bits, a_codes.signed, engine).astype(np.int64)
    if a_codes.bipolar:
        return gemm.bitserial_matmul(b, bitpack.pack_signs(a), k, b_codes.bits, b_codes.signed, engine).T.astype(np.int64)
    return gemm.codes_matmul(a, a_codes.bits, a_codes.signed, b, b_codes.bits, b_codes.signed, engine)


def linear_accumulate(layer: Linear, codes: np.ndarray, engine: str) -> np.ndarray:
    """(rows, out) accumulators of a binary weight matrix over input codes (rows, k).

    The fast engine multiplies the codes by the unpacked weights in float32, exact because every
    partial sum is an integer below 2^24 (k * largest code; checked at compile time)."""
    if engine == "fast":
        return (codes.astype(np.float32) @ layer.dense).astype(np.int64)
    if layer.input_codes.bipolar:
        return gemm.xnor_popcount(bitpack.pack_signs(codes), layer.weights, layer.k, engine).astype(np.int64)
    return gemm.bitserial_matmul(codes, layer.weights, layer.k, layer.input_codes.bits, layer.input_codes.signed,
                                 engine).astype(np.int64)


def affine(layer: Linear, acc: np.ndarray) -> np.ndarray:
    """Accumulators to fixed point: round_shift(acc * M_c, S) + bias_c."""
    return round_shift(acc * layer.mult, layer.shift) + layer.bias


def layer_norm(z: np.ndarray, norm: LayerNorm) -> np.ndarray:
    """Integer LayerNorm over the last axis of fixed-point z (docs/datapath.md, "LayerNorm")."""
    width = z.shape[-1]
    mean = round_div(z.sum(axis=-1), width)
    d = z - mean[..., None]
    coarse = round_shift(d, LN_VAR_SHIFT)
    # 2 (FRAC - LN_VAR_SHIFT) fractional bits, at least one unit (the epsilon)
    variance = np.maximum(mean_square_floor(coarse, width), LN_VAR_FLOOR)
    # Normalize like a float: shift the variance left by an even k so its root keeps ~31 bits.
    k = np.maximum(LN_NORM_BITS - bit_length(variance), 0) & ~1
    root = isqrt(variance << k)  # sqrt(var) * 2^(FRAC - LN_VAR_SHIFT + k/2), at least 2^29
    reciprocal = round_div(np.int64(1) << LN_RECIP, root)
    # d / sigma at FRAC fractional bits = d * reciprocal * 2^(FRAC - LN_VAR_SHIFT + k/2 - LN_RECIP) / 2^0
    normalized = round_shift_each(d * reciprocal[..., None], (LN_RECIP - FRAC + LN_VAR_SHIFT - k // 2)[..., None])
    return round_shift(normalized * norm.gamma, FRAC) + norm.beta


class _Recorder:
    def __init__(self, trace: dict | None, prefix: str):
        self.trace, self.prefix = trace, prefix

    def __call__(self, name: str, value: np.ndarray) -> np.ndarray:
        if self.trace is not None:
            self.trace[self.prefix + name] = np.array(value[0], dtype=np.int64)  # the one sentence
        return value


def _batched_product(a, a_codes: Codes, b, b_codes: Codes, engine: str) -> np.ndarray:
    """a @ b^T over leading (batch, head) axes. The fast engine does all of them in one float32
    product (exact: the attention products' K * max|a| * max|b| stays far below 2^24); the literal
    one runs each head's product on packed words, as the PE array does."""
    if engine == "fast":
        k = a.shape[-1]
        if k * a_codes.largest * b_codes.largest > gemm.FLOAT32_EXACT:
            raise ValueError("attention product too long for the fast engine")
        return np.matmul(a.astype(np.float32), b.astype(np.float32).swapaxes(-1, -2)).astype(np.int64)
    out = np.empty(a.shape[:-1] + b.shape[-2:-1], dtype=np.int64)
    for index in np.ndindex(*a.shape[:-2]):
        out[index] = product(np.ascontiguousarray(a[index]), a_codes, np.ascontiguousarray(b[index]), b_codes, engine)
    return out


def attention(layer, q, k, v, lengths, engine: str = "fast", record=None, i: int = 0) -> np.ndarray:
    """(batch, tokens, hidden) context accumulators of codes q, k, v (batch, tokens, hidden): scores,
    table exponentials, the division-free probability quantizer, P.V (docs/datapath.md, "Attention")."""
    record = record or _Recorder(None, "")
    att = layer.attention
    batch, tokens, _ = q.shape
    heads, size = att.heads, att.head_size
    split = lambda t: t.reshape(batch, tokens, heads, size).transpose(0, 2, 1, 3)  # noqa: E731
    qh, kh, vh = split(q), split(k), split(v)
    scores = _batched_product(qh, att.query_codes, kh, att.key_codes, engine)
    record(f"layer{i}.scores", scores)
    valid = np.arange(tokens)[None, :] < lengths[:, None]  # (batch, keys)
    probs = probabilities(scores, valid[:, None, None, :], att.exp_table, att.prob_step, att.probs_codes, record, i)
    record(f"layer{i}.probs", probs)
    context = _batched_product(probs, att.probs_codes, vh.transpose(0, 1, 3, 2), att.value_codes, engine)
    context = context.transpose(0, 2, 1, 3).reshape(batch, tokens, heads * size)
    record(f"layer{i}.context", context)
    return context


def probabilities(scores: np.ndarray, valid: np.ndarray, table: np.ndarray, prob_step: int, codes: Codes,
                  record=None, i: int = 0) -> np.ndarray:
    """Probability codes of score rows (last axis: the keys; ``valid`` broadcasts to them): the
    exponentials ``table`` of each row's distances from its maximum, their sum, and the
    division-free quantizer of step ``prob_step`` into ``codes`` (docs/datapath.md, "Attention").
    The softmax unit (hw/blocks/softmax.py) computes this."""
    record = record or _Recorder(None, "")
    masked = np.where(valid, scores, np.iinfo(np.int64).min)
    delta = masked.max(axis=-1, keepdims=True) - scores  # >= 0 on the valid keys
    exps = np.where(valid, table[np.clip(delta, 0, len(table) - 1)], 0)
    record(f"layer{i}.exp", exps)
    total = exps.sum(axis=-1, keepdims=True)
    record(f"layer{i}.exp_sum", total[..., 0])
    # code >= l  <=>  e / sum >= (l - 1/2) * step_P  <=>  2 e 2^P >= (2 l - 1) * step_P * sum
    lhs = 2 * exps << PROB_FRAC
    probs = np.zeros_like(exps)
    for level in range(codes.low + 1, codes.high + 1):
        probs += lhs >= (2 * level - 1) * prob_step * total
    return probs + codes.low


def run_member(member: Member, input_ids: list[list[int]], token_type_ids: list[list[int]] | None = None,
               engine: str = "fast", trace: dict | None = None, batch_size: int = 32, on_batch=None) -> np.ndarray:
    """(sentences, labels) fixed-point logits (FRAC fractional bits) of one member."""
    if trace is not None and len(input_ids) != 1:
        raise ValueError("a trace records exactly one sentence")
    token_type_ids = token_type_ids or [[0] * len(ids) for ids in input_ids]
    out = np.zeros((len(input_ids), member.classifier.out_features), dtype=np.int64)
    order = np.argsort([len(ids) for ids in input_ids], kind="stable")
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        lengths = np.array([len(input_ids[r]) for r in rows])
        ids = np.zeros((len(rows), lengths.max()), dtype=np.int64)
        types = np.zeros_like(ids)
        for j, r in enumerate(rows):
            ids[j, :lengths[j]] = input_ids[r]
            types[j, :lengths[j]] = token_type_ids[r]
        out[rows] = _run_batch(member, ids, types, lengths, engine, _Recorder(trace, member.prefix))
        if on_batch is not None:
            on_batch(len(rows))
    return out


def embed(member: Member, ids: np.ndarray, types: np.ndarray) -> np.ndarray:
    """(batch, tokens, hidden) fixed-point embedding sums of token ids and token types (batch, tokens)."""
    tokens = ids.shape[1]
    if tokens > member.max_position:
        raise ValueError(f"a sentence of {tokens} tokens exceeds the model's {member.max_position} positions")
    return (member.word_signs[ids].astype(np.int64) * member.word_scale[ids][..., None]
            + member.position[:tokens][None] + member.token_type[types])


def _run_batch(member: Member, ids, types, lengths, engine, record) -> np.ndarray:
    batch, tokens = ids.shape
    flat = lambda t: t.reshape(batch * tokens, -1)  # noqa: E731
    record("input_ids", ids)
    embedded = record("embeddings.sum", embed(member, ids, types))
    x = record("embeddings.norm", layer_norm(embedded, member.embedding_norm))
    for i, layer in enumerate(member.layers):
        codes = record(f"layer{i}.input_codes", layer.input_stairs.apply(x))
        qkv = []
        for name, lin in (("query", layer.query), ("key", layer.key), ("value", layer.value)):
            acc = record(f"layer{i}.{name}.acc", linear_accumulate(lin, flat(codes), engine).reshape(batch, tokens, -1))
            qkv.append(record(f"layer{i}.{name}.codes", lin.staircase.apply(acc)))
        context = attention(layer, *qkv, lengths, engine, record, i)
        context_codes = record(f"layer{i}.context_codes", context_staircase(layer, member.max_position).apply(context))
        acc = record(f"layer{i}.attention_output.acc",
                     linear_accumulate(layer.attention_output, flat(context_codes), engine).reshape(batch, tokens, -1))
        y = record(f"layer{i}.attention_output.out", affine(layer.attention_output, acc))
        x = record(f"layer{i}.attention_norm", layer_norm(x + y, layer.attention_norm))
        codes = record(f"layer{i}.ffn_in.codes", layer.ffn_in_stairs.apply(x))
        acc = record(f"layer{i}.ffn_in.acc", linear_accumulate(layer.ffn_in, flat(codes), engine).reshape(batch, tokens, -1))
        codes = record(f"layer{i}.gelu_codes", layer.ffn_in.staircase.apply(acc))
        acc = record(f"layer{i}.ffn_out.acc", linear_accumulate(layer.ffn_out, flat(codes), engine).reshape(batch, tokens, -1))
        y = record(f"layer{i}.ffn_out.out", affine(layer.ffn_out, acc))
        x = record(f"layer{i}.ffn_norm", layer_norm(x + y, layer.ffn_norm))
    cls = x[:, 0]
    codes = record("pooler.codes", member.pooler_stairs.apply(cls))
    acc = record("pooler.acc", linear_accumulate(member.pooler, codes, engine))
    codes = record("tanh_codes", member.pooler.staircase.apply(acc))
    acc = record("classifier.acc", linear_accumulate(member.classifier, codes, engine))
    return record("logits", affine(member.classifier, acc))
