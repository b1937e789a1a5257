"""The encoder on chip's schedule: the order in which the PE array runs a member's products, what each
waits for, and the event model of an inference's cycles that the RTL's controller is built to.

One member runs after another. Per member the host's embedding rows pass the residual add (no
residual) into the LayerNorm unit, whose output rows are stored as the hidden states and quantized
into the codes store (one row of codes per token). Then per layer, on the PE array:

    key_value(t)   for every token        K and V codes into the attention units' banks
    query(0)
    for every token t, and once more:
        attention_output(t)               waits for the context codes of token t (not after the last)
        query(t + 1)                      (not after the last token)
        ffn(t - 1)                        waits for the FFN-in codes of token t - 1 (not at first)

and after the last layer the head (pooler, classifier) on the [CLS] row's codes. Beside the array,
query(t) starts token t's attention on the units, head after head (scores, softmax, context, the
context staircase), which runs while the array computes ffn(t - 2); attention_output(t)'s rows go
through the residual add into the LayerNorm unit (its output: the FFN-in codes of t, ready while the
array computes query(t + 1) and ffn(t - 1)), ffn(t)'s rows the same way (its output: the next
layer's input codes of t, or the pooler's codes). The LayerNorm unit takes rows in the order they
arrive, which is the array's order. The head waits for the member's last LayerNorm row, so that the
next member's embeddings find the codes store idle.

``member_order`` lists a member's PE steps in this order, once for the model below and for the
RTL's sequencer (hw/blocks/encoder_sequencer.py), whose test checks it against this list. Rows are handed between units whole (store and forward): a row may start on a unit once its input
row is complete and the unit has taken its previous row. ``inference_cycles`` computes every row's
start and end from the blocks' own cycle models (hw/blocks) and the handoff latencies below; the
``serial`` order, each row on any unit waiting for every row before it (one unit at a time), is the
baseline it is measured against (docs/accelerator.md).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

from .accelerator import job_cycles, step_cycles
from .blocks.encoder_sequencer import StepKind
from .blocks.ensemble_unit import SETTLE_CYCLES
from .blocks.param_loader import LOADED_LATENCY, RELEASE_TO_BEAT
from .blocks.row_gearbox import ROW_LATENCY as GEARBOX_LATENCY
from .blocks.row_store import READ_LATENCY as STORE_READ_LATENCY
from .design.plan import AcceleratorPlan
from .encoder_units import EncoderUnits

# The encoder's latencies between units (hw/encoder_accelerator.py):
STEP_OVERHEAD = 1 + STORE_READ_LATENCY  # a step's take (the STEP cycle), and its row's first read from a store
EVENT_TO_STEP = 2  # a row's last codes (or context) beat written to its step offered: the store's written
#                    pulse, then the sequencer's ready flag (both registers)
ROW_HANDOFF = GEARBOX_LATENCY - 1  # a product's row ended to its first beat out of the gearbox


@dataclass
class EncoderCycles:
    """One inference's cycles: the total, the PE array's busy cycles by step, its waits by cause, and
    every unit's busy cycles (its rows' occupancy)."""

    total: int = 0
    pe_busy: dict = field(default_factory=lambda: defaultdict(int))
    pe_waits: dict = field(default_factory=lambda: defaultdict(int))
    unit_busy: dict = field(default_factory=lambda: defaultdict(int))

    @property
    def pe_busy_total(self) -> int:
        return sum(self.pe_busy.values())


def encoder_steps(plan: AcceleratorPlan, layer: int) -> dict[str, int]:
    """PE cycles of one row of each of a layer's encoder steps: its input beats (from the codes or
    context store), then its jobs."""
    jobs = {job.name.split(".", 1)[1]: job for job in plan.jobs if job.name.startswith(f"layer{layer}.")}

    def step(*names):
        return plan.in_folds(jobs[names[0]]) + sum(job_cycles(plan, jobs[n]) for n in names)

    return {"key_value": step("key", "value"), "query": step("query"),
            "attention_output": step("attention_output"), "ffn": step("ffn_in", "ffn_out")}


class _Timeline:
    """Every unit's next free cycle, and the PE array's sequence with its waits and busy cycles."""

    def __init__(self, plan: AcceleratorPlan, units: EncoderUnits, tokens: int, serial: bool):
        self.plan, self.units, self.tokens, self.serial = plan, units, tokens, serial
        self.out = EncoderCycles()
        self.pe_free = 0
        self.norm_free = {"layer_norm": 0}  # the LayerNorm unit's next free cycle
        self.attention_free = {"score": 0, "softmax": 0, "context": 0}  # the attention units' next free cycles
        self.done = 0  # the latest completion of any row so far (what a serial step waits for)

    def _finish(self, time: int) -> int:
        self.done = max(self.done, time)
        return time

    def _ready(self, ready: int) -> int:
        return max(ready, self.done) if self.serial else ready

    def pe(self, kind: str, cycles: int, ready: int, cause: str, params: int = 0) -> int:
        """A PE step of ``cycles`` (and the take and first read, ``STEP_OVERHEAD``) whose input's last
        beat is written at ``ready`` and whose parameters are loaded at ``params``; returns its end
        (``self.taken``: the cycle it was taken)."""
        start = max(self.pe_free, self._ready(ready + EVENT_TO_STEP))
        if params > start:
            start, cause = params, "parameters"
        cycles += STEP_OVERHEAD
        if start > self.pe_free:
            self.out.pe_waits[cause] += start - self.pe_free
        self.taken = start
        self.pe_free = start + cycles
        self.out.pe_busy[kind] += cycles
        return self._finish(self.pe_free)

    def layer_norm(self, arrival: int) -> int:
        """A row whose first beat is offered to the residual add at ``arrival``; returns when its
        codes are out, into the codes store."""
        ln, res = self.units.layer_norm, self.units.residual
        end = self.units.norm.rows([self._ready(arrival)], self.norm_free)[0]
        self.out.unit_busy["layer_norm"] += ln.row_cycles
        self.out.unit_busy["residual_stream"] += 2 * res.beats
        return self._finish(end)

    def product_row(self, end: int) -> int:
        """An affine product's row completed at ``end``, into the residual add then the LayerNorm."""
        return self.layer_norm(end + ROW_HANDOFF)

    def attention(self, query_end: int, keys_end: int) -> int:
        """One token's attention, head after head; returns when its last context codes are out."""
        att, sm, n = self.units.attention, self.units.softmax, self.tokens
        ready = self._ready(max(query_end, keys_end) + ROW_HANDOFF)
        end = self.units.pipeline.queries([ready], n, self.attention_free)[0]
        for name, cycles in (("attention_scores", att.score_row_cycles(n)), ("softmax", sm.row_cycles(n)),
                             ("attention_context", att.context_row_cycles(n))):
            self.out.unit_busy[name] += att.heads * cycles
        return self._finish(end)


