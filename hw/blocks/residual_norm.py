"""The residual stream and the LayerNorm unit joined: a product's row (or an embedding row) in, its
residual sum normalized, stored as its token's hidden state and quantized into the next product's
codes (docs/datapath.md: the residual adds, "LayerNorm", the quantizers that read a hidden state),
bit for bit as ``layer_norm(x + y)`` and ``Staircase.apply`` in ``bebert.sim.execute``.

``add_row`` tags each row as the residual stream takes it (token, embed, the staircase's
``threshold_base`` and the LayerNorm's ``norm_base``, its gain and bias words); the residual
stream's sums go into the LayerNorm unit, whose rows come back on the norm path in the same order.
Gain and bias come from a parameter memory at ``norm_addr`` (the row's base + the beat, one cycle
of read latency), the thresholds from one at ``threshold_addr``.

Cycle model (``NormTiming.rows``): a row's LayerNorm starts once its first sum is there and the
unit has taken its previous row; its codes are out a fixed latency after its LayerNorm's row ends.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out, connect, flipped

from .layer_norm import OUT_LATENCY, LayerNormShape, LayerNormUnit
from .residual_stream import ADD_LATENCY, NORM_LATENCY, ResidualShape, ResidualStream


@dataclass(frozen=True)
class NormTiming:
    """The two blocks' shapes, which must agree: the residual sums are the LayerNorm's inputs, its
    outputs the hidden states."""

    residual: ResidualShape
    layer_norm: LayerNormShape

    def __post_init__(self):
        r, ln = self.residual, self.layer_norm
        if (r.hidden, r.lanes, r.sum_bits, r.state_bits) != (ln.width, ln.lanes, ln.in_bits, ln.out_bits):
            raise ValueError(f"the residual stream {r} does not feed the LayerNorm unit {ln}")

    def rows(self, arrivals: list[int], free: dict | None = None) -> list[int]:
        """For rows whose first beat is offered to the residual add at ``arrivals[i]`` (taken at
        once, or as the LayerNorm makes room), the cycle each one's last codes beat leaves; ``free``
        (the LayerNorm's next free cycle) carries over between calls."""
        ln = self.layer_norm
        free = free if free is not None else {"layer_norm": 0}
        done = []
        for arrival in arrivals:
            start = max(free["layer_norm"], arrival + ADD_LATENCY)  # the row's first sum taken
            free["layer_norm"] = start + ln.row_cycles
            done.append(start + ln.row_cycles - 1 + OUT_LATENCY + NORM_LATENCY)
        return done


class ResidualNorm(wiring.Component):
    def __init__(self, timing: NormTiming):
        self.timing = timing
        self._residual, self._layer_norm = ResidualStream(timing.residual), LayerNormUnit(timing.layer_norm)
        r, ln = self._residual, self._layer_norm
        super().__init__({
            "add_row": In(r.add_row.signature.flip()),
            "add_in": In(r.add_in.signature.flip()),
            "codes_out": Out(r.codes_out.signature),
            "threshold_addr": Out(r.threshold_addr.shape()),
            "thresholds": In(r.thresholds.shape()),
            "norm_addr": Out(range(timing.residual.norm_words)),
            "gain": In(ln.gain.shape()),
            "bias": In(ln.bias.shape()),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        r, ln = self._residual, self._layer_norm
        m.submodules.residual, m.submodules.layer_norm = r, ln
        connect(m, flipped(self.add_row), r.add_row)
        connect(m, flipped(self.add_in), r.add_in)
        connect(m, r.sum_out, ln.row_in)
        connect(m, ln.row_out, r.norm_in)
        connect(m, r.codes_out, flipped(self.codes_out))
        m.d.comb += [self.threshold_addr.eq(r.threshold_addr), r.thresholds.eq(self.thresholds),
                     self.norm_addr.eq(r.norm_base + ln.param_addr), ln.gain.eq(self.gain), ln.bias.eq(self.bias),
                     self.busy.eq(r.busy | ln.busy)]
        return m
