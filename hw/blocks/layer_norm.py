"""The LayerNorm unit: one token's fixed-point row in, its LayerNorm out (docs/datapath.md, "LayerNorm").

A row of H values (``in_bits`` two's complement, FRAC fractional bits) arrives on ``row_in`` as
ceil(H / L) beats of L lanes; the unit keeps it in its row buffer and answers on ``row_out`` (L
lanes of ``out_bits``), bit for bit as ``bebert.sim.execute.layer_norm``:

1. in: each beat is stored and its lanes added to the row's sum;
2. mean = round_div(sum, H) on the sequential divider (one quotient bit per cycle);
3. variance pass: the row read back, c = round_shift(z - mean, LN_VAR_SHIFT), the squares summed;
4. var = max(floor(sum / H), LN_VAR_FLOOR) on the divider, and its even normalizing shift k;
5. the integer square root of var << k, one root bit per cycle, and the reciprocal
   round_div(2^LN_RECIP, root) on the divider;
6. out pass: the row read again, per lane round_shift(d * recip, shift), times the gain,
   round_shift by FRAC, plus the bias.

Gain and bias come from a parameter memory: ``param_addr`` (the beat) with one cycle of read latency
into ``gain`` and ``bias`` (L lanes each). Lanes past H in the last beat are ignored on the way in
and 0 on the way out. The out pass issues a beat only while its output FIFO has room for every beat
in flight, so backpressure on ``row_out`` never stalls the pipeline, and every output is a register.

Cycle model (``LayerNormShape.row_cycles``): a row occupies the unit for 3 passes of ceil(H / L)
cycles plus its scalar work, the dividers' and the root's iterations and a few fixed cycles
(constants below); the next row is taken as soon as the last out beat is issued, and each beat
leaves OUT_LATENCY cycles after it is issued. Cycles waiting on either stream are not counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from bebert.sim.fixed import FRAC, LN_INPUT_BITS, LN_NORM_BITS, LN_RECIP, LN_VAR_FLOOR, LN_VAR_SHIFT

from .compressor import adder_tree
from .credited_output import credited_output, fifo_resources
from ..design.plan import signed_bits
from ..resources import Resources, ceil_div, coefficients, linear_cost, multiply_dsps, row_buffer

# Fixed cycles of a row beside its passes and iterations (the FSM below spends exactly these).
DIVIDE_OVERHEAD = 2  # one cycle loads the divider, one takes its quotient
VARIANCE_DRAIN = 4  # the variance pass's read, deviation, square and sum stages empty after its last read
NORMALIZE_CYCLES = 1  # the leading-zero count and shift of the variance, loading the root
ROOT_OVERHEAD = 1  # the root is taken the cycle after its last iteration
OUT_STAGES = 5  # deviation, x reciprocal, rounding shift, x gain, rounding and bias
OUT_LATENCY = OUT_STAGES + 3  # issue to row_out: the read, the stages, the FIFO write and its output register


@dataclass(frozen=True)
class LayerNormShape:
    """The unit's sizes: H (``width``), L (``lanes``), the input width and the gain and bias bounds
    (largest magnitudes of the fixed-point constants); every internal width follows from these."""

    width: int
    lanes: int
    in_bits: int
    gain_bound: int
    bias_bound: int

    def __post_init__(self):
        if not 1 <= self.lanes <= self.width:
            raise ValueError(f"LayerNorm lanes must be 1 to the row width {self.width}, not {self.lanes}")
        if not 6 <= self.in_bits <= LN_INPUT_BITS:
            raise ValueError(f"LayerNorm inputs of {self.in_bits} bits: the datapath holds 6 to {LN_INPUT_BITS}")

    @property
    def beats(self) -> int:
        return ceil_div(self.width, self.lanes)

    @property
    def sum_bits(self) -> int:
        return signed_bits(self.width << (self.in_bits - 1))

    @property
    def mean_quotient_bits(self) -> int:
        """mean + 2^(W-1) in [0, 2^W): the offset makes the rounded division one of non-negatives."""
        return self.in_bits

    @property
    def deviation_bits(self) -> int:  # z - mean
        return self.in_bits + 1

    @property
    def coarse_bits(self) -> int:  # round_shift(z - mean, LN_VAR_SHIFT), |c| <= 2^(W - LN_VAR_SHIFT)
        return signed_bits(1 << (self.in_bits - LN_VAR_SHIFT))

    @property
    def variance_bits(self) -> int:  # a square, and so the variance: at most 2^(2 (W - LN_VAR_SHIFT))
        return (1 << 2 * (self.in_bits - LN_VAR_SHIFT)).bit_length()

    @property
    def square_sum_bits(self) -> int:
        return (self.width << 2 * (self.in_bits - LN_VAR_SHIFT)).bit_length()

    @property
    def root_steps(self) -> int:
        """var << k holds at most max(LN_NORM_BITS, variance bits) bits; one root bit per 2 of them."""
        return ceil_div(max(LN_NORM_BITS, self.variance_bits), 2)

    @property
    def smallest_root(self) -> int:
        """var >= 1 and the even shift k make var << k at least 2^(LN_NORM_BITS - 2)."""
        return math.isqrt(1 << (LN_NORM_BITS - 2))

    @property
    def recip_bits(self) -> int:
        return (((2 << LN_RECIP) + self.smallest_root) // (2 * self.smallest_root)).bit_length()

    @property
    def product_bits(self) -> int:  # d * reciprocal
        return self.deviation_bits + self.recip_bits

    @cached_property
    def normalized_bound(self) -> int:
        """|d / sigma| in fixed point: below 2^FRAC (sqrt(2H) + 1) (docs/datapath.md, "LayerNorm")."""
        return math.ceil(2**FRAC * (math.sqrt(2 * self.width) + 1))

    @property
    def normalized_bits(self) -> int:
        return signed_bits(self.normalized_bound)

    @property
    def gain_bits(self) -> int:
        return signed_bits(self.gain_bound)

    @property
    def bias_bits(self) -> int:
        return signed_bits(self.bias_bound)

    @property
    def out_bound(self) -> int:
        return ((self.normalized_bound * self.gain_bound + (1 << (FRAC - 1))) >> FRAC) + 1 + self.bias_bound

    @property
    def out_bits(self) -> int:
        return signed_bits(self.out_bound)

    @property
    def divider_quotient_bits(self) -> int:
        return max(self.mean_quotient_bits, self.variance_bits, self.recip_bits)

    @property
    def divider_divisor_bits(self) -> int:
        return max((2 * self.width).bit_length(), (2 * ((1 << self.root_steps) - 1)).bit_length())

    @property
    def row_cycles(self) -> int:
        """Cycles from a row's first beat taken to the next row's first beat (no stream waits)."""
        return (3 * self.beats + VARIANCE_DRAIN + NORMALIZE_CYCLES
                + self.mean_quotient_bits + self.variance_bits + self.recip_bits + 3 * DIVIDE_OVERHEAD
                + self.root_steps + ROOT_OVERHEAD)

    def rows_cycles(self, rows: int) -> int:
        """Cycles from the first row's first beat taken to the last row's last beat out, rows back to
        back with no stream waits (the out pass of the last row drains OUT_LATENCY cycles)."""
        return rows * self.row_cycles + OUT_LATENCY


class SequentialDivider(wiring.Component):
    """floor(N / D), one quotient bit per cycle (restoring division), for N < D 2^q.

    ``start`` loads N as its high part N >> q (``high``, below D) and its low q bits left-aligned in
    ``low`` (most significant first), D and q (``steps``); ``done`` rises q cycles later with the
    quotient final."""

    def __init__(self, quotient_bits: int, divisor_bits: int):
        self.quotient_bits = quotient_bits
        super().__init__({
            "start": In(1),
            "high": In(divisor_bits),
            "low": In(quotient_bits),
            "divisor": In(divisor_bits),
            "steps": In(range(quotient_bits + 1)),
            "quotient": Out(quotient_bits),
            "done": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        remainder = Signal.like(self.high, name="remainder")  # below the divisor
        low = Signal.like(self.low, name="low_bits")
        divisor = Signal.like(self.divisor, name="taken_divisor")
        left = Signal.like(self.steps, name="steps_left")
        with m.If(self.start):
            m.d.sync += [remainder.eq(self.high), low.eq(self.low), divisor.eq(self.divisor),
                         left.eq(self.steps), self.quotient.eq(0)]
        with m.Elif(left != 0):
            trial = Cat(low[-1], remainder)  # 2 remainder + the next dividend bit
            fits = trial >= divisor
            m.d.sync += [remainder.eq(Mux(fits, trial - divisor, trial)), low.eq(low << 1),
                         self.quotient.eq(Cat(fits, self.quotient)), left.eq(left - 1)]
        m.d.comb += self.done.eq(left == 0)
        return m


class SquareRoot(wiring.Component):
    """floor(sqrt(x)) digit by digit, one root bit (two bits of x) per cycle: ``start`` loads x,
    ``done`` rises ``steps`` cycles later with ``root`` final."""

    def __init__(self, steps: int):
        self.steps = steps
        super().__init__({
            "start": In(1),
            "value": In(2 * steps),
            "root": Out(steps),
            "done": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        remainder = Signal(self.steps + 2)  # at most 2 root
        rest = Signal.like(self.value, name="rest")  # x's bits not yet brought down, top first
        left = Signal(range(self.steps + 1))
        with m.If(self.start):
            m.d.sync += [remainder.eq(0), rest.eq(self.value), self.root.eq(0), left.eq(self.steps)]
        with m.Elif(left != 0):
            brought = Cat(rest[-2:], remainder)  # 4 remainder + the next two bits of x
            trial = Cat(Const(1, 2), self.root)  # 4 root + 1
            fits = brought >= trial
            m.d.sync += [remainder.eq(Mux(fits, brought - trial, brought)), rest.eq(rest << 2),
                         self.root.eq(Cat(fits, self.root)), left.eq(left - 1)]
        m.d.comb += self.done.eq(left == 0)
        return m


class LayerNormUnit(wiring.Component):
    def __init__(self, shape: LayerNormShape):
        self.shape = s = shape
        super().__init__({
            "row_in": In(stream.Signature(data.ArrayLayout(signed(s.in_bits), s.lanes))),
            "row_out": Out(stream.Signature(data.ArrayLayout(signed(s.out_bits), s.lanes))),
            "param_addr": Out(range(s.beats)),
            "gain": In(data.ArrayLayout(signed(s.gain_bits), s.lanes)),
            "bias": In(data.ArrayLayout(signed(s.bias_bits), s.lanes)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        s = self.shape
        lanes, beats, width = s.lanes, s.beats, s.width
        tail = width - (beats - 1) * lanes  # real lanes of the last beat

        m.submodules.rows = rows = Memory(shape=data.ArrayLayout(signed(s.in_bits), lanes), depth=beats, init=[])
        write, read = rows.write_port(), rows.read_port()
        m.submodules.divider = divider = SequentialDivider(s.divider_quotient_bits, s.divider_divisor_bits)
        m.submodules.square_root = square_root = SquareRoot(s.root_steps)

        beat = Signal(range(beats + 1))
        total = Signal(signed(s.sum_bits))
        squares = Signal(s.square_sum_bits)
        mean = Signal(signed(s.in_bits))
        variance = Signal(s.variance_bits)
        shift = Signal(range(LN_RECIP + 1))  # the reciprocal product's rounding shift, 35 - k/2
        reciprocal = Signal(s.recip_bits)
        address = Mux(beat < beats, beat, 0)  # beat == beats only while a pass drains: no read is used then
        m.d.comb += [read.addr.eq(address), self.param_addr.eq(address), write.addr.eq(address),
                     write.data.eq(self.row_in.payload)]

        def real(lane, last):
            """Whether a lane holds a value of the row (only the last beat has padding lanes)."""
            return Const(1) if lane < tail else ~last

        # -- the variance pass: read, deviation and coarse value, square, sum ---------------------
        var_issue, var_read = Signal(), Signal()
        read_last = Signal()
        coarse = Signal(data.ArrayLayout(signed(s.coarse_bits), lanes))
        coarse_valid = Signal()
        square = Signal(data.ArrayLayout(s.variance_bits, lanes))
        square_valid = Signal()
        m.d.sync += [var_read.eq(var_issue), read_last.eq(beat == beats - 1), coarse_valid.eq(var_read),
                     square_valid.eq(coarse_valid)]
        for lane in range(lanes):
            d = read.data[lane] - mean
            keep = real(lane, read_last)
            m.d.sync += coarse[lane].eq(Mux(keep, (d + (1 << (LN_VAR_SHIFT - 1))) >> LN_VAR_SHIFT, 0))
            m.d.sync += square[lane].eq(coarse[lane] * coarse[lane])
        with m.If(square_valid):
            m.d.sync += squares.eq(squares + adder_tree([square[lane] for lane in range(lanes)]))

        # -- the out pass: five registered stages into the FIFO -----------------------------------
        out_issue = Signal()
        stage_valid = Signal(OUT_STAGES + 1)  # [0]: data on the read ports; [i]: stage i's registers hold a beat
        stage_last = Signal(OUT_STAGES + 1)
        m.d.sync += [stage_valid.eq(Cat(out_issue, stage_valid[:-1])), stage_last.eq(Cat(beat == beats - 1, stage_last[:-1]))]
        deviation = Signal(data.ArrayLayout(signed(s.deviation_bits), lanes))
        product = Signal(data.ArrayLayout(signed(s.product_bits), lanes))
        normalized = Signal(data.ArrayLayout(signed(s.normalized_bits), lanes))
        scaled = Signal(data.ArrayLayout(signed(s.normalized_bits + s.gain_bits), lanes))
        result = Signal(data.ArrayLayout(signed(s.out_bits), lanes))
        gains = [Signal.like(self.gain, name=f"gain_{i}") for i in (1, 2, 3)]
        biases = [Signal.like(self.bias, name=f"bias_{i}") for i in (1, 2, 3, 4)]
        m.d.sync += [gains[0].eq(self.gain), gains[1].eq(gains[0]), gains[2].eq(gains[1]),
                     biases[0].eq(self.bias), biases[1].eq(biases[0]), biases[2].eq(biases[1]), biases[3].eq(biases[2])]
        round_bit = Signal(s.product_bits)
        for lane in range(lanes):
            m.d.sync += [
                deviation[lane].eq(read.data[lane] - mean),
                product[lane].eq(deviation[lane] * reciprocal),
                normalized[lane].eq((product[lane] + round_bit) >> shift),
                scaled[lane].eq(normalized[lane] * gains[2][lane]),
                result[lane].eq(Mux(real(lane, stage_last[OUT_STAGES - 1]),
                                    ((scaled[lane] + (1 << (FRAC - 1))) >> FRAC) + biases[3][lane], 0)),
            ]
        room, fifo = credited_output(m, self.row_out, stage_valid, result.as_value())

        # -- the control: one row at a time ----------------------------------------------------------
        d = divider

        def divide(dividend, divisor, quotient_bits: int) -> list:
            """Start floor(dividend / divisor), a quotient of quotient_bits: the dividend split into
            its high part and its low bits, left-aligned."""
            return [d.start.eq(1), d.high.eq(dividend >> quotient_bits),
                    d.low.eq(dividend << (d.quotient_bits - quotient_bits)), d.divisor.eq(divisor),
                    d.steps.eq(quotient_bits)]

        with m.FSM(name="layer_norm"):
            with m.State("IN"):
                m.d.comb += self.row_in.ready.eq(1)
                with m.If(self.row_in.valid):
                    last = beat == beats - 1
                    lane_values = [Mux(real(lane, last), self.row_in.payload[lane], 0) for lane in range(lanes)]
                    m.d.comb += write.en.eq(1)
                    m.d.sync += [total.eq(total + adder_tree(lane_values)), beat.eq(beat + 1)]
                    with m.If(last):
                        m.d.sync += beat.eq(0)
                        m.next = "MEAN"
            with m.State("MEAN"):  # floor((2 sum + H + H 2^W) / 2H) = mean + 2^(W-1)
                m.d.comb += divide((total << 1) + width + (width << s.in_bits), 2 * width, s.mean_quotient_bits)
                m.next = "MEAN_WAIT"
            with m.State("MEAN_WAIT"):
                with m.If(d.done):
                    m.d.sync += [mean.eq(d.quotient - (1 << (s.in_bits - 1))), total.eq(0), squares.eq(0)]
                    m.next = "VARIANCE"
            with m.State("VARIANCE"):
                with m.If(beat != beats):
                    m.d.comb += var_issue.eq(1)
                    m.d.sync += beat.eq(beat + 1)
                with m.Elif(~(var_read | coarse_valid | square_valid)):
                    m.d.sync += beat.eq(0)
                    m.next = "VARIANCE_DIVIDE"
            with m.State("VARIANCE_DIVIDE"):
                m.d.comb += divide(squares, width, s.variance_bits)
                m.next = "VARIANCE_WAIT"
            with m.State("VARIANCE_WAIT"):
                with m.If(d.done):
                    m.d.sync += variance.eq(Mux(d.quotient > LN_VAR_FLOOR, d.quotient, LN_VAR_FLOOR))
                    m.next = "NORMALIZE"
            with m.State("NORMALIZE"):  # k = max(LN_NORM_BITS - bit_length(var), 0), made even
                length = Signal(range(s.variance_bits + 1))
                for bit in range(s.variance_bits):  # the highest set bit wins
                    with m.If(variance[bit]):
                        m.d.comb += length.eq(bit + 1)
                short = Signal(range(LN_NORM_BITS + 1))  # LN_NORM_BITS - length, at least 0
                m.d.comb += short.eq(Mux(length < LN_NORM_BITS, LN_NORM_BITS - length, 0))
                k = Cat(Const(0, 1), short[1:])  # made even
                m.d.comb += [square_root.start.eq(1), square_root.value.eq(variance << k)]
                top_shift = LN_RECIP - FRAC + LN_VAR_SHIFT  # the shift at k = 0
                round_at = Signal(range(top_shift))  # shift - 1: the rounding bit's place
                m.d.comb += round_at.eq(top_shift - 1 - (k >> 1))
                m.d.sync += [shift.eq(top_shift - (k >> 1)), round_bit.eq(Const(1, s.product_bits) << round_at)]
                m.next = "ROOT"
            with m.State("ROOT"):
                with m.If(square_root.done):
                    m.next = "RECIPROCAL"
            with m.State("RECIPROCAL"):  # round_div(2^R, root) = floor((2^(R+1) + root) / (2 root))
                m.d.comb += divide(Const(2 << LN_RECIP, LN_RECIP + 2) + square_root.root, square_root.root << 1,
                                   s.recip_bits)
                m.next = "RECIPROCAL_WAIT"
            with m.State("RECIPROCAL_WAIT"):
                with m.If(d.done):
                    m.d.sync += reciprocal.eq(d.quotient)
                    m.next = "OUT"
            with m.State("OUT"):
                with m.If(room):
                    m.d.comb += out_issue.eq(1)
                    m.d.sync += beat.eq(beat + 1)
                    with m.If(beat == beats - 1):
                        m.d.sync += beat.eq(0)
                        m.next = "IN"
        m.d.comb += self.busy.eq(~(self.row_in.ready & (beat == 0)) | stage_valid.any() | fifo.r_rdy)
        return m


# ---- the resource model ---------------------------------------------------------------------------
def _multiplies(s: LayerNormShape) -> list[tuple[int, int]]:
    """Each lane's three products: the square, d x reciprocal, n x gain."""
    return [(s.coarse_bits, s.coarse_bits), (s.deviation_bits, s.recip_bits + 1), (s.normalized_bits, s.gain_bits)]


