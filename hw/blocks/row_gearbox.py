"""A row gearbox: a row of values in at one width, out at another, two rows buffered.

The encoder's units hand rows on in beats of different widths: the PE array's output folds (PE
values) into the residual add (L lanes), into the attention units' banks and query port (one
head slice), the context staircase's head slices into the next product's input (SIMD codes).
A row of ``values`` arrives on ``row_in`` as ceil(values / in_width) beats and leaves on
``row_out`` as ceil(values / out_width) beats, store and forward: a row is read only once it is
complete, so the consumer sees it at its own pace, and a second row may be written meanwhile.
Lanes past ``values`` in the last beat read 0.

One width must divide the other: the RAM's word holds the wider beat, and the narrower one is a
group of lanes within it (written with the RAM's lane granularity, or selected on the way out).
The read issues on credit into an output FIFO (credited_output.py), so every output is a register.

Cycle model (``GearboxShape.rows_cycles``): a row's first beat leaves ``ROW_LATENCY`` cycles after its
last beat was taken, then a beat a cycle; a row is taken a beat a cycle into a slot already read
out. Cycles waiting on a stream are not counted.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .compressor import times_constant
from .credited_output import credited_output, fifo_resources
from .row_store import BeatWidths
from ..resources import Resources, ceil_div, coefficients, linear_cost, row_buffer

READ_STAGES = 2  # the RAM's read, the group selected and padding masked
ROW_LATENCY = 1 + READ_STAGES + 2  # the slot marked full, the stages, the FIFO's write and output register


@dataclass(frozen=True)
class GearboxShape(BeatWidths):
    """A row of ``values`` values of ``bits`` bits (``signed`` or not), ``in_width`` a beat in,
    ``out_width`` a beat out."""

    values: int
    bits: int
    signed: bool
    in_width: int
    out_width: int

    def __post_init__(self):
        self.check_widths("row gearbox")
        if self.bits < 1:
            raise ValueError(f"a row gearbox needs values of a bit or more, not {self.bits}")

    @property
    def value_shape(self):
        return signed(self.bits) if self.signed else unsigned(self.bits)

    def rows_cycles(self, rows: int) -> int:
        """From the first row's first beat taken to the last row's last beat out, rows offered back to
        back and taken at once: a row is written once the slot it goes to is read out, and read once
        it is complete and the row before it is read out."""
        write_end, read_end = [-1], [-1, -1]  # the cycles of each row's last write and last read
        for _ in range(rows):
            start = max(write_end[-1] + 1, read_end[-2] + 1)
            write_end.append(start + self.in_beats - 1)
            read_end.append(max(write_end[-1] + 1, read_end[-1] + 1) + self.out_beats - 1)
        return read_end[-1] + READ_STAGES + 2 + 1


class RowGearbox(wiring.Component):
    def __init__(self, shape: GearboxShape):
        self.shape = s = shape
        super().__init__({
            "row_in": In(stream.Signature(data.ArrayLayout(s.value_shape, s.in_width))),
            "row_out": Out(stream.Signature(data.ArrayLayout(s.value_shape, s.out_width))),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        s = self.shape
        narrow_in = s.in_width < s.out_width
        group_bits = min(s.in_width, s.out_width) * s.bits
        ram = Memory(shape=unsigned(s.word_values * s.bits), depth=2 * s.words, init=[])
        m.submodules.ram = ram
        write = ram.write_port(granularity=group_bits if narrow_in else None)
        read = ram.read_port()

        full = Signal(2)  # per slot: a complete row waits to be read
        w_slot, w_beat = Signal(), Signal(range(max(s.in_beats, 2)))  # a bit at least: no zero-width wires
        r_slot, r_beat = Signal(), Signal(range(max(s.out_beats, 2)))

        # -- write: a beat a cycle into the free slot -------------------------------------------------
        take = Signal()
        m.d.comb += [self.row_in.ready.eq(~full.bit_select(w_slot, 1)), take.eq(self.row_in.valid & self.row_in.ready)]
        w_word = w_beat // s.ratio if narrow_in else w_beat
        copies = s.ratio if narrow_in else 1  # a narrow beat goes to every group; its enable picks one
        m.d.comb += [write.addr.eq(times_constant(w_slot, s.words) + w_word),
                     write.data.eq(self.row_in.payload.as_value().replicate(copies))]
        if narrow_in:
            m.d.comb += write.en.eq(Mux(take, 1 << (w_beat % s.ratio), 0))
        else:
            m.d.comb += write.en.eq(take)
        row_written = take & (w_beat == s.in_beats - 1)
        with m.If(take):
            m.d.sync += w_beat.eq(Mux(w_beat == s.in_beats - 1, 0, w_beat + 1))
            with m.If(row_written):
                m.d.sync += w_slot.eq(~w_slot)

        # -- read: on credit, a beat a cycle from the full slot ---------------------------------------
        stage_valid = Signal(READ_STAGES)
        issue = Signal()
        group, last = Signal(range(max(s.ratio, 2))), Signal()
        selected = Signal(s.out_width * s.bits)
        m.d.comb += read.addr.eq(times_constant(r_slot, s.words) + (r_beat if narrow_in else r_beat // s.ratio))
        m.d.sync += [stage_valid.eq(Cat(issue, stage_valid[:-1])),
                     group.eq(0 if narrow_in else r_beat % s.ratio), last.eq(r_beat == s.out_beats - 1)]
        word = read.data if narrow_in else read.data.word_select(group, group_bits)
        tail = s.values - (s.out_beats - 1) * s.out_width  # values in the last beat
        ones = Const((1 << s.bits) - 1, s.bits)
        keep = Cat(*(ones if lane < tail else Mux(last, 0, ones) for lane in range(s.out_width)))
        m.d.sync += selected.eq(word & keep)
        room, fifo = credited_output(m, self.row_out, stage_valid, selected, "out_fifo")
        m.d.comb += issue.eq(room & full.bit_select(r_slot, 1))
        row_read = issue & (r_beat == s.out_beats - 1)
        with m.If(issue):
            m.d.sync += r_beat.eq(Mux(r_beat == s.out_beats - 1, 0, r_beat + 1))
            with m.If(row_read):
                m.d.sync += r_slot.eq(~r_slot)

        for slot in range(2):  # a slot fills as its row's last beat is written, empties as it is read
            with m.If(row_written & (w_slot == slot)):
                m.d.sync += full[slot].eq(1)
            with m.If(row_read & (r_slot == slot)):
                m.d.sync += full[slot].eq(0)
        m.d.comb += self.busy.eq(full.any() | (w_beat != 0) | stage_valid.any() | fifo.r_rdy)
        return m


# ---- the resource model ---------------------------------------------------------------------------
LUT_COEFFICIENTS = coefficients("row_gearbox")


def gearbox_features(shape: GearboxShape) -> dict[str, float]:
    """LUT structure counts: the group select when the output is the narrow side (a ratio:1 mux per
    output bit: one LUT for 2:1 to 4:1, then one more per three further ways), and the rest (the
    counters, the slot flags, the write enables)."""
    s = shape
    out_bits = s.out_width * s.bits
    return {"select_bits": 0 if s.in_width < s.out_width else out_bits * ceil_div(s.ratio - 1, 3), "control": 1.0}


def _counter_bits(s: GearboxShape) -> int:
    return 2 * ((s.in_beats - 1).bit_length() + (s.out_beats - 1).bit_length() + 1)


def gearbox_resources(shape: GearboxShape) -> Resources:
    """The two row slots in distributed or block RAM (a narrow write: a write enable per group), the
    LUTs from the features, the output FIFO, and the registers."""
    s = shape
    out_bits = s.out_width * s.bits
    ff = out_bits + READ_STAGES + (s.ratio - 1).bit_length() + 1 + 2 + _counter_bits(s)
    group = s.in_width * s.bits if s.in_width < s.out_width else None
    return (row_buffer(s.word_values * s.bits, 2 * s.words, shared_address=False, group_bits=group)
            + fifo_resources(out_bits, READ_STAGES)
            + Resources(lut=linear_cost(LUT_COEFFICIENTS, gearbox_features(s)), ff=ff))
