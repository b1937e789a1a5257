"""The residual stream on chip: the sentence's hidden states in a RAM, the residual add into the
LayerNorm unit, and the quantizer from a LayerNorm's output into the next product's codes
(docs/datapath.md: "the residual adds", "A quantizer reading a fixed-point hidden state"), bit for
bit as ``x + y`` and ``Staircase.apply`` in ``bebert.sim.execute``.

Two paths, each a row of ``hidden`` values L (``lanes``) a beat, rows in any order of tokens:

* add: a product's fixed-point row on ``add_in`` (attention output or FFN out), plus its token's
  stored hidden state, out on ``sum_out`` (the LayerNorm unit's input). Each row needs its tag on
  ``add_row``, taken with its first beat: the token, ``embed`` (the row passes unchanged: an
  embedding sum, which has no residual), ``threshold_base``, the staircase its LayerNorm output
  will be quantized by, and ``norm_base``, the gain and bias words of that LayerNorm (out on
  ``norm_base`` while the row is the next the norm path takes, so during its LayerNorm's out pass);
* norm: a LayerNorm output row on ``norm_in`` (the LayerNorm unit keeps the add path's order) is
  stored as its token's hidden state and quantized by the staircase quantizer
  (staircase_quantizer.py), out on ``codes_out`` with its token (the codes store's row). The
  thresholds of channels [beat L, beat L + L) come from a parameter memory: ``threshold_addr``
  (the row's base + the beat) and ``thresholds`` one cycle after it; with ``shared``, one word a
  staircase (the row's base) for every channel.

The add path queues each row's token and base (up to TAGS_IN_FLIGHT rows between its add and its
norm). The paths share only the RAM (one read port for add, one write port for norm); each issues a
beat a cycle into an output FIFO on credit (credited_output.py), and every output is a register.
Cycle model (``ResidualShape``): each path takes ceil(hidden / L) cycles a row, rows back to back,
and a beat leaves a fixed latency after it is taken. Cycles waiting on a stream are not counted.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from bebert.sim.program import Codes

from .compressor import times_constant
from .credited_output import credited_output, fifo_resources
from .staircase_quantizer import (QUANTIZE_LATENCY, QUANTIZE_STAGES, QuantizerShape, StaircaseQuantizer,
                                  quantizer_fifo, quantizer_flip_flops)
from ..resources import Resources, ceil_div, coefficients, linear_cost, row_buffer

ADD_STAGES = 2  # the read data with the product's beat, the sum
ADD_LATENCY = ADD_STAGES + 2  # a beat taken to its sum on sum_out: the stages, the FIFO's two
NORM_STAGES = QUANTIZE_STAGES  # the threshold address, the thresholds with the beat, the codes
NORM_LATENCY = QUANTIZE_LATENCY
TAGS_IN_FLIGHT = 4  # rows added but not yet back from the LayerNorm (it holds one, its FIFO a few beats)


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
    norm_words: int = 1  # gain and bias words of the LayerNorms between the paths (the tag's norm_base)
    shared: bool = False  # every staircase one row for all channels (the quantizer's ``shared``)

    def __post_init__(self):
        if not 1 <= self.lanes <= self.hidden or self.tokens < 1:
            raise ValueError(f"residual stream lanes must be 1 to the hidden width {self.hidden}, not {self.lanes}")
        if (self.state_bits < 2 or self.add_bits < 2 or self.threshold_bits < 2
                or self.threshold_words < (1 if self.shared else self.beats)):
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

    @property
    def quantizer(self) -> QuantizerShape:
        return QuantizerShape(self.lanes, self.hidden, self.state_bits, self.threshold_bits, self.codes,
                              self.threshold_words, tag_bits=max(1, (self.tokens - 1).bit_length()),
                              shared=self.shared)

    def real(self, beat):
        """Which lanes of ``beat`` hold a channel (only a row's last beat has padding lanes)."""
        tail = self.hidden - (self.beats - 1) * self.lanes
        return Cat(Const(1) if lane < tail else beat != self.beats - 1 for lane in range(self.lanes))

    def rows_cycles(self, rows: int, path: str) -> int:
        """From a path's first beat taken to its last beat out, rows back to back (no stream waits)."""
        return rows * self.beats + (ADD_LATENCY if path == "add" else NORM_LATENCY)


class ResidualStream(wiring.Component):
    def __init__(self, shape: ResidualShape):
        self.shape = s = shape
        lanes = s.lanes
        super().__init__({
            "add_row": In(stream.Signature(data.StructLayout({
                "token": range(s.tokens), "embed": 1, "threshold_base": range(s.threshold_words),
                "norm_base": range(s.norm_words)}))),
            "add_in": In(stream.Signature(data.ArrayLayout(signed(s.add_bits), lanes))),
            "sum_out": Out(stream.Signature(data.ArrayLayout(signed(s.sum_bits), lanes))),
            "norm_in": In(stream.Signature(data.ArrayLayout(signed(s.state_bits), lanes))),
            "codes_out": Out(stream.Signature(s.quantizer.out_layout)),
            "threshold_addr": Out(range(s.threshold_words)),
            "thresholds": In(s.quantizer.threshold_layout),
            "norm_base": Out(range(s.norm_words)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        s = self.shape
        lanes = s.lanes
        m.submodules.states = states = Memory(shape=data.ArrayLayout(signed(s.state_bits), lanes), depth=s.words,
                                              init=[])
        write, read = states.write_port(), states.read_port()
        tag_layout = data.StructLayout({"token": range(s.tokens), "threshold_base": range(s.threshold_words),
                                        "norm_base": range(s.norm_words)})
        m.submodules.tags = tags = SyncFIFOBuffered(width=tag_layout.size, depth=TAGS_IN_FLIGHT)
        queued = data.View(tag_layout, tags.r_data)

        # -- add: the stored state plus the product's beat -----------------------------------------
        add_beat, add_token, add_embed = Signal(range(s.beats)), Signal(range(s.tokens)), Signal()
        first = add_beat == 0
        token = Mux(first, self.add_row.payload.token, add_token)
        embed = Mux(first, self.add_row.payload.embed, add_embed)
        add_take = Signal()
        add_valid = Signal(ADD_STAGES)  # [0]: the read data; [1] the sums
        addend = Signal.like(self.add_in.payload)
        add_real, embedding = Signal(lanes), Signal()
        sums = Signal.like(self.sum_out.payload)
        m.d.comb += read.addr.eq(times_constant(token, s.beats) + add_beat)
        m.d.sync += [add_valid.eq(Cat(add_take, add_valid[:-1])), addend.eq(self.add_in.payload),
                     add_real.eq(s.real(add_beat)), embedding.eq(embed)]
        for lane in range(lanes):
            stored = Mux(embedding, 0, read.data[lane])
            m.d.sync += sums[lane].eq(Mux(add_real[lane], stored + addend[lane], 0))
        add_room, add_fifo = credited_output(m, self.sum_out, add_valid, sums.as_value(), "add_fifo")
        tagged = ~first | (self.add_row.valid & tags.w_rdy)  # a row starts only with its tag, and room to queue it
        m.d.comb += [self.add_in.ready.eq(add_room & tagged), add_take.eq(self.add_in.valid & add_room & tagged),
                     self.add_row.ready.eq(add_take & first),
                     tags.w_en.eq(add_take & first),
                     tags.w_data.eq(Cat(self.add_row.payload.token, self.add_row.payload.threshold_base,
                                        self.add_row.payload.norm_base))]
        with m.If(add_take):
            m.d.sync += [add_beat.eq(Mux(add_beat == s.beats - 1, 0, add_beat + 1)), add_token.eq(token),
                         add_embed.eq(embed)]

        # -- norm: store the LayerNorm's beat, and its codes through the quantizer -------------------
        m.submodules.quantizer = quantizer = StaircaseQuantizer(s.quantizer)
        norm_beat = Signal(range(s.beats))
        norm_row_end = norm_beat == s.beats - 1
        norm_take = Signal()
        ready_row = (norm_beat != 0) | tags.r_rdy  # a row's tag is queued before its first beat
        m.d.comb += [quantizer.row_in.valid.eq(self.norm_in.valid & ready_row),
                     quantizer.row_in.payload.eq(self.norm_in.payload),
                     quantizer.base.eq(queued.threshold_base), quantizer.tag.eq(queued.token),
                     self.norm_in.ready.eq(quantizer.row_in.ready & ready_row),
                     norm_take.eq(self.norm_in.valid & quantizer.row_in.ready & ready_row),
                     tags.r_en.eq(norm_take & norm_row_end),
                     write.addr.eq(times_constant(queued.token, s.beats) + norm_beat),
                     write.data.eq(self.norm_in.payload), write.en.eq(norm_take),
                     self.threshold_addr.eq(quantizer.threshold_addr), quantizer.thresholds.eq(self.thresholds),
                     self.norm_base.eq(queued.norm_base)]
        wiring.connect(m, wiring.flipped(self.codes_out), quantizer.row_out)
        with m.If(norm_take):
            m.d.sync += norm_beat.eq(Mux(norm_row_end, 0, norm_beat + 1))

        m.d.comb += self.busy.eq((add_beat != 0) | (norm_beat != 0) | add_valid.any() | add_fifo.r_rdy | tags.r_rdy
                                 | quantizer.busy)
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
    """LUTs from the features; flip-flops: the add path's registers and counters, the quantizer's
    (staircase_quantizer.py) with its tags; the state RAM (read and written at their own addresses),
    both output FIFOs and the row tags' FIFO in distributed or block RAM."""
    s, q = shape, shape.quantizer
    token_bits = max(1, (s.tokens - 1).bit_length())
    base_bits = (s.threshold_words - 1).bit_length() + (s.norm_words - 1).bit_length()
    add_ff = (s.lanes * (s.add_bits + s.sum_bits + 1) + ADD_STAGES + 1  # the addend, the sums, the masks, embed
              + (s.beats - 1).bit_length() + token_bits + 1)  # the beat, the row's token and embed
    norm_ff = quantizer_flip_flops(q) + (NORM_STAGES + 1) * q.tag_bits + (s.beats - 1).bit_length()
    return (row_buffer(s.lanes * s.state_bits, s.words, shared_address=False)
            + fifo_resources(s.lanes * s.sum_bits, ADD_STAGES) + quantizer_fifo(q)
            + fifo_resources(token_bits + base_bits, TAGS_IN_FLIGHT - 3)
            + Resources(lut=linear_cost(LUT_COEFFICIENTS, residual_features(s)), ff=add_ff + norm_ff))
