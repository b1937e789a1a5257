"""A layer's attention on chip, query after query: the score unit, the softmax unit, the context unit
and the context staircase in one pipeline (docs/datapath.md, "Attention"), bit for bit as
``bebert.sim.execute.attention`` followed by ``context_staircase``.

The layer's keys and values are written into the units' banks (``key_write``, ``value_write``, a
head slice a cycle) while the PE array computes them; then each query's head slices arrive on
``query_in``, head 0 first, and the token's context codes leave on ``context_out``, a head slice a
beat (``heads`` beats a token): the attention_output product's input. Per head the score row (L
keys a beat) streams into the softmax, whose probability row streams into the context unit; the
head's context accumulators go through the staircase quantizer (staircase_quantizer.py, its
thresholds a head's word at ``context_base`` + head, or one word at ``context_base`` when every
channel shares the staircase). The controller holds ``length``, the layer's
``table_last``, ``prob_step`` and ``context_base`` while a layer runs; the exponential tables and
the thresholds are parameter memories outside, read through ``table_addr``/``table_data`` and
``threshold_addr``/``thresholds`` with one cycle of latency.

Cycle model (``PipelineShape.queries``): every unit takes its rows in order, each once it has taken
its previous row and its input's first beat is there; the softmax sets the pace.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out, connect, flipped

from bebert.sim.program import Codes

from .attention_products import CONTEXT_LATENCY, SCORE_LATENCY, AttentionShape, ContextUnit, ScoreUnit
from .softmax import OUT_LATENCY as SOFTMAX_OUT_LATENCY
from .softmax import SCALAR_CYCLES, SoftmaxShape, SoftmaxUnit
from .staircase_quantizer import QUANTIZE_LATENCY, QuantizerShape, StaircaseQuantizer


@dataclass(frozen=True)
class PipelineShape:
    """The units' shapes, the codes the context staircase gives (attention_output's input codes),
    the width of its thresholds and how many threshold words (a head each, or one a layer when every
    channel shares the staircase) the memory holds."""

    attention: AttentionShape
    softmax: SoftmaxShape
    context_codes: Codes
    threshold_bits: int
    threshold_words: int
    shared: bool = False  # the context staircase one row for every channel (the quantizer's ``shared``)

    def __post_init__(self):
        a, sm = self.attention, self.softmax
        if (sm.tokens, sm.lanes, sm.score_bits, sm.prob_bits) != (a.tokens, a.lanes, a.score_bits, a.probs.bits):
            raise ValueError(f"the softmax {sm} does not fit the attention units {a}")

    @property
    def staircase(self) -> QuantizerShape:
        a = self.attention
        return QuantizerShape(a.head_size, a.heads * a.head_size, a.context_bits, self.threshold_bits,
                              self.context_codes, self.threshold_words, shared=self.shared)

    def queries(self, ready: list[int], length: int, free: dict | None = None) -> list[int]:
        """For queries (a token each: ``heads`` rows) whose head slices are offered from cycle
        ``ready[i]`` on, the cycle each one's last context beat leaves; ``free``, each unit's next
        free cycle, carries over from one call to the next (a layer's queries come one by one)."""
        a, sm = self.attention, self.softmax
        beats = a.row_beats(length)
        free = free if free is not None else {"score": 0, "softmax": 0, "context": 0}
        done = []
        for start in ready:
            end = start
            for _ in range(a.heads):
                score = max(free["score"], start)  # the query taken
                free["score"] = score + a.score_row_cycles(length)
                softmax = max(free["softmax"], score + 1 + SCORE_LATENCY)  # the row's first score beat taken
                free["softmax"] = softmax + sm.row_cycles(length)
                first_probability = softmax + 2 * beats + SCALAR_CYCLES + sm.levels + SOFTMAX_OUT_LATENCY
                context = max(free["context"], first_probability)
                free["context"] = context + a.context_row_cycles(length)
                end = context + a.context_row_cycles(length) - 1 + CONTEXT_LATENCY + QUANTIZE_LATENCY
            done.append(end)
        return done


class AttentionPipeline(wiring.Component):
    def __init__(self, shape: PipelineShape):
        self.shape = s = shape
        self._units = (ScoreUnit(s.attention), SoftmaxUnit(s.softmax), ContextUnit(s.attention),
                       StaircaseQuantizer(s.staircase))
        score, softmax, context, staircase = self._units
        super().__init__({
            "key_write": In(score.write.signature.flip()),
            "value_write": In(context.write.signature.flip()),
            "query_in": In(score.query_in.signature.flip()),
            "context_out": Out(staircase.row_out.signature),
            "length": In(range(1, s.attention.tokens + 1)),
            "table_last": In(softmax.table_last.shape()),
            "prob_step": In(softmax.prob_step.shape()),
            "context_base": In(staircase.base.shape()),
            "table_addr": Out(softmax.table_addr.shape()),
            "table_data": In(softmax.table_data.shape()),
            "threshold_addr": Out(staircase.threshold_addr.shape()),
            "thresholds": In(staircase.thresholds.shape()),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        score, softmax, context, staircase = self._units
        # named apart from the units' own signals (an FSM called scores, say): Verilator's lint flags a
        # submodule instance whose name a signal inside it repeats (VARHIDDEN)
        m.submodules.score_unit, m.submodules.softmax_unit = score, softmax
        m.submodules.context_unit, m.submodules.context_staircase = context, staircase
        connect(m, flipped(self.key_write), score.write)
        connect(m, flipped(self.value_write), context.write)
        connect(m, flipped(self.query_in), score.query_in)
        connect(m, score.row_out, softmax.row_in)
        connect(m, softmax.row_out, context.row_in)
        m.d.comb += [staircase.row_in.valid.eq(context.row_out.valid), context.row_out.ready.eq(staircase.row_in.ready),
                     staircase.row_in.payload.eq(context.row_out.payload)]
        connect(m, staircase.row_out, flipped(self.context_out))
        m.d.comb += [score.length.eq(self.length), softmax.length.eq(self.length), context.length.eq(self.length),
                     softmax.table_last.eq(self.table_last), softmax.prob_step.eq(self.prob_step),
                     staircase.base.eq(self.context_base),
                     self.table_addr.eq(softmax.table_addr), softmax.table_data.eq(self.table_data),
                     self.threshold_addr.eq(staircase.threshold_addr), staircase.thresholds.eq(self.thresholds),
                     self.busy.eq(score.busy | softmax.busy | context.busy | staircase.busy)]
        return m
