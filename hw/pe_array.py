"""The PE array: PE lanes, each a SIMD-bit popcount and an accumulator (docs/datapath.md, "Matrix products").

Each cycle every lane p meets the same SIMD activation bits x with its own SIMD weight bits w_p:

* XNOR mode (bipolar activations, 1-1-1): term = -2 popcount(x XOR w_p); the accumulator starts
  at K, so after all folds it holds K - 2 popcount(a XOR w) = sum_k a_k w_k (padding bits are 0 in
  both operands and never differ);
* AND mode (one bit plane j of b-bit codes, 1-1-4): term = (2 popcount(x AND w_p) - popcount(x))
  shifted left by j, subtracted for the sign plane of two's complement codes; the accumulator
  starts at 0.

``clear`` starts a new output fold: the accumulator takes start + term instead of adding the term.
Inputs are registered by the controller; the accumulators update at the clock edge.

Cycle model: an output fold takes in_folds x planes accumulating cycles (fold_cycles below; the
controller adds its own drain and output cycles).
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .resources import Resources, ceil_div


LEAF_BITS = 6  # a 6-input LUT counts 6 bits: the leaves of the compressor tree


def popcount(m: Module, bits, name: str) -> Signal:
    """Number of set bits of a value: 6-bit groups summed bit by bit (a 6-input cone that synthesis
    maps to three LUT6s), then a balanced adder tree over the group counts.

    The input goes through a signal first: Amaranth re-emits an expression at every use."""
    source = Signal(len(bits), name=f"{name}_bits")
    count = Signal(range(len(bits) + 1), name=name)
    m.d.comb += source.eq(bits)
    terms = []
    for start in range(0, len(bits), LEAF_BITS):
        width = min(LEAF_BITS, len(bits) - start)
        leaf = Signal(range(width + 1), name=f"{name}_leaf{start // LEAF_BITS}")
        m.d.comb += leaf.eq(sum(source[i] for i in range(start, start + width)))
        terms.append(leaf)
    while len(terms) > 1:
        terms = [terms[i] + terms[i + 1] if i + 1 < len(terms) else terms[i] for i in range(0, len(terms), 2)]
    m.d.comb += count.eq(terms[0])
    return count


class PEArray(wiring.Component):
    """PE lanes of SIMD-bit popcounts with ``acc_bits``-wide accumulators.

    Ports: ``activations`` (SIMD bits, one bit plane or bipolar bits), ``weights`` (PE x SIMD bits,
    lane p at [p*SIMD, (p+1)*SIMD)), ``xnor_mode``, ``plane`` (bit plane index j, the shift),
    ``negative`` (subtract: the sign plane), ``clear`` and ``start`` (begin a fold at start + term),
    ``enable`` (accumulate this cycle); ``accumulators`` (PE signed values).
    """

    def __init__(self, pe: int, simd: int, acc_bits: int, max_planes: int = 8):
        for name, value in (("PE", pe), ("SIMD", simd), ("accumulator width", acc_bits)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        self.pe, self.simd, self.acc_bits = pe, simd, acc_bits
        super().__init__({
            "activations": In(simd),
            "weights": In(pe * simd),
            "xnor_mode": In(1),
            "plane": In(range(max_planes)),
            "negative": In(1),
            "clear": In(1),
            "start": In(signed(acc_bits)),
            "enable": In(1),
            "accumulators": Out(data.ArrayLayout(signed(acc_bits), pe)),
        })

    def elaborate(self, platform):
        m = Module()
        x = self.activations
        ones_x = popcount(m, x, "ones_x")  # shared by every lane
        for p in range(self.pe):
            w = self.weights[p * self.simd:(p + 1) * self.simd]
            # One popcount per lane serves both modes: of x XOR w (XNOR mode) or of x AND w.
            count = popcount(m, Mux(self.xnor_mode, x ^ w, x & w), f"count{p}")
            bitserial = ((count << 1) - ones_x) << self.plane  # unsigned - unsigned is signed in Amaranth
            term = Mux(self.xnor_mode, -(count << 1), Mux(self.negative, -bitserial, bitserial))
            # The accumulator needs no reset: every fold starts with ``clear``.
            acc = Signal(signed(self.acc_bits), name=f"acc{p}", reset_less=True)
            with m.If(self.enable):
                with m.If(self.clear):
                    m.d.sync += acc.eq(self.start + term)
                with m.Else():
                    m.d.sync += acc.eq(acc + term)
            m.d.comb += self.accumulators[p].eq(acc)
        return m


def fold_cycles(in_folds: int, planes: int) -> int:
    """Accumulating cycles of one output fold: every input fold, once per bit plane."""
    return in_folds * planes


# ---- the resource model ---------------------------------------------------------------------------
# LUTs per input bit of one lane's popcount (the XNOR/AND select, the 6-bit leaves and the adder
# tree) and per accumulator bit (the term's shift and negation, the add), fitted on Yosys'
# synth_xilinx of this block (scripts/resource_check.py --fit prints the fit).
LUTS_PER_SIMD_BIT = 3.0
LUTS_PER_ACC_BIT = 3.0


def pe_array_resources(pe: int, simd: int, acc_bits: int) -> Resources:
    """Resources of the PE array: per lane a SIMD-bit popcount and an accumulator; one shared
    popcount of the activations (in the FINN-R style: cost per lane times PE, plus shared logic)."""
    lut = pe * (LUTS_PER_SIMD_BIT * simd + LUTS_PER_ACC_BIT * acc_bits) + simd
    return Resources(lut=lut, ff=pe * acc_bits, carry=pe * ceil_div(acc_bits, 4))
