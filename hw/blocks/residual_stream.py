"""The residual stream on chip: the sentence's hidden states in a RAM, the residual add into the
LayerNorm unit, and the quantizer from a LayerNorm's output into the next product's codes
(docs/datapath.md: "the residual adds", "A quantizer reading a fixed-point hidden state"), bit for
bit as ``x + y`` and ``Staircase.apply`` in ``bebert.sim.execute``.

Two paths, each a row of ``hidden`` values L (``lanes``) a beat, token after token, wrapping after
the sentence's ``length`` tokens (held by the controller, like ``embed`` and ``threshold_base``):

* add: a product's fixed-point row on ``add_in`` (attention output or FFN out), plus the token's
  stored hidden state, out on ``sum_out`` (the LayerNorm unit's input); with ``embed`` high the row
  passes unchanged (the embedding sums, which have no residual);
* norm: a LayerNorm output row on ``norm_in`` is stored as the token's hidden state and quantized,
  per channel c, to code = low + sum_l [x >= T_(c,l)], out on ``codes_out`` in the streams' code
  format (two's complement low bits, or 1 for +1 of a bipolar code). The thresholds of channels
  [beat L, beat L + L) come from a parameter memory: ``threshold_addr`` (a register,
  ``threshold_base`` + the beat) and ``thresholds`` one cycle after it.

The paths share only the RAM (one read port for add, one write port for norm); each issues a beat
a cycle into an output FIFO on credit (credited_output.py), and every output is a register. Cycle
model (``ResidualShape``): each path takes ceil(hidden / L) cycles a row, rows back to back, and a
beat leaves a fixed latency after it is taken. Cycles waiting on a stream are not counted.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from bebert.sim.program import Codes

from .compressor import popcount
from .credited_output import credited_output, fifo_resources
from ..resources import Resources, ceil_div, coefficients, linear_cost, row_buffer

ADD_STAGES = 2  # the read data with the product's beat, the sum
ADD_LATENCY = ADD_STAGES + 2  # a beat taken to its sum on sum_out: the stages, the FIFO's two
NORM_STAGES = 3  # the threshold address, the thresholds with the beat, the codes
NORM_LATENCY = NORM_STAGES + 2


@dataclass(frozen=True)
class ResidualShape:
    """The unit's sizes: the longest sentence, the hidden width, L, the widths of a hidden state
    (a LayerNorm output), of a product's output and of a threshold, the codes, and how many
    threshold words the parameter memory holds."""

    tokens: int
    hidden: int
    lanes: int
    state_bits: int
    add_bits: int
    codes: Codes
    threshold_bits: int
    threshold_words: int

    def __post_init__(self):
        if not 1 <= self.lanes <= self.hidden or self.tokens < 1:
            raise ValueError(f"residual stream lanes must be 1 to the hidden width {self.hidden}, not {self.lanes}")
        if self.state_bits < 2 or self.add_bits < 2 or self.threshold_bits < 2 or self.threshold_words < self.beats:
            raise ValueError(f"a residual stream cannot be built for {self}")

    @property
    def beats(self) -> int:
        """Beats of a hidden row."""
        return ceil_div(self.hidden, self.lanes)

    @property
    def words(self) -> int:
        """The RAM's depth: every token's row."""
        return self.tokens * self.beats

    @property
    def sum_bits(self) -> int:  # x + y never overflows
        return max(self.state_bits, self.add_bits) + 1

    @property
    def levels(self) -> int:
        """Comparators per channel: one per code step; one for a bipolar code, whose staircase counts
        its one boundary twice (-1 to +1)."""
        return 1 if self.codes.bipolar else len(self.codes.levels) - 1

    @property
    def code_bits(self) -> int:
        return 1 if self.codes.bipolar else self.codes.bits

    def rows_cycles(self, rows: int, path: str) -> int:
        """From a path's first beat taken to its last beat out, rows back to back (no stream waits)."""
        return rows * self.beats + (ADD_LATENCY if path == "add" else NORM_LATENCY)


class _Position:
    """A path's place in the sentence: the beat of the row, the token, and the RAM word."""

    def __init__(self, shape: ResidualShape, length, name: str):
        self.shape, self.length = shape, length
        self.beat = Signal(range(shape.beats), name=f"{name}_beat")
        self.token = Signal(range(shape.tokens), name=f"{name}_token")
        self.word = Signal(range(shape.words), name=f"{name}_word")
        self.row_end = self.beat == shape.beats - 1

    def advance(self) -> list:
        sentence_end = self.row_end & (self.token == self.length - 1)
        return [self.beat.eq(Mux(self.row_end, 0, self.beat + 1)),
                self.token.eq(Mux(sentence_end, 0, Mux(self.row_end, self.token + 1, self.token))),
                self.word.eq(Mux(sentence_end, 0, self.word + 1))]

    def real(self):
        """Which lanes of the beat hold a channel (only a row's last beat has padding lanes)."""
        s = self.shape
        tail = s.hidden - (s.beats - 1) * s.lanes
        return Cat(Const(1) if lane < tail else ~self.row_end for lane in range(s.lanes))


