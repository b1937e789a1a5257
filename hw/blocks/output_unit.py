"""The output unit: accumulators to the next quantizer's codes, or to fixed point (docs/datapath.md).

Per lane, combinationally, from the fold's finished accumulator and its parameter words:

* **thresholds** (FINN's threshold unit with a falling side for GELU): hit_l = acc >= up_l or
  acc <= down_l; the code is low + number of hits, or -1 / +1 by the first hit for bipolar codes.
  The code leaves as a signed value on the result stream and, in the buffers' storage format
  (b-bit two's complement, or one bit, 1 for +1), into the chain buffer.
* **affine**: y = ((acc * M_c + 2^(S-1)) >> S) + B_c, an arithmetic shift (round half up).

Cycle model: combinational; the controller spends one output cycle per fold on it.
"""

from __future__ import annotations

from amaranth import Const, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from bebert.sim.fixed import MULT_BITS

from .compressor import popcount
from ..design.plan import SHIFT_BITS, AcceleratorPlan
from ..resources import Resources, ceil_div, coefficients, linear_cost


class OutputUnit(wiring.Component):
    """Ports: ``accumulators`` (PE x acc_bits), ``thresholds`` and ``affine_params`` (one memory word
    each, layouts in images.py), ``affine`` (mode), ``low`` (the codes' lowest value), ``bipolar``;
    out ``values`` (PE x value_bits signed: fixed point or code) and ``codes`` (PE x act_bits,
    storage format)."""

    def __init__(self, plan: AcceleratorPlan):
        self.plan = plan
        cfg = plan.config
        super().__init__({
            "accumulators": In(data.ArrayLayout(signed(plan.acc_bits), cfg.pe)),
            "thresholds": In(plan.threshold_width),
            "affine_params": In(plan.affine_width),
            "affine": In(1),
            "low": In(signed(cfg.act_bits + 1)),
            "bipolar": In(1),
            "values": Out(data.ArrayLayout(signed(plan.value_bits), cfg.pe)),
            "codes": Out(cfg.pe * cfg.act_bits),
        })

    def elaborate(self, platform):
        m = Module()
        plan, bits = self.plan, self.plan.config.act_bits
        t, levels, lane_bits = plan.threshold_bits, plan.levels, plan.affine_lane_bits
        shift = self.affine_params[:SHIFT_BITS]
        half = Signal(2**SHIFT_BITS)
        m.d.comb += half.eq((Const(1, 2**SHIFT_BITS) << shift) >> 1)  # 2^(S-1), or 0 for S = 0
        for p in range(plan.config.pe):
            acc = self.accumulators[p]
            # signals, not expressions, for values used more than once (Amaranth re-emits expressions)
            hits = Signal(levels, name=f"hits{p}")
            code = Signal(signed(bits + 2), name=f"code{p}")
            for level in range(levels):
                base = (p * levels + level) * 2 * t
                up = self.thresholds[base:base + t].as_signed()
                down = self.thresholds[base + t:base + 2 * t].as_signed()
                m.d.comb += hits[level].eq((acc >= up) | (acc <= down))
            m.d.comb += code.eq(self.low + popcount(m, hits, f"count{p}"))
            code_value = Mux(self.bipolar, Mux(hits[0], 1, -1), code)
            stored = Mux(self.bipolar, hits[0], code[:bits])
            lane = self.affine_params[SHIFT_BITS + p * lane_bits:SHIFT_BITS + (p + 1) * lane_bits]
            mult, bias = lane[:MULT_BITS], lane[MULT_BITS:].as_signed()
            fixed = ((acc * mult + half) >> shift) + bias
            m.d.comb += [
                self.values[p].eq(Mux(self.affine, fixed, code_value)),
                self.codes[p * bits:(p + 1) * bits].eq(stored),
            ]
        return m


# ---- the resource model ---------------------------------------------------------------------------
# LUTs per structure count, fitted on Yosys' synth_xilinx of this block (scripts/resource_check.py
# --fit): per threshold bit compared (levels x 2 per lane), per product bit of a lane (the
# round-shift by a variable amount and the bias add), per value bit of a lane (the result select).
LUT_COEFFICIENTS = coefficients("output_unit")
DSP_A_BITS, DSP_B_BITS = 25, 18  # a DSP48E1 multiplies 25 x 18 bits (signed)


def output_unit_features(plan: AcceleratorPlan) -> dict[str, float]:
    pe = plan.config.pe
    return {"compare_bits": pe * plan.levels * 2 * plan.threshold_bits,
            "product_bits": pe * (plan.acc_bits + MULT_BITS), "value_bits": pe * plan.value_bits}


def output_unit_resources(plan: AcceleratorPlan) -> Resources:
    """Resources of the output unit: per lane, levels x 2 threshold compares and the hit count,
    the multiply (DSP48 tiles of the accumulator by the unsigned multiplier) and the shift and add."""
    dsp = ceil_div(plan.acc_bits, DSP_A_BITS) * ceil_div(MULT_BITS + 1, DSP_B_BITS)
    lut = linear_cost(LUT_COEFFICIENTS, output_unit_features(plan))
    return Resources(lut=lut, dsp=plan.config.pe * dsp,
                     carry=plan.config.pe * ceil_div(plan.levels * 2 * plan.threshold_bits, 4))