class _Loads:
    """Streamed parameters: when each parameter unit is in its layer slot. The source offers a beat
    ``interval`` cycles after the one before was taken (the first at once); the loader takes it
    once the unit's slot is free (param_loader.py)."""

    def __init__(self, plan: AcceleratorPlan, interval: float):
        if interval < 1:
            raise ValueError(f"the parameter stream offers at most a beat a cycle, not one every {interval}")
        self.plan, self.interval = plan, interval
        self.offered = 0.0  # the next beat's earliest cycle
        self.slot_free = [0, 0]
        self.units = 0  # units loaded so far in the sentence

    def load(self, unit: str) -> int:
        """The next unit's load; returns the first cycle its steps may be taken."""
        first = max(math.ceil(self.offered), self.slot_free[self.units % 2])
        last = first + math.ceil((self.plan.unit_beats(unit) - 1) * self.interval)
        self.offered, self.units = last + self.interval, self.units + 1
        return last + LOADED_LATENCY

    def release(self, units: int, time: int) -> None:
        """The slot of the ``units``-th unit (from 0) is read for the last time as its last step ends
        at ``time``."""
        self.slot_free[units % 2] = time + RELEASE_TO_BEAT


@dataclass(frozen=True)
class PEStep:
    """One step of the PE array: ``kind`` (``STEP_KINDS``), the layer and the token it runs on (the
    head: layer and token 0)."""

    kind: str
    layer: int = 0
    token: int = 0


