"""Popcounts: the PE array's, as compressor trees of one-LUT counters (docs/estimates.md), and a
small one written as logic (``popcount``, the output unit's threshold hits).

A popcount is a bit heap: columns of bits, column c worth 2^c. Generalized parallel counters take
bits of one column and give their count in bits of the next columns; every counter output here is
a function of at most six heap bits, so it is exactly one LUT6:

* leaves: three products x_i AND w_i (or x_i XOR w_i) of one lane, six inputs, to their 2-bit
  count; two products and the mode bit (five inputs) where a lane selects AND or XOR per pass;
  plain bits (the activations' own popcount) go into column 0 without leaves;
* (6;3) counters: six bits of a column to a 3-bit count, one stage after another (each stage
  takes the heap its predecessor left), until no column holds six bits;
* the rows left (at most five) are added by carry-chain adders (CARRY4 and one LUT per bit).

Past the leaves, a (6;3) counter removes one heap bit per LUT, as a carry-chain adder of the final
rows does; a tree of adders over narrow partial counts removes about half a bit per LUT. That is
why the PE array's lanes take 1.3 to 1.4 LUTs per product this way against 2.2 to 2.5 as a
balanced adder tree.

Each counter output is an instance of ``bebert_lut6`` (VERILOG below: a 64-entry table ``INIT``
indexed by six inputs), not logic. Left to itself, Yosys' LUT mapper re-maps a tree written as
logic: its area costs make two LUT5 cheaper than one LUT6 (Vivado packs such a pair into one
LUT6_2 site), so it splits counters into 1.4x as many LUT cells. An instance is mapped as it
stands, one LUT, like the Xilinx-primitive compressors of FloPoCo; being plain Verilog, it is
logic to Verilator and to other synthesis flows (ECP5's flattens and re-maps it). The same builder
counts the LUTs for the resource model (``compressor_shape``), so that count is exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Callable

from amaranth import Cat, Const, Module, Signal
from amaranth.hdl import Instance

MODULE_NAME = "bebert_lut6"
LUT_INPUTS = 6
VERILOG = f"""
// One 6-input LUT: O = INIT[I] (hw/blocks/compressor.py). Instances are the counters of the PE array's
// compressor trees; synthesis maps each to one LUT6 (or fewer inputs where the table ignores some).
module {MODULE_NAME} #(
    parameter [63:0] INIT = 64'd0
) (
    input  wire [5:0] I,
    output wire       O
);
    assign O = INIT[I];
