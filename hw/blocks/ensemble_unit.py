"""The ensemble unit: joins the members' fixed-point logits, as they finish, into one class.

Members run one after another on the PE array; each member's logits arrive once (``accumulate``)
with its integer weight A_m = round(alpha_m 2^ALPHA_FRAC) (docs/datapath.md, "Head and ensemble"):

* ``logits``: score_c += A_m * logit_c;
* ``vote``: score_c += A_m for the member's own first-largest logit c.

``answer`` is the first class with the largest score, combinationally; ``clear`` zeroes the scores
before a sentence.

The logits, the weight and ``accumulate`` are registered first, and the multiply and add happen
the cycle after: the logits come combinationally from the output unit's multiply and shift, and
both multiplies in one cycle were the design's critical path. Cycle model: a member's logits are
taken in the classifier's output cycle and reach the scores one cycle later, so the answer waits
one settle cycle after the last member (SETTLE_CYCLES).
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from bebert.sim.fixed import ALPHA_FRAC

from ..resources import Resources, ceil_div

SETTLE_CYCLES = 1  # the registered logits reach the scores one cycle after they are taken


def first_argmax(values):
    """Index of the first largest value, as a chain of compares (ties keep the earlier index)."""
    best_index, best = 0, values[0]
    for i in range(1, len(values)):
        better = values[i] > best
        best_index = Mux(better, i, best_index)
        best = Mux(better, values[i], best)
    return best_index


class EnsembleUnit(wiring.Component):
    def __init__(self, labels: int, value_bits: int, score_bits: int, combine: str):
        if combine not in ("logits", "vote"):
            raise ValueError(f"combine must be 'logits' or 'vote', not {combine!r}")
        self.labels, self.combine = labels, combine
        super().__init__({
            "logits": In(data.ArrayLayout(signed(value_bits), labels)),
            "alpha": In(ALPHA_FRAC + 8),
            "accumulate": In(1),
            "clear": In(1),
            "scores": Out(data.ArrayLayout(signed(score_bits), labels)),
            "answer": Out(range(labels)),
        })

    def elaborate(self, platform):
        m = Module()
        taken = Signal.like(self.logits, name="taken_logits")
        alpha = Signal.like(self.alpha, name="taken_alpha")
        pending = Signal()  # taken logits wait to join the scores
        m.d.sync += pending.eq(self.accumulate & ~self.clear)
        with m.If(self.accumulate):
            m.d.sync += [taken.eq(self.logits), alpha.eq(self.alpha)]
        logits = [taken[c] for c in range(self.labels)]
        scores = [self.scores[c] for c in range(self.labels)]
        vote = first_argmax(logits)
        for c in range(self.labels):
            if self.combine == "logits":
                add = logits[c] * alpha
            else:
                add = Mux(vote == c, alpha, 0)
            with m.If(self.clear):
                m.d.sync += scores[c].eq(0)
            with m.Elif(pending):
                m.d.sync += scores[c].eq(scores[c] + add)
        m.d.comb += self.answer.eq(first_argmax(scores))
        return m


# ---- the resource model ---------------------------------------------------------------------------
def ensemble_unit_resources(labels: int, value_bits: int, score_bits: int, combine: str) -> Resources:
    """Per label a score register and its adder (and for ``logits`` the alpha multiply in DSPs);
    two argmax chains of compares; the registers of the taken logits and weight (for ``logits``
    the DSP slices' own input registers, not fabric flip-flops) and the pending flag."""
    dsp = labels * ceil_div(value_bits, 25) * ceil_div(ALPHA_FRAC + 9, 18) if combine == "logits" else 0
    lut = labels * (2 * score_bits) + (labels - 1) * (score_bits + value_bits)
    taken = 0 if combine == "logits" else labels * value_bits + ALPHA_FRAC + 8
    return Resources(lut=lut, ff=labels * score_bits + taken + 1, dsp=dsp)
