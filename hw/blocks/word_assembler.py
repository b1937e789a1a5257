"""The word assembler: a wide memory word read as ``parts`` narrower words, one a cycle, and held whole.

The output unit compares a fold's accumulators with PE x levels x 2 thresholds at once: a threshold
word of ten thousand bits and more for a few hundred words a layer, which fills a block RAM grid's
width and leaves its depth empty. The threshold memory holds each such word as ``parts`` memory words
instead (plan.py, ``threshold_fold``), and this block gathers them while the PE array computes the
fold (engine.py):

* ``part`` (out) is the memory word of the fold to read this cycle, counting the cycles ``read`` is
  high and held at ``parts - 1`` after the last (reading it again is harmless); low ``read`` starts
  the next word at part 0. The memory's address is the fold's first word plus ``part``.
* ``rdata`` (in) is the memory's read data, one cycle after the address: the part read the cycle
  before is written into its place of ``word`` (out, a register, ``parts`` x ``part_width`` bits).

Cycle model: a word whose ``read`` lasts ``c`` >= ``parts`` cycles is whole in ``word`` from the
cycle after the next (the memory's cycle, then the register's): at the fold's OUTPUT, past its DRAIN
cycle. Registers start at zero, so ``word`` carries no X after reset.

Resource model (``assembler_resources``): the word register, the part counter and the delayed
part index; a write enable per part, and the counter's increment and end compare (a carry chain):
within a LUT of Yosys' synth_xilinx at folds 8 and 16 on words of 225 to 1,800 bits.
"""

from __future__ import annotations

from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..resources import Resources


def _bits(count: int) -> int:
    return max(1, (count - 1).bit_length())


class WordAssembler(wiring.Component):
    """Ports: ``read`` (in), ``part`` (out, the part to address), ``rdata`` (in, ``part_width`` bits),
    ``word`` (out, ``parts`` x ``part_width`` bits, part p at [p * part_width, (p + 1) * part_width))."""

    def __init__(self, parts: int, part_width: int):
        if parts < 2 or part_width < 1:
            raise ValueError(f"a word assembler gathers two parts or more of a bit or more, not {parts} x {part_width}")
        self.parts, self.part_width = parts, part_width
        super().__init__({"read": In(1), "part": Out(range(parts)), "rdata": In(part_width),
                          "word": Out(parts * part_width)})

    def elaborate(self, platform):
        m = Module()
        arrived = Signal()  # a part was addressed the cycle before: its data is on ``rdata``
        arriving = Signal(range(self.parts))  # which
        m.d.sync += [arrived.eq(self.read), arriving.eq(self.part)]
        with m.If(~self.read):
            m.d.sync += self.part.eq(0)
        with m.Elif(self.part != self.parts - 1):
            m.d.sync += self.part.eq(self.part + 1)
        with m.If(arrived):
            with m.Switch(arriving):
                for p in range(self.parts):
                    with m.Case(p):
                        m.d.sync += self.word[p * self.part_width:(p + 1) * self.part_width].eq(self.rdata)
        return m


def assembler_resources(parts: int, part_width: int) -> Resources:
    """The word register and the counters' flip-flops; a LUT per part's write enable (the delayed
    index decoded with ``arrived``) and one per counter bit (its increment and end compare)."""
    index = _bits(parts)
    return Resources(lut=parts + index, ff=parts * part_width + 2 * index + 1, carry=1)