endmodule
"""

# What a leaf counts: products of (x, w) pairs, or plain bits.
LEAF_KINDS = ("and", "xnor", "select", "bits")
COUNTER_BITS = 6  # a (6;3) counter: six bits of one column


def product(kind: str, x: int, w: int, xnor_mode: int = 0) -> int:
    """One product bit: x AND w, x XOR w (XNOR mode counts differences), or either by the mode."""
    if kind == "and" or (kind == "select" and not xnor_mode):
        return x & w
    return x ^ w


Cell = Callable[[list, Callable[[int], int], int, str], list]  # (inputs, count of an index, outputs, name) -> bits


@dataclass
class CompressorShape:
    """What a compressor tree is made of: LUT cells and the rows its carry-chain adders add."""

    cells: int  # counter outputs, one LUT each
    rows: int  # rows left for the adders (1: none needed)
    columns: int  # columns of the heap they span

    @property
    def adder_bits(self) -> int:
        """Bit positions of the carry-chain adders that sum the rows."""
        return max(self.rows - 1, 0) * self.columns


def build(bits_in: list, kind: str, cell: Cell, name: str, mode=None) -> tuple[list[list], int]:
    """Reduce a heap by counters made by ``cell``: returns the rows left (lists of bits, column c at
    index c, None where a row has no bit) and the number of cells made.

    ``bits_in`` are the plain bits (kind "bits"), or (x, w) pairs; ``mode`` is the XNOR-mode bit
    for kind "select"."""
    cells = 0
    columns: list[list] = [[]]

    def count(inputs: list, value_of: Callable[[int], int], outputs: int, label: str) -> list:
        nonlocal cells
        cells += outputs
        return cell(inputs, value_of, outputs, label)

    if kind == "bits":
        columns[0] = list(bits_in)
    else:
        per_leaf = 2 if kind == "select" else 3
        for leaf, start in enumerate(range(0, len(bits_in), per_leaf)):
            pairs = bits_in[start:start + per_leaf]
            inputs = [bit for pair in pairs for bit in pair] + ([mode] if kind == "select" else [])

            def leaf_count(index: int, n: int = len(pairs)) -> int:
                xnor = (index >> 2 * n) & 1 if kind == "select" else 0
                return sum(product(kind, (index >> 2 * i) & 1, (index >> 2 * i + 1) & 1, xnor) for i in range(n))

            outputs = count(inputs, leaf_count, len(pairs).bit_length(), f"{name}_leaf{leaf}")
            for c, bit in enumerate(outputs):
                columns += [[] for _ in range(c + 1 - len(columns))]
                columns[c].append(bit)
    stage = 0
    while any(len(column) >= COUNTER_BITS for column in columns):
        heap: list[list] = [[] for _ in range(len(columns) + 2)]
        for c, column in enumerate(columns):
            full = len(column) - len(column) % COUNTER_BITS
            for g in range(0, full, COUNTER_BITS):
                outputs = count(column[g:g + COUNTER_BITS], lambda index: bin(index).count("1"), 3,
                                f"{name}_s{stage}c{c}g{g // COUNTER_BITS}")
                for k, bit in enumerate(outputs):
                    heap[c + k].append(bit)
            heap[c] += column[full:]
        while heap and not heap[-1]:
            heap.pop()
        columns, stage = heap, stage + 1
    height = max((len(column) for column in columns), default=0)
    rows = [[column[r] if r < len(column) else None for column in columns] for r in range(height)]
    return rows, cells


def lut_cell(m: Module) -> Cell:
    """Counter outputs as ``bebert_lut6`` instances in module ``m``."""

    def make(inputs: list, value_of: Callable[[int], int], outputs: int, label: str) -> list:
        n = len(inputs)
        index = Cat(*inputs, Const(0, LUT_INPUTS - n))
        bits = []
        for k in range(outputs):
            # the table ignores the unused (zero) inputs, so synthesis may use a smaller LUT
            table = sum(((value_of(v & ((1 << n) - 1)) >> k) & 1) << v for v in range(2**LUT_INPUTS))
            bit = Signal(name=f"{label}_{k}")
            m.submodules[f"{label}_{k}"] = Instance(MODULE_NAME, p_INIT=Const(table, 2**LUT_INPUTS), i_I=index, o_O=bit)
            bits.append(bit)
        return bits

    return make


def logic_cell(m: Module) -> Cell:
    """Counter outputs as Amaranth logic (the same tables): for Amaranth's own simulator, which
    cannot run Verilog instances."""

    def make(inputs: list, value_of: Callable[[int], int], outputs: int, label: str) -> list:
        index = Signal(len(inputs), name=f"{label}_in")
        m.d.comb += index.eq(Cat(*inputs))
        bits = []
        for k in range(outputs):
            table = sum(((value_of(v) >> k) & 1) << v for v in range(2 ** len(inputs)))
            bit = Signal(name=f"{label}_{k}")
            m.d.comb += bit.eq(Const(table, 2 ** len(inputs)).bit_select(index, 1))
            bits.append(bit)
        return bits

    return make


def compressor_popcount(m: Module, bits_in: list, kind: str, name: str, mode=None, cell: Cell | None = None) -> Signal:
    """The count of ``bits_in`` (kind "bits") or of the products of its (x, w) pairs, as a signal."""
    if kind not in LEAF_KINDS:
        raise ValueError(f"a compressor counts one of {LEAF_KINDS}, not {kind!r}")
    rows, _ = build(bits_in, kind, cell or lut_cell(m), name, mode)
    total = Signal(range(len(bits_in) + 1), name=name)
    m.d.comb += total.eq(sum(Cat(*(Const(0, 1) if b is None else b for b in row)) for row in rows))
    return total


@cache
def compressor_shape(n: int, kind: str) -> CompressorShape:
    """The cells and final rows of an n-input compressor, from the same builder as the RTL."""

    def placeholder(inputs, value_of, outputs, label):
        return [label] * outputs

    rows, cells = build([(0, 0)] * n if kind != "bits" else [0] * n, kind, placeholder, "c", mode=0)
    return CompressorShape(cells=cells, rows=len(rows), columns=len(rows[0]) if rows else 0)


# ---- a small popcount as logic --------------------------------------------------------------------
LEAF_BITS = 6  # a 6-input LUT counts 6 free bits: the leaves of a plain popcount


def adder_tree(terms: list) -> object:
    """A balanced tree of adds over the terms (a bare term for one)."""
    while len(terms) > 1:
        terms = [terms[i] + terms[i + 1] if i + 1 < len(terms) else terms[i] for i in range(0, len(terms), 2)]
    return terms[0]


def times_constant(value, k: int) -> object:
    """value x k for a constant k >= 0, as shifted copies added in a tree: a row's base address
    (token x words a row). Written as adds so that synthesis keeps it in LUTs; a multiply by a
    constant is mapped onto a DSP slice once its operand is wide enough."""
    terms = [value << i for i in range(k.bit_length()) if k >> i & 1]
    return adder_tree(terms) if terms else 0


def popcount(m: Module, bits, name: str) -> Signal:
    """Number of set bits of a small value (the output unit's 2^b - 1 threshold hits), written as
    logic for synthesis to map: 6-bit groups summed bit by bit (a 6-input cone), then a balanced
    adder tree over the group counts.

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