STEP_KINDS = tuple(kind.name.lower() for kind in StepKind)  # key_value, query, attention_output, ffn, head


def member_order(layers: int, tokens: int) -> list[PEStep]:
    """One member's PE steps in the order the array runs them (the module's schedule)."""
    order = []
    for layer in range(layers):
        order += [PEStep("key_value", layer, t) for t in range(tokens)] + [PEStep("query", layer, 0)]
        for t in range(tokens + 1):
            if t < tokens:
                order.append(PEStep("attention_output", layer, t))
            if t + 1 < tokens:
                order.append(PEStep("query", layer, t + 1))
            if t >= 1:  # a token behind, so that its first LayerNorm runs under the array's work
                order.append(PEStep("ffn", layer, t - 1))
    return order + [PEStep("head")]


def inference_cycles(plan: AcceleratorPlan, units: EncoderUnits, tokens: int, serial: bool = False,
                     beat_interval: float = 1) -> EncoderCycles:
    """The cycles of one inference of ``tokens`` tokens under the schedule above (``serial``: each
    row on any unit waits until every row before it is complete). Streamed parameters arrive a beat
    every ``beat_interval`` cycles at most (``_Loads``); each unit's steps wait for its load."""
    if not 1 <= tokens <= units.attention.tokens:
        raise ValueError(f"a sentence of {tokens} tokens on a build for {units.attention.tokens}")
    line = _Timeline(plan, units, tokens, serial)
    loads = _Loads(plan, beat_interval) if plan.config.streamed else None
    layers = sum(1 for s in plan.steps if s.name.endswith(".qkv"))
    head = next(s for s in plan.steps if s.name == "head")
    beats = units.residual.beats
    steps = [encoder_steps(plan, layer) for layer in range(layers)]
    order = member_order(layers, tokens)
    unit_of = [layers - 1 if step.kind == "head" else step.layer for step in order]  # into plan.param_units
    unit_ends = {i for i in range(len(order)) if i + 1 == len(order) or unit_of[i + 1] != unit_of[i]}
    member_start, loaded = 0, 0
    for _ in range(plan.ensemble_members):
        # the embeddings stream in a beat a cycle, each row through the add into the LayerNorm
        codes = [line.layer_norm(member_start + t * beats) for t in range(tokens)]
        keys_end, context = 0, [0] * tokens
        for i, step in enumerate(order):
            if loads and (i == 0 or unit_of[i] != unit_of[i - 1]):
                loaded = loads.load(plan.param_units[unit_of[i]].name)
            t = step.token
            cycles = step_cycles(plan, head) if step.kind == "head" else steps[step.layer][step.kind]
            if step.kind == "key_value":
                keys_end = line.pe(step.kind, cycles, codes[t], "layer_norm", loaded)
            elif step.kind == "query":  # token t's attention starts on the units
                context[t] = line.attention(line.pe(step.kind, cycles, codes[t], "layer_norm", loaded), keys_end)
            elif step.kind in ("attention_output", "ffn"):
                ready, cause = (context[t], "attention") if step.kind == "attention_output" else (codes[t], "layer_norm")
                codes[t] = line.product_row(line.pe(step.kind, cycles, ready, cause, loaded))
            else:  # the head, once every row of the member is through its LayerNorm
                line.pe("head", cycles, line.done, "layer_norm", loaded)
                member_start = line.taken + 1  # the next member's embeddings stream once the head is taken
            if loads and i in unit_ends:
                loads.release(loads.units - 1, line.pe_free)
    line.out.total = line.pe_free + SETTLE_CYCLES + 1  # the last logits join the scores; the answer
    return line.out
