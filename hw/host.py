"""The host side of the accelerator, and the stream formats between the two.

The accelerator runs every binary matrix product (plan.py); the host runs the rest of a member
with the simulator's own functions (bebert.sim.execute): the embeddings, every LayerNorm and
residual add, the attention (scores, table softmax, probability quantizer, P.V) and the
quantizers that read a fixed-point hidden state (input, FFN-in, pooler staircases; the context
staircase). ``member_program`` is that host program for one sentence, written as a generator: it
yields each step with the rows of codes to send and receives the step's results, so a cocotb
testbench (the RTL) and ``reference_step`` (the simulator's arithmetic) drive it the same way.
"""

from __future__ import annotations

from collections.abc import Generator

import numpy as np

from bebert.sim.execute import affine, attention, embed, layer_norm, linear_accumulate
from bebert.sim.program import Codes, context_staircase

from .design.plan import AcceleratorPlan, Step

Results = dict[str, np.ndarray]  # job name -> (rows, M) values: codes or fixed point


# ---- stream formats -------------------------------------------------------------------------------
def stored_codes(codes: np.ndarray, kind: Codes) -> np.ndarray:
    """Codes as the buffers hold them: b-bit two's complement, or one bit (1 for +1) when bipolar."""
    codes = np.asarray(codes, dtype=np.int64)
    return (codes > 0).astype(np.int64) if kind.bipolar else codes & ((1 << kind.bits) - 1)


def row_beats(codes: np.ndarray, kind: Codes, simd: int, act_bits: int) -> list[int]:
    """One row of K codes as ``act_in`` beats: SIMD codes per beat, code c at bits [c*A, (c+1)*A)."""
    stored = stored_codes(codes, kind)
    beats = []
    for start in range(0, len(stored), simd):
        word = 0
        for c, value in enumerate(stored[start:start + simd]):
            word |= int(value) << (c * act_bits)
        beats.append(word)
    return beats


def beat_lanes(beat: int, lanes: int, bits: int) -> list[int]:
    """A ``result_out`` beat as signed lane values."""
    mask, sign = (1 << bits) - 1, 1 << (bits - 1)
    out = []
    for p in range(lanes):
        value = (beat >> (p * bits)) & mask
        out.append(value - (1 << bits) if value & sign else value)
    return out


def step_beats(plan: AcceleratorPlan, step: Step, rows: np.ndarray) -> list[int]:
    """All input beats of one step: its rows of codes, one after another."""
    first = step.jobs[0]
    return [beat for row in rows for beat in row_beats(row, first.input_codes, plan.config.simd, plan.config.act_bits)]


def result_beat_count(plan: AcceleratorPlan, step: Step, rows: int) -> int:
    return rows * sum(plan.out_folds(j) for j in step.jobs if j.to_stream)


def step_results(plan: AcceleratorPlan, step: Step, beats: list[int], rows: int) -> Results:
    """The result beats of one step, split into each streaming job's (rows, M) values."""
    pe = plan.config.pe
    lanes = np.array([beat_lanes(b, pe, plan.value_bits) for b in beats], dtype=np.int64)
    per_row = lanes.reshape(rows, -1, pe)
    out, fold = {}, 0
    for job in step.jobs:
        if job.to_stream:
            folds = plan.out_folds(job)
            out[job.name] = per_row[:, fold:fold + folds].reshape(rows, folds * pe)[:, :job.rows]
            fold += folds
    return out


# ---- the host program -----------------------------------------------------------------------------
def member_program(plan: AcceleratorPlan, member_index: int, ids: list[int], types: list[int] | None = None,
                   ) -> Generator[tuple[Step, np.ndarray], Results, np.ndarray]:
    """Run one member's host operations on one sentence; yields (step, rows of input codes), receives
    the step's results, returns the member's fixed-point logits."""
    member = plan.members[member_index]
    steps = iter(plan.steps)
    ids_ = np.array([ids], dtype=np.int64)
    types_ = np.array([types if types is not None else [0] * len(ids)], dtype=np.int64)
    lengths = np.array([len(ids)])
    x = layer_norm(embed(member, ids_, types_), member.embedding_norm)  # (1, T, H)
    for i, layer in enumerate(member.layers):
        out = yield next(steps), layer.input_stairs.apply(x)[0]
        q, k, v = (out[f"layer{i}.{name}"][None] for name in ("query", "key", "value"))
        context = attention(layer, q, k, v, lengths)
        out = yield next(steps), context_staircase(layer, member.max_position).apply(context)[0]
        x = layer_norm(x + out[f"layer{i}.attention_output"][None], layer.attention_norm)
        out = yield next(steps), layer.ffn_in_stairs.apply(x)[0]
        x = layer_norm(x + out[f"layer{i}.ffn_out"][None], layer.ffn_norm)
    out = yield next(steps), member.pooler_stairs.apply(x[:, 0])
    return out["classifier"][0]


def reference_step(plan: AcceleratorPlan, member_index: int, step: Step, rows: np.ndarray) -> Results:
    """What the accelerator computes for a step, by the simulator's arithmetic (the golden model)."""
    codes, out = np.asarray(rows), {}
    for job in step.jobs:
        lin = plan.linear(member_index, job)
        acc = linear_accumulate(lin, codes, "fast")
        values = affine(lin, acc) if job.affine else lin.staircase.apply(acc)
        if job.to_stream:
            out[job.name] = values
        if job.to_chain:
            codes = values
    return out


def run_member(plan: AcceleratorPlan, member_index: int, ids, types=None, accelerator=None) -> np.ndarray:
    """Drive one member's host program to its logits; ``accelerator(step, rows) -> Results`` runs the
    steps (by default ``reference_step``)."""
    run = accelerator or (lambda step, rows: reference_step(plan, member_index, step, rows))
    program = member_program(plan, member_index, ids, types)
    request = next(program)
    while True:
        try:
            request = program.send(run(*request))
        except StopIteration as stop:
            return stop.value
