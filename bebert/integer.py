"""PyTorch integer mode: the model run on the integer datapath (docs/datapath.md) with torch tensors.

The constants come from the simulator's compiler (``bebert.sim.program``: the datapath's program,
one definition for the simulator, this mode and the RTL's memory images); the execution is
written again here in torch, so that the integer datapath runs wherever the model runs (CPU or
GPU, batched) and the two executions check each other: on the same sentence every intermediate
integer tensor must be equal, name for name, to the simulator's trace.

Integers are int64 tensors; matrix products of codes run as float32 products, exact because every
partial sum is an integer below 2^24 (checked by the compiler).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .sim.ensemble import Simulation, load_simulation
from .sim.fixed import FRAC, LN_NORM_BITS, LN_RECIP, LN_VAR_FLOOR, LN_VAR_SHIFT, PROB_FRAC, mean_square_floor
from .sim.program import Member, Staircase, context_staircase


def _shift(value: torch.Tensor, shift) -> torch.Tensor:
    """value / 2^shift rounded half up (shift > 0, scalar or broadcast tensor)."""
    shift = torch.as_tensor(shift, dtype=torch.int64, device=value.device)
    return (value + (torch.ones_like(shift) << (shift - 1))) >> shift


def _div(value: torch.Tensor, divisor: torch.Tensor) -> torch.Tensor:
    return torch.div(2 * value + divisor, 2 * divisor, rounding_mode="floor")


def _isqrt(value: torch.Tensor) -> torch.Tensor:
    root = torch.floor(torch.sqrt(value.double())).long()
    root = root - (root * root > value).long()
    return root + ((root + 1) * (root + 1) <= value).long()


def _bit_length(value: torch.Tensor) -> torch.Tensor:
    bits = torch.zeros_like(value)
    rest = value.clone()
    for width in (32, 16, 8, 4, 2, 1):  # binary search for the highest set bit
        big = rest >= (1 << width)
        bits = bits + big.long() * width
        rest = torch.where(big, rest >> width, rest)
    return bits + (rest > 0).long()


class _Tables:
    """The compiled program's arrays as torch tensors on one device (converted once)."""

    def __init__(self, device):
        self.device, self.cache = device, {}

    def __call__(self, array: np.ndarray, dtype=torch.int64) -> torch.Tensor:
        key = (id(array), dtype)
        if key not in self.cache:
            self.cache[key] = (torch.as_tensor(np.asarray(array)).to(dtype).to(self.device), array)
        return self.cache[key][0]


