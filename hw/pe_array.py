"""The PE array: PE lanes, each a SIMD-bit popcount and an accumulator (docs/datapath.md, "Matrix products").

Each cycle every lane p meets the same SIMD activation bits x with its own SIMD weight bits w_p and
counts c = popcount(x AND w_p) (one bit plane of b-bit codes, 1-1-4) or popcount(x XOR w_p)
(bipolar codes, XNOR mode, 1-1-1). With B the pass's base, the pass contributes

* AND mode: 2c - B with B = popcount(x), the number of +1 activations (weights are +-1: each
  set activation bit adds w), subtracted for the sign plane of two's complement codes;
* XNOR mode: B - 2c with B = ``valid``, the real inputs of this fold (padding bits are 0 in both
  operands and never differ), so the folds sum to K - 2 popcount(a XOR w) = sum_k a_k w_k.

Bit planes run most significant first (the controller's loop: planes outer, folds inner), so the
plane weight 2^j is never a shifter: the first pass of each later plane doubles the accumulator
(Horner's rule), ``clear`` starts an output fold from zero. B is chosen once for all lanes; each
lane has one popcount, one subtractor and its accumulator's add. A lane's popcount only has the
logic of the modes the model uses (``modes``): one product per bit, AND or XOR, fused into
3-pair leaves (six inputs, a LUT6 per output bit), or an AND/XOR select where a model mixes them.

Inputs are registered by the controller; the accumulators update at the clock edge.

Cycle model: an output fold takes in_folds x planes accumulating cycles (fold_cycles below; the
controller adds its own drain and output cycles).
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .resources import Resources, ceil_div, coefficients, linear_cost

LEAF_BITS = 6  # a 6-input LUT counts 6 free bits: the leaves of a plain popcount
MODES = ("and", "xnor")


def adder_tree(terms: list) -> object:
    """A balanced tree of adds over the terms (a bare term for one)."""
    while len(terms) > 1:
        terms = [terms[i] + terms[i + 1] if i + 1 < len(terms) else terms[i] for i in range(0, len(terms), 2)]
    return terms[0]


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
    m.d.comb += count.eq(adder_tree(terms))
    return count


def product_popcount(m: Module, x, w, modes: tuple[str, ...], xnor_mode, name: str) -> Signal:
    """popcount(x AND w) or popcount(x XOR w): the products computed inside the leaves, three bit
    pairs to a leaf (six inputs), two pairs where the mode select is a seventh input."""
    width = len(x)
    pairs = 3 if len(modes) == 1 else 2
    count = Signal(range(width + 1), name=name)
    terms = []
    for start in range(0, width, pairs):
        group = range(start, min(start + pairs, width))
        if modes == ("and",):
            products = [x[i] & w[i] for i in group]
        elif modes == ("xnor",):
            products = [x[i] ^ w[i] for i in group]
        else:
            products = [Mux(xnor_mode, x[i] ^ w[i], x[i] & w[i]) for i in group]
        leaf = Signal(range(len(group) + 1), name=f"{name}_leaf{start // pairs}")
        m.d.comb += leaf.eq(sum(products))
        terms.append(leaf)
    m.d.comb += count.eq(adder_tree(terms))
    return count


class PEArray(wiring.Component):
    """PE lanes of SIMD-bit popcounts with ``acc_bits``-wide accumulators, for the product ``modes``
    ("and", "xnor" or both) a model uses.

    Ports: ``activations`` (SIMD bits, one bit plane or bipolar bits), ``weights`` (PE x SIMD bits,
    lane p at [p*SIMD, (p+1)*SIMD)), ``xnor_mode`` (with both modes: this pass is XNOR), ``valid``
    (real inputs of this fold), ``negative`` (subtract this pass: XNOR passes and the sign plane),
    ``clear`` (start an output fold), ``double`` (first pass of a later plane), ``enable``
    (accumulate this cycle); ``accumulators`` (PE signed values).
    """

    def __init__(self, pe: int, simd: int, acc_bits: int, modes: tuple[str, ...] = MODES):
        for name, value in (("PE", pe), ("SIMD", simd), ("accumulator width", acc_bits)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        modes = tuple(mode for mode in MODES if mode in modes)
        if not modes:
            raise ValueError(f"the PE array needs at least one product mode of {MODES}")
        self.pe, self.simd, self.acc_bits, self.modes = pe, simd, acc_bits, modes
        super().__init__({
            "activations": In(simd),
            "weights": In(pe * simd),
            "xnor_mode": In(1),
            "valid": In(range(simd + 1)),
            "negative": In(1),
            "clear": In(1),
            "double": In(1),
            "enable": In(1),
            "accumulators": Out(data.ArrayLayout(signed(acc_bits), pe)),
        })

    def elaborate(self, platform):
        m = Module()
        x = self.activations
        count_bits = self.simd.bit_length() + 2
        base = Signal(range(self.simd + 1), name="base")  # B: shared by every lane
        if self.modes == ("xnor",):
            m.d.comb += base.eq(self.valid)
        elif self.modes == ("and",):
            m.d.comb += base.eq(popcount(m, x, "ones_x"))
        else:
            m.d.comb += base.eq(Mux(self.xnor_mode, self.valid, popcount(m, x, "ones_x")))
        for p in range(self.pe):
            w = self.weights[p * self.simd:(p + 1) * self.simd]
            count = product_popcount(m, x, w, self.modes, self.xnor_mode, f"count{p}")
            diff = Signal(signed(count_bits), name=f"diff{p}")
            m.d.comb += diff.eq((count << 1) - base)
            # The accumulator needs no reset: every fold starts with ``clear``.
            acc = Signal(signed(self.acc_bits), name=f"acc{p}", reset_less=True)
            start = Mux(self.clear, 0, Mux(self.double, acc << 1, acc))
            with m.If(self.enable):
                m.d.sync += acc.eq(start + Mux(self.negative, -diff, diff))
            m.d.comb += self.accumulators[p].eq(acc)
        return m


def fold_cycles(in_folds: int, planes: int) -> int:
    """Accumulating cycles of one output fold: every input fold, once per bit plane."""
    return in_folds * planes


# ---- the resource model ---------------------------------------------------------------------------
# LUTs per structure count, fitted on Yosys' synth_xilinx of this block (scripts/resource_check.py
# --fit): per input bit of a lane (product, leaf and adder tree), per accumulator bit of a lane
# (the subtractor and the add with its clear/double select), per input bit of a lane whose
# product selects AND or XOR, and per input bit of the shared popcount.
LUT_COEFFICIENTS = coefficients("pe_array")


def pe_array_features(pe: int, simd: int, acc_bits: int, modes: tuple[str, ...]) -> dict[str, float]:
    return {"lane_input_bits": pe * simd, "lane_acc_bits": pe * acc_bits,
            "lane_select_bits": pe * simd if len(modes) > 1 else 0,
            "shared_bits": simd if "and" in modes else 0}


def pe_array_resources(pe: int, simd: int, acc_bits: int, modes: tuple[str, ...] = ("and",)) -> Resources:
    """Resources of the PE array: per lane a SIMD-bit popcount and an accumulator register; one
    shared popcount of the activations (FINN-R's form: a cost per lane times PE, plus shared logic)."""
    lut = linear_cost(LUT_COEFFICIENTS, pe_array_features(pe, simd, acc_bits, modes))
    return Resources(lut=lut, ff=pe * acc_bits, carry=pe * ceil_div(acc_bits, 4))