LUT_COEFFICIENTS = coefficients("layer_norm")


def layer_norm_features(shape: LayerNormShape) -> dict[str, float]:
    """Structure counts the LUT cost is linear in (coefficients in hw/calibration.yaml):

    * ``lane_bits``: per lane the adders and subtracters (two deviations, the coarse rounding,
      the product's rounding, the gain product's rounding and the bias), the rounding shift's mux
      levels, the padding masks, and the lane-sum trees' adders;
    * ``product_bits``: per lane the fabric adders that join a wide product's DSP tiles;
    * ``scalar_bits``: the divider, the root, the leading-zero count and variance shift, the sums.
    """
    s = shape
    shift_levels = math.ceil(math.log2(LN_RECIP - FRAC + LN_VAR_SHIFT + 1))
    lane = (2 * s.deviation_bits + s.coarse_bits + s.product_bits + s.normalized_bits + s.gain_bits
            + s.out_bits + s.normalized_bits * shift_levels + s.variance_bits + s.sum_bits)
    joins = sum((multiply_dsps(a, b) - 1) * (a + b) for a, b in _multiplies(s))
    scalar = (3 * s.divider_divisor_bits + 3 * s.root_steps + s.variance_bits * math.ceil(math.log2(s.variance_bits))
              + s.sum_bits + s.square_sum_bits)
    return {"lane_bits": s.lanes * lane, "product_bits": s.lanes * joins, "scalar_bits": scalar}


