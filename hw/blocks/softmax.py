"""The softmax unit: one query's row of attention scores in, its probability codes out
(docs/datapath.md, "Attention"), bit for bit as ``bebert.sim.execute.attention``.

A row of ``length`` scores (signed ``score_bits``) arrives on ``row_in`` as ceil(length / L) beats of
L lanes; ``row_out`` answers with as many beats of L unsigned codes (``prob_bits``):

1. in: each beat is stored in the row buffer and its largest score joins the row's maximum;
2. exponential pass: the row read back, per lane delta = max - score clamped to the layer's last
   table entry, the table read, and the exponential written back over the score and added to the
   row's sum;
3. thresholds: P = SP x sum (SP = the layer's ``prob_step``), then for each level l one cycle
   forms t_l = ceil((2l - 1) P / 2^(PROB_FRAC + 1)), saturated above the largest exponential, so
   that the division-free quantizer's test 2 e 2^PROB_FRAC >= (2l - 1) SP sum reads e >= t_l;
4. out pass: the row read again, per lane the number of thresholds its exponential reaches.

The exponential table is a parameter memory per lane: ``table_addr`` (L addresses, registers) with
one cycle of read latency into ``table_data``. ``length``, ``table_last`` (the layer's table
length - 1) and ``prob_step`` are held by the controller while the unit is busy. Lanes past the
row's length are ignored on the way in and 0 on the way out. The out pass issues into a FIFO on
credit (credited_output.py), and every output is a register.

Cycle model (``SoftmaxShape.row_cycles``): 3 passes of ceil(length / L) cycles, the exponential
pipeline's drain, one cycle per level; the next row is taken as the last out beat is issued, and
each beat leaves OUT_LATENCY cycles after its issue. Cycles waiting on a stream are not counted.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from bebert.sim.fixed import EXP_FRAC, PROB_FRAC

from .compressor import adder_tree, popcount
from .credited_output import credited_output, fifo_resources
from .lane_rows import BeatCounter, LaneRows
from ..resources import Resources, coefficients, linear_cost, multiply_dsps, row_buffer

EXP_BITS = EXP_FRAC + 1  # exponentials are at most exp(0) = 2^EXP_FRAC
SATURATED = (1 << EXP_FRAC) + 1  # a threshold no exponential reaches
EXP_STAGES = 6  # read, delta, clamp (the table address), table data, masked exponential, lane sum
SCALAR_CYCLES = EXP_STAGES + 2  # after the last exponential read: the stages empty, the sum is final, P, the first level's sum
OUT_STAGES = 2  # threshold comparisons, count and mask
OUT_LATENCY = OUT_STAGES + 3  # issue to row_out: the read, the stages, the FIFO write and its output register


@dataclass(frozen=True)
class SoftmaxShape(LaneRows):
    """The unit's sizes: the longest row (``tokens``), L (``lanes``), the scores' width, the longest
    exponential table, the probability codes' width and the largest SP; every width follows."""

    tokens: int
    lanes: int
    score_bits: int
    table_depth: int
    prob_bits: int
    prob_step_bound: int

    def __post_init__(self):
        if not 1 <= self.lanes <= self.tokens:
            raise ValueError(f"softmax lanes must be 1 to the longest row {self.tokens}, not {self.lanes}")
        if self.score_bits < 2 or self.table_depth < 2 or not 1 <= self.prob_bits <= 8 or self.prob_step_bound < 1:
            raise ValueError(f"a softmax unit cannot be built for {self}")

    @property
    def levels(self) -> int:
        return (1 << self.prob_bits) - 1

    @property
    def word_bits(self) -> int:  # a buffer lane holds a score, then its exponential
        return max(self.score_bits, EXP_BITS)

    @property
    def address_bits(self) -> int:
        return max(1, (self.table_depth - 1).bit_length())

    @property
    def delta_bits(self) -> int:  # max - score >= 0
        return self.score_bits

    @property
    def lane_sum_bits(self) -> int:
        return (self.lanes << EXP_FRAC).bit_length()

    @property
    def sum_bits(self) -> int:
        return (self.tokens << EXP_FRAC).bit_length()

    @property
    def step_bits(self) -> int:
        return self.prob_step_bound.bit_length()

    @property
    def product_bits(self) -> int:  # P = SP x sum
        return self.sum_bits + self.step_bits

    @property
    def ceiling(self) -> int:  # added once so that a right shift rounds up
        return (1 << (PROB_FRAC + 1)) - 1

    @property
    def level_bits(self) -> int:  # (2l - 1) P + the ceiling, for the last level
        return ((2 * self.levels - 1) * (self.tokens << EXP_FRAC) * self.prob_step_bound + self.ceiling).bit_length()

    @property
    def threshold_bits(self) -> int:
        return SATURATED.bit_length()

    def row_cycles(self, length: int) -> int:
        """Cycles from a row's first beat taken to the next row's first beat (no stream waits)."""
        return 3 * self.row_beats(length) + SCALAR_CYCLES + self.levels

    def rows_cycles(self, rows: int, length: int) -> int:
        """Cycles from the first row's first beat taken to the last row's last beat out, rows back to
        back with no stream waits."""
        return rows * self.row_cycles(length) + OUT_LATENCY


