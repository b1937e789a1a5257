"""A staircase quantizer: rows of fixed-point or accumulator values in, their codes out, through
per-channel thresholds from a parameter memory (docs/datapath.md: "A quantizer reading a
fixed-point hidden state"; the attention context's staircase), bit for bit as ``Staircase.apply``
of a rising staircase.

A row of ``values`` channels arrives on ``row_in`` in ``beats`` beats of L (``lanes``) values; each
lane's code is low + sum_l [x >= T_(c,l)] for its channel c, in the streams' code format (two's
complement low bits, or 1 for +1 of a bipolar code: one comparator, where the simulator's
staircase counts the boundary twice). The thresholds of a beat's channels come from a memory word:
``threshold_addr`` (a register: ``base`` as held at the row's first beat, plus the beat) and
``thresholds`` one cycle after it; a staircase ``shared`` by every channel (a per-tensor quantizer, as
BinaryBERT's LSQ: one row) is one word, ``base``, that every lane compares with. Lanes past ``values``
in the last beat give 0. With ``tag_bits``,
each out beat also carries the ``tag`` held at its row's first beat (the residual stream's token).

The residual stream's norm path quantizes LayerNorm rows with it (L lanes a beat, the staircase
of the product that reads them); the context staircase quantizes a token's context, a head a beat.
Beats issue a cycle each into an output FIFO on credit (credited_output.py); every output is a
register. Cycle model: a beat leaves ``QUANTIZE_LATENCY`` cycles after it is taken.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from bebert.sim.program import Codes

from .compressor import popcount
from .credited_output import credited_output, fifo_resources
from ..resources import Resources, ceil_div, coefficients, linear_cost

QUANTIZE_STAGES = 3  # the threshold address, the thresholds with the beat, the codes
QUANTIZE_LATENCY = QUANTIZE_STAGES + 2  # a beat taken to its codes out: the stages, the FIFO's two


@dataclass(frozen=True)
class QuantizerShape:
    """L (``lanes``), the channels of a row (``values``, in ``beats`` = ceil(values / L) beats), the
    input and threshold widths, the codes, and the threshold words the memory holds."""

    lanes: int
    values: int
    value_bits: int
    threshold_bits: int
    codes: Codes
    threshold_words: int
    tag_bits: int = 0
    shared: bool = False  # one row of thresholds for every channel (a per-tensor quantizer's staircase)

    def __post_init__(self):
        if (not 1 <= self.lanes <= self.values or self.value_bits < 2
                or self.threshold_words < self.staircase_words):
            raise ValueError(f"a staircase quantizer cannot be built for {self}")

    @property
    def beats(self) -> int:
        return ceil_div(self.values, self.lanes)

    @property
    def threshold_lanes(self) -> int:
        """Rows of thresholds a memory word holds: one per lane, or one that every lane compares with."""
        return 1 if self.shared else self.lanes

    @property
    def staircase_words(self) -> int:
        """Memory words of one staircase: a word a beat, or one word (shared)."""
        return 1 if self.shared else self.beats

    @property
    def threshold_layout(self) -> data.ArrayLayout:
        return data.ArrayLayout(data.ArrayLayout(signed(self.threshold_bits), self.levels), self.threshold_lanes)

    @property
    def levels(self) -> int:
        """Comparators per channel: one per code step; one for a bipolar code."""
        return 1 if self.codes.bipolar else len(self.codes.levels) - 1

    @property
    def code_bits(self) -> int:
        return 1 if self.codes.bipolar else self.codes.bits

    @property
    def out_layout(self):
        codes = data.ArrayLayout(unsigned(self.code_bits), self.lanes)
        return data.StructLayout({"codes": codes, "tag": unsigned(self.tag_bits)}) if self.tag_bits else codes


class StaircaseQuantizer(wiring.Component):
    def __init__(self, shape: QuantizerShape):
        self.shape = s = shape
        ports = {"tag": In(s.tag_bits)} if s.tag_bits else {}
        super().__init__(ports | {
            "base": In(range(s.threshold_words)),
            "row_in": In(stream.Signature(data.ArrayLayout(signed(s.value_bits), s.lanes))),
            "row_out": Out(stream.Signature(s.out_layout)),
            "threshold_addr": Out(range(s.threshold_words)),
            "thresholds": In(s.threshold_layout),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        s = self.shape
        take = Signal()
        beat, row_base = Signal(range(s.beats)), Signal(range(s.threshold_words))
        last = beat == s.beats - 1
        stage_valid = Signal(QUANTIZE_STAGES)
        values = [Signal.like(self.row_in.payload, name=f"values_{i}") for i in range(2)]
        tail = s.values - (s.beats - 1) * s.lanes
        real = Cat(Const(1) if lane < tail else ~last for lane in range(s.lanes))
        reals = [Signal(s.lanes, name=f"real_{i}") for i in range(2)]
        codes = Signal(data.ArrayLayout(unsigned(s.code_bits), s.lanes))
        base = Mux(beat == 0, self.base, row_base)  # the row's base, as held at its first beat
        out = codes.as_value()
        if s.tag_bits:  # the row's tag beside its codes through the stages
            row_tag = Signal(s.tag_bits)
            tags = [Signal(s.tag_bits, name=f"tag_{i}") for i in range(QUANTIZE_STAGES)]
            tag = Mux(beat == 0, self.tag, row_tag)
            with m.If(take):
                m.d.sync += row_tag.eq(tag)
            m.d.sync += [tags[0].eq(tag)] + [tags[i].eq(tags[i - 1]) for i in range(1, QUANTIZE_STAGES)]
            out = Cat(out, tags[-1])
        m.d.sync += [stage_valid.eq(Cat(take, stage_valid[:-1])), values[0].eq(self.row_in.payload),
                     values[1].eq(values[0]), reals[0].eq(real), reals[1].eq(reals[0])]
        with m.If(take):
            m.d.sync += [self.threshold_addr.eq(base if s.shared else base + beat), beat.eq(Mux(last, 0, beat + 1)),
                         row_base.eq(base)]
        for lane in range(s.lanes):
            row = self.thresholds[0 if s.shared else lane]
            hits = Cat(values[1][lane] >= row[level] for level in range(s.levels))
            count = popcount(m, hits, f"code_{lane}")
            code = count if s.codes.bipolar else (count + s.codes.low)[:s.code_bits]
            m.d.sync += codes[lane].eq(Mux(reals[1][lane], code, 0))
        room, fifo = credited_output(m, self.row_out, stage_valid, out, "out_fifo")
        m.d.comb += [self.row_in.ready.eq(room), take.eq(self.row_in.valid & room),
                     self.busy.eq((beat != 0) | stage_valid.any() | fifo.r_rdy)]
        return m


# ---- the resource model ---------------------------------------------------------------------------
# Inside the residual stream its LUTs are counted with the stream's (residual_features); alone (the
# attention pipeline's context staircase) by ``quantizer_resources``.
LUT_COEFFICIENTS = coefficients("staircase_quantizer")


def quantizer_features(shape: QuantizerShape) -> dict[str, float]:
    """LUT structure counts: the threshold comparators (a level's per lane), per lane the count of
    levels reached with its low code and mask, and the rest (the beat counter, the address adder)."""
    s = shape
    return {"compare_bits": s.lanes * s.levels * s.threshold_bits, "lane_bits": s.lanes * (s.levels + s.code_bits),
            "control": 1.0}


def quantizer_resources(shape: QuantizerShape) -> Resources:
    """LUTs from the features; its flip-flops (the tag's stages too) and the output FIFO."""
    s = shape
    return quantizer_fifo(s) + Resources(lut=linear_cost(LUT_COEFFICIENTS, quantizer_features(s)),
                                         ff=quantizer_flip_flops(s) + (QUANTIZE_STAGES + 1) * s.tag_bits)


def quantizer_flip_flops(shape: QuantizerShape) -> int:
    """The two value stages with their lane masks, the codes, the stage flags, the address and the
    row's base, the beat."""
    s = shape
    return (s.lanes * (2 * s.value_bits + 2 + s.code_bits) + QUANTIZE_STAGES
            + 2 * (s.threshold_words - 1).bit_length() + (s.beats - 1).bit_length())


def quantizer_fifo(shape: QuantizerShape) -> Resources:
    """The output FIFO, the tags beside the codes."""
    return fifo_resources(shape.lanes * shape.code_bits + shape.tag_bits, QUANTIZE_STAGES)