class IntegerMember:
    """One member's program, executed with torch."""

    def __init__(self, member: Member, device="cpu"):
        self.member, self.t = member, _Tables(torch.device(device))

    def _stairs(self, stairs: Staircase, x: torch.Tensor) -> torch.Tensor:
        if stairs.lut is not None:
            lut = self.t(stairs.lut, torch.int64)
            index = x - stairs.domain_low
            if lut.shape[0] == 1:
                return lut[0][index]
            return lut[torch.arange(lut.shape[0], device=x.device), index]
        up, down = self.t(stairs.up), self.t(stairs.down)
        hits = (x[..., None] >= up) | (x[..., None] <= down)
        return stairs.low + hits.sum(dim=-1)

    def _linear(self, layer, codes: torch.Tensor) -> torch.Tensor:
        dense = self.t(layer.dense, torch.float32)
        return (codes.float() @ dense).long()

    def _affine(self, layer, acc: torch.Tensor) -> torch.Tensor:
        return _shift(acc * self.t(layer.mult), layer.shift) + self.t(layer.bias)

    def _layer_norm(self, z: torch.Tensor, norm) -> torch.Tensor:
        width = z.shape[-1]
        mean = _div(z.sum(dim=-1), torch.tensor(width, device=z.device))
        d = z - mean[..., None]
        coarse = _shift(d, LN_VAR_SHIFT)
        variance = torch.clamp(mean_square_floor(coarse, width), min=LN_VAR_FLOOR)
        k = torch.clamp(LN_NORM_BITS - _bit_length(variance), min=0) & ~1
        root = _isqrt(variance << k)
        reciprocal = _div(torch.full_like(root, 1 << LN_RECIP), root)
        normalized = _shift(d * reciprocal[..., None], (LN_RECIP - FRAC + LN_VAR_SHIFT - k // 2)[..., None])
        return _shift(normalized * self.t(norm.gamma), FRAC) + self.t(norm.beta)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None,
                trace: dict | None = None) -> torch.Tensor:
        """Fixed-point logits (batch, labels) of unpadded sentences of equal length (batch, tokens)."""
        m, t = self.member, self.t
        batch, tokens = input_ids.shape
        token_type_ids = torch.zeros_like(input_ids) if token_type_ids is None else token_type_ids

        def record(name, value):
            if trace is not None:
                trace[m.prefix + name] = value[0].cpu().numpy().astype(np.int64)
            return value

        record("input_ids", input_ids)
        signs = t(m.word_signs, torch.int64)[input_ids]
        x = signs * t(m.word_scale)[input_ids][..., None] + t(m.position)[:tokens][None] + t(m.token_type)[token_type_ids]
        record("embeddings.sum", x)
        x = record("embeddings.norm", self._layer_norm(x, m.embedding_norm))
        for i, layer in enumerate(m.layers):
            codes = record(f"layer{i}.input_codes", self._stairs(layer.input_stairs, x))
            qkv = []
            for name, lin in (("query", layer.query), ("key", layer.key), ("value", layer.value)):
                acc = record(f"layer{i}.{name}.acc", self._linear(lin, codes))
                qkv.append(record(f"layer{i}.{name}.codes", self._stairs(lin.staircase, acc)))
            context = self._attention(layer, *qkv, record, i)
            context_codes = record(f"layer{i}.context_codes",
                                   self._stairs(context_staircase(layer, m.max_position), context))
            acc = record(f"layer{i}.attention_output.acc", self._linear(layer.attention_output, context_codes))
            y = record(f"layer{i}.attention_output.out", self._affine(layer.attention_output, acc))
            x = record(f"layer{i}.attention_norm", self._layer_norm(x + y, layer.attention_norm))
            codes = record(f"layer{i}.ffn_in.codes", self._stairs(layer.ffn_in_stairs, x))
            acc = record(f"layer{i}.ffn_in.acc", self._linear(layer.ffn_in, codes))
            codes = record(f"layer{i}.gelu_codes", self._stairs(layer.ffn_in.staircase, acc))
            acc = record(f"layer{i}.ffn_out.acc", self._linear(layer.ffn_out, codes))
            y = record(f"layer{i}.ffn_out.out", self._affine(layer.ffn_out, acc))
            x = record(f"layer{i}.ffn_norm", self._layer_norm(x + y, layer.ffn_norm))
        codes = record("pooler.codes", self._stairs(m.pooler_stairs, x[:, 0]))
        acc = record("pooler.acc", self._linear(m.pooler, codes))
        codes = record("tanh_codes", self._stairs(m.pooler.staircase, acc))
        acc = record("classifier.acc", self._linear(m.classifier, codes))
        return record("logits", self._affine(m.classifier, acc))

    def _attention(self, layer, q, k, v, record, i):
        att = layer.attention
        batch, tokens, _ = q.shape
        split = lambda x: x.reshape(batch, tokens, att.heads, att.head_size).transpose(1, 2)  # noqa: E731
        qh, kh, vh = split(q), split(k), split(v)
        scores = record(f"layer{i}.scores", (qh.float() @ kh.float().transpose(-1, -2)).long())
        delta = scores.max(dim=-1, keepdim=True).values - scores
        table = self.t(att.exp_table)
        exps = record(f"layer{i}.exp", table[delta.clamp(max=table.shape[0] - 1)])
        total = exps.sum(dim=-1, keepdim=True)
        record(f"layer{i}.exp_sum", total[..., 0])
        lhs = 2 * exps << PROB_FRAC
        probs = torch.zeros_like(exps)
        for level in range(att.probs_codes.low + 1, att.probs_codes.high + 1):
            probs = probs + (lhs >= (2 * level - 1) * att.prob_step * total).long()
        probs = record(f"layer{i}.probs", probs + att.probs_codes.low)
        context = (probs.float() @ vh.float()).long().transpose(1, 2).reshape(batch, tokens, -1)
        return record(f"layer{i}.context", context)


class IntegerModel:
    """Every member of an artifact on the integer datapath, joined by the ensemble unit's rule."""

    def __init__(self, simulation: Simulation, device="cpu"):
        self.simulation = simulation
        self.members = [IntegerMember(m, device) for m in simulation.members]
        self.device = torch.device(device)

    @classmethod
    def from_artifact(cls, directory: str | Path, device="cpu") -> "IntegerModel":
        return cls(load_simulation(directory), device)

    @torch.no_grad()
    def member_logits(self, input_ids: list[list[int]], token_type_ids=None, trace: dict | None = None) -> np.ndarray:
        """(members, sentences, labels) fixed-point logits; sentences run in groups of equal length."""
        token_type_ids = token_type_ids or [[0] * len(ids) for ids in input_ids]
        out = np.zeros((len(self.members), len(input_ids), self.simulation.members[0].classifier.out_features),
                       dtype=np.int64)
        by_length: dict[int, list[int]] = {}
        for row, ids in enumerate(input_ids):
            by_length.setdefault(len(ids), []).append(row)
        for rows in by_length.values():
            ids = torch.tensor([input_ids[r] for r in rows], device=self.device)
            types = torch.tensor([token_type_ids[r] for r in rows], device=self.device)
            for j, member in enumerate(self.members):
                out[j, rows] = member.forward(ids, types, trace).cpu().numpy()
        return out

    def predict(self, input_ids, token_type_ids=None) -> np.ndarray:
        return self.simulation.join(self.member_logits(input_ids, token_type_ids))
