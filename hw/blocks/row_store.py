"""A row store: rows of codes written at one beat width, each into the row its beats name, and read
back by (row, beat) at another width, for the PE array's input buffer.

The encoder keeps two: the codes store (a row per token of the sentence, written by the residual
stream's quantizer L codes a beat: a layer's input codes, then its FFN-in codes, then the next
layer's, in place) and the context store (one row, written by the context staircase a head slice
a beat). The PE array loads a step's input from either, SIMD codes a beat.

``write``: a beat of ``in_width`` codes and the row it belongs to, taken every cycle; a row's
beats come in order, and ``written`` (with ``written_row``) rises for one cycle once a row's last
beat is in the RAM. ``read_row`` and ``read_beat`` address a beat of ``out_width`` codes, which is
on ``read_data`` (a register) READ_LATENCY cycles later. Lanes past ``values`` read as written
(the PE array masks them). One width must divide the other: a RAM word holds the wider beat.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .compressor import times_constant
from ..resources import Resources, ceil_div, row_buffer

READ_LATENCY = 2  # the RAM's read, the group selected into the output register


class BeatWidths:
    """Mixin for a frozen shape of rows of ``values`` values written ``in_width`` a beat and read
    ``out_width`` a beat, one width dividing the other: a RAM word holds the wider beat, the narrower
    one is a group of lanes in it."""

    values: int
    in_width: int
    out_width: int

    def check_widths(self, block: str) -> None:
        narrow, wide = sorted((self.in_width, self.out_width))
        if narrow < 1 or wide % narrow or self.values < 1:
            raise ValueError(f"a {block} needs one beat width to divide the other, not {self.in_width} into "
                             f"{self.out_width}")

    @property
    def word_values(self) -> int:
        return max(self.in_width, self.out_width)

    @property
    def ratio(self) -> int:
        """Narrow beats in a word."""
        return self.word_values // min(self.in_width, self.out_width)

    @property
    def words(self) -> int:
        """RAM words per row."""
        return ceil_div(self.values, self.word_values)

    @property
    def in_beats(self) -> int:
        return ceil_div(self.values, self.in_width)

    @property
    def out_beats(self) -> int:
        return ceil_div(self.values, self.out_width)


@dataclass(frozen=True)
class RowStoreShape(BeatWidths):
    rows: int
    values: int  # codes per row
    bits: int
    in_width: int  # codes a write beat
    out_width: int  # codes a read beat

    def __post_init__(self):
        self.check_widths("row store")
        if self.rows < 1:
            raise ValueError(f"a row store needs a row, not {self.rows}")


class RowStore(wiring.Component):
    def __init__(self, shape: RowStoreShape):
        self.shape = s = shape
        super().__init__({
            "write": In(stream.Signature(data.StructLayout({
                "codes": data.ArrayLayout(unsigned(s.bits), s.in_width), "row": range(max(s.rows, 2))}))),
            "written": Out(1),
            "written_row": Out(range(max(s.rows, 2))),  # a bit even for one row (no zero-width ports)
            "read_row": In(range(max(s.rows, 2))),
            "read_beat": In(range(max(s.out_beats, 2))),
            "read_data": Out(data.ArrayLayout(unsigned(s.bits), s.out_width)),
        })

    def elaborate(self, platform):
        m = Module()
        s = self.shape
        narrow_write = s.in_width < s.out_width
        group_bits = min(s.in_width, s.out_width) * s.bits
        ram = Memory(shape=unsigned(s.word_values * s.bits), depth=s.rows * s.words, init=[])
        m.submodules.ram = ram
        port = ram.write_port(granularity=group_bits if narrow_write else None)
        read = ram.read_port()

        beat = Signal(range(max(s.in_beats, 2)))  # a bit at least: no zero-width wires
        take = self.write.valid
        row_base = times_constant(self.write.payload.row, s.words)
        m.d.comb += [self.write.ready.eq(1),
                     port.addr.eq(row_base + (beat // s.ratio if narrow_write else beat)),
                     port.data.eq(self.write.payload.codes.as_value().replicate(s.ratio if narrow_write else 1))]
        m.d.comb += port.en.eq(Mux(take, 1 << (beat % s.ratio), 0) if narrow_write else take)
        last = beat == s.in_beats - 1
        m.d.sync += self.written.eq(take & last)
        with m.If(take):
            m.d.sync += [beat.eq(Mux(last, 0, beat + 1)), self.written_row.eq(self.write.payload.row)]

        group = Signal(range(max(s.ratio, 2)))
        m.d.comb += read.addr.eq(times_constant(self.read_row, s.words) + (self.read_beat if narrow_write
                                                           else self.read_beat // s.ratio))
        m.d.sync += group.eq(0 if narrow_write else self.read_beat % s.ratio)
        word = read.data if narrow_write else read.data.word_select(group, group_bits)
        m.d.sync += self.read_data.eq(word)
        return m


# ---- the resource model ---------------------------------------------------------------------------
def row_store_resources(shape: RowStoreShape) -> Resources:
    """The RAM (read and written at their own addresses; a narrow write, a write enable per beat's
    group), the output register and its group select (a ratio:1 mux per bit when the read is the
    narrow side), the beat counter and row register."""
    s = shape
    out_bits = s.out_width * s.bits
    select_luts = 0 if s.in_width < s.out_width else out_bits * ceil_div(s.ratio - 1, 3)
    ff = out_bits + (s.ratio - 1).bit_length() + (s.in_beats - 1).bit_length() + (s.rows - 1).bit_length() + 1
    group = s.in_width * s.bits if s.in_width < s.out_width else None
    return row_buffer(s.word_values * s.bits, s.rows * s.words, shared_address=False, group_bits=group) + Resources(
        lut=select_luts + 2 * (s.rows * s.words - 1).bit_length(), ff=ff)