def layer_norm_resources(shape: LayerNormShape) -> Resources:
    """LUTs from the features above; flip-flops: the pipeline's registers not absorbed into the DSP
    slices (their input and product registers) and the scalar state; DSPs: the three products per
    lane in 25 x 18 tiles; the row buffer and the FIFO in distributed or block RAM."""
    s = shape
    lanes = s.lanes
    dsp = lanes * sum(multiply_dsps(a, b) for a, b in _multiplies(s))
    lane_ff = (s.coarse_bits + s.deviation_bits + s.normalized_bits + s.out_bits + 3 * s.gain_bits + 4 * s.bias_bits)
    scalar_ff = (s.sum_bits + s.square_sum_bits + s.in_bits + s.variance_bits + s.recip_bits + s.product_bits
                 + 3 * s.divider_divisor_bits + 2 * s.divider_quotient_bits + 4 * s.root_steps)
    buffers = (row_buffer(lanes * s.in_bits, s.beats, shared_address=True)  # one beat counter addresses both
               + fifo_resources(lanes * s.out_bits, OUT_STAGES + 1))
    return buffers + Resources(lut=linear_cost(LUT_COEFFICIENTS, layer_norm_features(s)),
                               ff=lanes * lane_ff + scalar_ff, dsp=dsp)