class ResidualStream(wiring.Component):
    def __init__(self, shape: ResidualShape):
        self.shape = s = shape
        lanes = s.lanes
        super().__init__({
            "length": In(range(1, s.tokens + 1)),
            "embed": In(1),
            "threshold_base": In(range(s.threshold_words)),
            "add_in": In(stream.Signature(data.ArrayLayout(signed(s.add_bits), lanes))),
            "sum_out": Out(stream.Signature(data.ArrayLayout(signed(s.sum_bits), lanes))),
            "norm_in": In(stream.Signature(data.ArrayLayout(signed(s.state_bits), lanes))),
            "codes_out": Out(stream.Signature(data.ArrayLayout(unsigned(s.code_bits), lanes))),
            "threshold_addr": Out(range(s.threshold_words)),
            "thresholds": In(data.ArrayLayout(data.ArrayLayout(signed(s.threshold_bits), s.levels), lanes)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        s = self.shape
        lanes = s.lanes
        m.submodules.states = states = Memory(shape=data.ArrayLayout(signed(s.state_bits), lanes), depth=s.words,
                                              init=[])
        write, read = states.write_port(), states.read_port()

        # -- add: the stored state plus the product's beat -----------------------------------------
        add = _Position(s, self.length, "add")
        add_take = Signal()
        add_valid = Signal(ADD_STAGES)  # [0]: the read data; [1] the sums
        addend = Signal.like(self.add_in.payload)
        add_real, embedding = Signal(lanes), Signal()
        sums = Signal.like(self.sum_out.payload)
        m.d.comb += read.addr.eq(add.word)
        m.d.sync += [add_valid.eq(Cat(add_take, add_valid[:-1])), addend.eq(self.add_in.payload),
                     add_real.eq(add.real()), embedding.eq(self.embed)]
        for lane in range(lanes):
            stored = Mux(embedding, 0, read.data[lane])
            m.d.sync += sums[lane].eq(Mux(add_real[lane], stored + addend[lane], 0))
        add_room, add_fifo = credited_output(m, self.sum_out, add_valid, sums.as_value(), "add_fifo")
        m.d.comb += [self.add_in.ready.eq(add_room), add_take.eq(self.add_in.valid & add_room)]
        with m.If(add_take):
            m.d.sync += add.advance()

        # -- norm: store the LayerNorm's beat, and its codes through the thresholds ------------------
        norm = _Position(s, self.length, "norm")
        norm_take = Signal()
        norm_valid = Signal(NORM_STAGES)  # [0]: the threshold address; [1] the thresholds; [2] the codes
        states_in = [Signal.like(self.norm_in.payload, name=f"norm_states_{i}") for i in range(2)]
        norm_real = [Signal(lanes, name=f"norm_real_{i}") for i in range(2)]
        codes = Signal.like(self.codes_out.payload)
        m.d.comb += [write.addr.eq(norm.word), write.data.eq(self.norm_in.payload), write.en.eq(norm_take)]
        m.d.sync += [norm_valid.eq(Cat(norm_take, norm_valid[:-1])), states_in[0].eq(self.norm_in.payload),
                     states_in[1].eq(states_in[0]), norm_real[0].eq(norm.real()), norm_real[1].eq(norm_real[0])]
        with m.If(norm_take):
            m.d.sync += self.threshold_addr.eq(self.threshold_base + norm.beat)
        for lane in range(lanes):
            hits = Cat(states_in[1][lane] >= self.thresholds[lane][level] for level in range(s.levels))
            count = popcount(m, hits, f"code_{lane}")
            code = count if s.codes.bipolar else (count + s.codes.low)[:s.code_bits]
            m.d.sync += codes[lane].eq(Mux(norm_real[1][lane], code, 0))
        norm_room, norm_fifo = credited_output(m, self.codes_out, norm_valid, codes.as_value(), "norm_fifo")
        m.d.comb += [self.norm_in.ready.eq(norm_room), norm_take.eq(self.norm_in.valid & norm_room)]
        with m.If(norm_take):
            m.d.sync += norm.advance()

        m.d.comb += self.busy.eq((add.word != 0) | (norm.word != 0) | add_valid.any() | norm_valid.any()
                                 | add_fifo.r_rdy | norm_fifo.r_rdy)
        return m


# ---- the resource model ---------------------------------------------------------------------------
LUT_COEFFICIENTS = coefficients("residual_stream")


def residual_features(shape: ResidualShape) -> dict[str, float]:
    """LUT structure counts: per lane the residual adder and its masks, the threshold comparators
    (one per level) and the code count; the counters, address adder and control."""
    s = shape
    return {"add_bits": s.lanes * s.sum_bits, "compare_bits": s.lanes * s.levels * s.threshold_bits,
            "control": 1.0}


def residual_resources(shape: ResidualShape) -> Resources:
    """LUTs from the features; flip-flops: each path's pipeline registers and counters; the state
    RAM (read and written at their own addresses) and both FIFOs in distributed or block RAM."""
    s = shape
    counters = 2 * ((s.beats - 1).bit_length() + (s.tokens - 1).bit_length() + (s.words - 1).bit_length())
    ff = (s.lanes * (s.add_bits + s.sum_bits + 1) + ADD_STAGES + 1  # the addend, the sums, the masks, embed
          + s.lanes * (2 * s.state_bits + 2 + s.code_bits) + NORM_STAGES + (s.threshold_words - 1).bit_length()
          + counters)
    return (row_buffer(s.lanes * s.state_bits, s.words, shared_address=False)
            + fifo_resources(s.lanes * s.sum_bits, ADD_STAGES) + fifo_resources(s.lanes * s.code_bits, NORM_STAGES)
            + Resources(lut=linear_cost(LUT_COEFFICIENTS, residual_features(s)), ff=ff))