def max_tree(values: list) -> object:
    """A balanced tree of signed maximums (a bare value for one)."""
    while len(values) > 1:
        values = [Mux(values[i] >= values[i + 1], values[i], values[i + 1]) if i + 1 < len(values) else values[i]
                  for i in range(0, len(values), 2)]
    return values[0]


class SoftmaxUnit(wiring.Component):
    def __init__(self, shape: SoftmaxShape):
        self.shape = s = shape
        super().__init__({
            "row_in": In(stream.Signature(data.ArrayLayout(signed(s.score_bits), s.lanes))),
            "row_out": Out(stream.Signature(data.ArrayLayout(unsigned(s.prob_bits), s.lanes))),
            "length": In(range(1, s.tokens + 1)),
            "table_last": In(range(s.table_depth)),
            "prob_step": In(s.step_bits),
            "table_addr": Out(data.ArrayLayout(unsigned(s.address_bits), s.lanes)),
            "table_data": In(data.ArrayLayout(unsigned(EXP_BITS), s.lanes)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        s = self.shape
        lanes = s.lanes
        lowest = -(1 << (s.score_bits - 1))

        m.submodules.rows = rows = Memory(shape=data.ArrayLayout(s.word_bits, lanes), depth=s.beats, init=[])
        write, read = rows.write_port(), rows.read_port()

        # one beat counter, shared by the three passes
        counter = BeatCounter(s, self.length)
        beat, last, real, advance, restart = counter.beat, counter.last, counter.real, counter.advance, counter.restart
        read_address = Mux(beat < s.beats, beat, 0)
        m.d.comb += read.addr.eq(read_address)

        # -- the in pass: store, and each beat's largest score into the row's maximum ------------------
        beat_max = Signal(signed(s.score_bits))
        beat_max_valid = Signal()
        row_max = Signal(signed(s.score_bits), init=lowest)
        in_take = Signal()
        m.d.sync += [beat_max.eq(max_tree([Mux(real[lane], self.row_in.payload[lane], lowest) for lane in range(lanes)])),
                     beat_max_valid.eq(in_take)]
        with m.If(beat_max_valid & (beat_max > row_max)):
            m.d.sync += row_max.eq(beat_max)

        # -- the exponential pass: read, delta, clamp, table, mask and write back, lane sum --------------
        exp_issue = Signal()
        valid = Signal(EXP_STAGES)  # [0]: the read data; [1] delta; [2] table address; [3] table data; [4] exp; [5] lane sum
        at = [Signal.like(beat, name=f"exp_beat_{i}") for i in range(4)]  # the beat's address, for the write back
        lane_real = [Signal(lanes, name=f"exp_real_{i}") for i in range(4)]
        m.d.sync += [valid.eq(Cat(exp_issue, valid[:-1])), at[0].eq(read_address), lane_real[0].eq(real)]
        m.d.sync += [at[i + 1].eq(at[i]) for i in range(3)] + [lane_real[i + 1].eq(lane_real[i]) for i in range(3)]
        delta = Signal(data.ArrayLayout(unsigned(s.delta_bits), lanes))
        exps = Signal(data.ArrayLayout(unsigned(EXP_BITS), lanes))
        lane_sum = Signal(s.lane_sum_bits)
        total = Signal(s.sum_bits)
        for lane in range(lanes):
            score = read.data[lane][:s.score_bits].as_signed()
            m.d.sync += [delta[lane].eq(row_max - score),
                         self.table_addr[lane].eq(Mux(delta[lane] < self.table_last, delta[lane], self.table_last))]
        masked = [Mux(lane_real[3][lane], self.table_data[lane], 0) for lane in range(lanes)]
        m.d.sync += [exps[lane].eq(masked[lane]) for lane in range(lanes)]
        m.d.sync += lane_sum.eq(adder_tree([exps[lane] for lane in range(lanes)]))
        with m.If(valid[5]):
            m.d.sync += total.eq(total + lane_sum)
        in_write = Signal()
        m.d.comb += [write.en.eq(in_write | valid[3]),
                     write.addr.eq(Mux(valid[3], at[3], read_address)),
                     write.data.eq(Mux(valid[3], Cat(*(Cat(e, Const(0, s.word_bits - EXP_BITS)) for e in masked)),
                                       Cat(*(Cat(self.row_in.payload[lane], Const(0, s.word_bits - s.score_bits))
                                             for lane in range(lanes)))))]

        # -- thresholds: P = SP x sum, then one level per cycle -----------------------------------------
        product = Signal(s.product_bits)
        level = Signal(s.level_bits)  # (2l - 1) P + the ceiling, for the level being formed
        thresholds = [Signal(s.threshold_bits, name=f"threshold_{i}") for i in range(s.levels)]
        levels_left = Signal(range(s.levels + 1))
        formed = level >> (PROB_FRAC + 1)
        with m.If(levels_left != 0):
            m.d.sync += [thresholds[0].eq(Mux(formed < SATURATED, formed, SATURATED)), level.eq(level + (product << 1)),
                         levels_left.eq(levels_left - 1)]
            m.d.sync += [thresholds[i + 1].eq(thresholds[i]) for i in range(s.levels - 1)]  # a shift register

        # -- the out pass: compare, count and mask, into the FIFO ------------------------------------------
        out_issue = Signal()
        stage_valid = Signal(OUT_STAGES + 1)  # [0]: the read data; [1] comparisons; [2] codes
        out_real = [Signal(lanes, name=f"out_real_{i}") for i in range(2)]
        m.d.sync += [stage_valid.eq(Cat(out_issue, stage_valid[:-1])), out_real[0].eq(real), out_real[1].eq(out_real[0])]
        hits = [Signal(s.levels, name=f"hits_{lane}") for lane in range(lanes)]
        codes = Signal(data.ArrayLayout(unsigned(s.prob_bits), lanes))
        for lane in range(lanes):
            e = read.data[lane][:EXP_BITS]
            m.d.sync += hits[lane].eq(Cat(e >= t for t in thresholds))
            m.d.sync += codes[lane].eq(Mux(out_real[1][lane], popcount(m, hits[lane], f"code_{lane}"), 0))
        room, fifo = credited_output(m, self.row_out, stage_valid, codes.as_value())

        # -- the control: one row at a time ----------------------------------------------------------------
        with m.FSM(name="softmax"):
            with m.State("IN"):
                m.d.comb += self.row_in.ready.eq(1)
                with m.If(self.row_in.valid):
                    m.d.comb += [in_take.eq(1), in_write.eq(1)]
                    m.d.sync += advance()
                    with m.If(last):
                        m.d.sync += restart()
                        m.next = "EXP"
            with m.State("EXP"):  # the row's maximum is final by the time the first read's data is used
                m.d.comb += exp_issue.eq(1)
                m.d.sync += advance()
                with m.If(last):
                    m.d.sync += restart()
                    m.next = "EXP_DRAIN"
            with m.State("EXP_DRAIN"):
                with m.If(~valid.any()):
                    m.d.sync += product.eq(total * self.prob_step)
                    m.next = "PRODUCT"
            with m.State("PRODUCT"):
                m.d.sync += [level.eq(product + s.ceiling), levels_left.eq(s.levels)]
                m.next = "THRESHOLDS"
            with m.State("THRESHOLDS"):
                with m.If(levels_left == 1):
                    m.next = "OUT"
            with m.State("OUT"):
                with m.If(room):
                    m.d.comb += out_issue.eq(1)
                    m.d.sync += advance()
                    with m.If(last):
                        m.d.sync += [restart(), total.eq(0), row_max.eq(lowest)]
                        m.next = "IN"
        m.d.comb += self.busy.eq(~(self.row_in.ready & (beat == 0)) | stage_valid.any() | fifo.r_rdy)
        return m


# ---- the resource model ---------------------------------------------------------------------------
LUT_COEFFICIENTS = coefficients("softmax")


def softmax_features(shape: SoftmaxShape) -> dict[str, float]:
    """Structure counts the LUT cost is linear in (coefficients in hw/calibration.yaml):

    * ``lane_bits``: per lane the maximum tree's compare and select, the distance's subtracter, the
      clamp's compare and select, the exponential's mask, the buffer's write select, the lane-sum
      tree's adders and the padding compares;
    * ``compare_bits``: per lane the threshold comparators (one per level);
    * ``scalar_bits``: the row maximum, the sum, the level accumulator with its ceiling and
      saturation, and the fabric adders joining the product's DSP tiles.
    """
    s = shape
    position_bits = (s.beats * s.lanes).bit_length()
    lane = (2 * s.score_bits + s.delta_bits + 2 * s.address_bits + EXP_BITS + s.word_bits + s.lane_sum_bits
            + position_bits + s.levels + s.prob_bits)
    joins = (multiply_dsps(s.sum_bits + 1, s.step_bits + 1) - 1) * s.product_bits
    scalar = s.score_bits + s.sum_bits + 3 * s.level_bits + joins
    return {"lane_bits": s.lanes * lane, "compare_bits": s.lanes * s.levels * s.threshold_bits, "scalar_bits": scalar}


def softmax_resources(shape: SoftmaxShape) -> Resources:
    """LUTs from the features above; flip-flops: the pipeline's and the scalar state's registers;
    DSPs: the one product P = SP x sum; the row buffer (written behind its reads in the exponential
    pass, so at its own address) and the FIFO in distributed or block RAM."""
    s = shape
    lane_ff = (s.delta_bits + s.address_bits + EXP_BITS + s.levels + s.prob_bits
               + 4 + 2)  # the lane masks' delays in the two pipelines
    scalar_ff = (2 * s.score_bits + s.lane_sum_bits + s.sum_bits + s.product_bits + s.level_bits
                 + s.levels * s.threshold_bits + 4 * (s.beats * s.lanes).bit_length())
    buffers = (row_buffer(s.lanes * s.word_bits, s.beats, shared_address=False)
               + fifo_resources(s.lanes * s.prob_bits, OUT_STAGES + 1))
    return buffers + Resources(lut=linear_cost(LUT_COEFFICIENTS, softmax_features(s)), ff=s.lanes * lane_ff + scalar_ff,
                               dsp=multiply_dsps(s.sum_bits + 1, s.step_bits + 1))
