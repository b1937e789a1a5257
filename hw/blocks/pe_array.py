"""The PE array: PE lanes, each a SIMD-bit popcount and an accumulator (docs/datapath.md, "Matrix products").

Each cycle every lane p meets the same SIMD activation bits x with its own SIMD weight bits w_p and
counts c = popcount(x AND w_p) (one bit plane of b-bit codes, 1-1-4) or popcount(x XOR w_p)
(bipolar codes, XNOR mode, 1-1-1). With B the pass's base, the pass contributes

* AND mode: (2c - B) 2^j for bit plane j, with B = popcount(x), the number of set activation bits
  (weights are +-1: each set activation bit adds w), negated for the sign plane of two's
  complement codes;
* XNOR mode: B - 2c with B = ``valid``, the real inputs of this fold (padding bits are 0 in both
  operands and never differ), so the folds sum to K - 2 popcount(a XOR w) = sum_k a_k w_k.

So each lane accumulates (2c - B) times a weight +-2^j that all lanes share (``plane`` j,
``negative``), and ``clear`` starts an output fold from zero: a pre-add, a multiply and an
accumulate, the shape of one DSP48 slice (its pre-adder, multiplier and P register), where the
accumulator costs no LUTs. The accumulator is acc_bits wide: partial sums may wrap, the
arithmetic is modulo 2^acc_bits, and the finished fold fits.

The popcounts are compressor trees of one-LUT counters (compressor.py): a lane's leaves take three
products (AND or XOR, fused into the six-input LUT), or two and the mode bit where a model uses
both modes (``modes``); B = popcount(x) is one plain-bit compressor all lanes share.

Inputs are registered by the controller; the accumulators update at the clock edge.

Cycle model: an output fold takes in_folds x planes accumulating cycles (fold_cycles below; the
controller adds its own drain and output cycles).
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .compressor import compressor_popcount, compressor_shape
from ..resources import Resources, ceil_div, coefficients, linear_cost

MODES = ("and", "xnor")


def lane_kind(modes: tuple[str, ...]) -> str:
    """The compressor leaves of a lane: one product kind, or a select between the two."""
    return modes[0] if len(modes) == 1 else "select"


class PEArray(wiring.Component):
    """PE lanes of SIMD-bit popcounts with ``acc_bits``-wide accumulators, for the product ``modes``
    ("and", "xnor" or both) a model uses and codes of up to ``planes`` bit planes.

    Ports: ``activations`` (SIMD bits, one bit plane or bipolar bits), ``weights`` (PE x SIMD bits,
    lane p at [p*SIMD, (p+1)*SIMD)), ``xnor_mode`` (with both modes: this pass is XNOR), ``valid``
    (real inputs of this fold), ``plane`` (the pass's bit plane j: weight 2^j), ``negative``
    (subtract this pass: XNOR passes and the sign plane), ``clear`` (start an output fold),
    ``enable`` (accumulate this cycle); ``accumulators`` (PE signed values).
    """

    def __init__(self, pe: int, simd: int, acc_bits: int, modes: tuple[str, ...] = MODES, planes: int = 1):
        for name, value in (("PE", pe), ("SIMD", simd), ("accumulator width", acc_bits), ("planes", planes)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        modes = tuple(mode for mode in MODES if mode in modes)
        if not modes:
            raise ValueError(f"the PE array needs at least one product mode of {MODES}")
        self.pe, self.simd, self.acc_bits, self.modes, self.planes = pe, simd, acc_bits, modes, planes
        super().__init__({
            "activations": In(simd),
            "weights": In(pe * simd),
            "xnor_mode": In(1),
            "valid": In(range(simd + 1)),
            "plane": In(range(max(planes, 2))),  # one bit at least: a port on every array
            "negative": In(1),
            "clear": In(1),
            "enable": In(1),
            "accumulators": Out(data.ArrayLayout(signed(self.acc_bits), pe)),
        })

    def elaborate(self, platform):
        m = Module()
        x = self.activations
        base = Signal(range(self.simd + 1), name="base")  # B: shared by every lane
        if self.modes == ("xnor",):
            m.d.comb += base.eq(self.valid)
        else:
            ones = compressor_popcount(m, [x[i] for i in range(self.simd)], "bits", "ones_x")
            m.d.comb += base.eq(ones if self.modes == ("and",) else Mux(self.xnor_mode, self.valid, ones))
        weight = Signal(signed(max(self.planes, 2) + 1), name="weight")  # +-2^j, shared by every lane
        m.d.comb += weight.eq(Mux(self.negative, -(1 << self.plane), 1 << self.plane))
        kind = lane_kind(self.modes)
        for p in range(self.pe):
            w = self.weights[p * self.simd:(p + 1) * self.simd]
            count = compressor_popcount(m, [(x[i], w[i]) for i in range(self.simd)], kind, f"count{p}",
                                        mode=self.xnor_mode)
            # The accumulator needs no reset: every fold starts with ``clear``.
            acc = Signal(signed(self.acc_bits), name=f"acc{p}", reset_less=True)
            with m.If(self.enable):
                m.d.sync += acc.eq(Mux(self.clear, 0, acc) + ((count << 1) - base) * weight)
            m.d.comb += self.accumulators[p].eq(acc)
        return m


def fold_cycles(in_folds: int, planes: int) -> int:
    """Accumulating cycles of one output fold: every input fold, once per bit plane."""
    return in_folds * planes


# ---- the resource model ---------------------------------------------------------------------------
# The compressors' LUT cells are counted from the same builder as the RTL (exact). Fitted on Yosys'
# synth_xilinx of this block (scripts/resource_check.py --fit): LUTs per bit position of the
# carry-chain adders that sum a compressor's final rows. A lane's pre-add, multiply and
# accumulate leave no LUTs outside its DSP slice (a per-lane term fitted to zero).
LUT_COEFFICIENTS = coefficients("pe_array")


def pe_array_features(pe: int, simd: int, acc_bits: int, modes: tuple[str, ...]) -> dict[str, float]:
    lane = compressor_shape(simd, lane_kind(modes))
    shared = compressor_shape(simd, "bits") if "and" in modes else None
    return {"adder_bits": pe * lane.adder_bits + (shared.adder_bits if shared else 0)}


def pe_array_cells(pe: int, simd: int, modes: tuple[str, ...]) -> int:
    """The compressor LUT cells: PE lanes' trees and the shared popcount of the activations."""
    shared = compressor_shape(simd, "bits").cells if "and" in modes else 0
    return pe * compressor_shape(simd, lane_kind(modes)).cells + shared


# synth_xilinx maps a lane's multiply-accumulate into a DSP48 only for a result of 9 bits or more
# (its DSP_Y_MINWIDTH); narrower accumulators (BiT's codes over rows of under about 128 inputs) stay in
# fabric: the accumulator's flip-flops and about 5.25 LUTs per accumulator bit for the pre-add, the
# signed weight and the add (measured: 42 LUTs a lane at 8 bits, SIMD 8 and 12).
DSP_MIN_ACC_BITS = 9
FABRIC_LANE_LUTS_PER_BIT = 5.25


def pe_array_resources(pe: int, simd: int, acc_bits: int, modes: tuple[str, ...] = ("and",)) -> Resources:
    """Resources of the PE array: per lane a compressor tree and one DSP48 slice (pre-add, multiply,
    accumulate in its P register), or below DSP_MIN_ACC_BITS its accumulate in fabric, and the shared
    popcount of the activations."""
    lut = pe_array_cells(pe, simd, modes) + linear_cost(LUT_COEFFICIENTS, pe_array_features(pe, simd, acc_bits, modes))
    lane = compressor_shape(simd, lane_kind(modes))
    carry = pe * max(lane.rows - 1, 0) * ceil_div(lane.columns, 4)
    if acc_bits < DSP_MIN_ACC_BITS:
        return Resources(lut=lut + pe * FABRIC_LANE_LUTS_PER_BIT * acc_bits, ff=pe * acc_bits,
                         carry=carry + pe * 2 * ceil_div(acc_bits, 4))
    return Resources(lut=lut, dsp=pe, carry=carry)
