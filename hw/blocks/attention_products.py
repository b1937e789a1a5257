"""The attention's two products on chip (docs/datapath.md, "Attention"), bit for bit as
``bebert.sim.execute.product`` on one head:

* ``ScoreUnit``: a query's head slice of codes in, its row of scores out (one per key, L keys per
  beat: the softmax unit's ``row_in``), scores[j] = sum_d q[d] k[j, d];
* ``ContextUnit``: the softmax's probability row in (L keys per beat), the head's context
  accumulators out in one beat, context[d] = sum_j p[j] v[j, d].

Each unit holds the layer's keys (or values) as L banks of head slices, token t in bank t mod L at
word (t div L) x heads + head, written one head slice a cycle through ``write`` while the layer's
K (or V) rows come out of the PE array. Rows are taken head by head (0 to heads - 1), query after
query; a head counter follows, and the sentence's ``length`` is held by the controller. Codes are
stored as the accelerator streams them: two's complement (or unsigned) low bits, or one bit for a
bipolar +-1 (1 for +1); products of two bipolar codes are XNORs.

Both units read L banks a cycle and multiply L x head_size code pairs a cycle (small products in
LUTs), through registered stages into an output FIFO on credit (credited_output.py); every output
is a register. Cycle models (``AttentionShape``): a score row takes 1 + ceil(n / L) cycles (the
query taken, then a beat a cycle), a context row ceil(n / L) (a probability beat a cycle); each
unit's output leaves a fixed latency after its last issue. Cycles waiting on a stream are not
counted.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from bebert.sim.program import Codes

from .compressor import adder_tree
from .credited_output import credited_output, fifo_resources
from .lane_rows import BeatCounter, LaneRows
from ..resources import Resources, ceil_div, coefficients, linear_cost, row_buffer

GROUP = 8  # products summed in one registered stage before the final sum
SCORE_STAGES = 3  # the read data, the group sums, the score
SCORE_LATENCY = SCORE_STAGES + 2  # a key beat's read to its scores on row_out: the stages, the FIFO's two
CONTEXT_STAGES = 3  # the read data with its probabilities, the beat's sums, the accumulators
CONTEXT_LATENCY = CONTEXT_STAGES + 2  # a row's last probability beat taken to its context on row_out


def stored_bits(codes: Codes) -> int:
    return 1 if codes.bipolar else codes.bits


@dataclass(frozen=True)
class AttentionShape(LaneRows):
    """The units' sizes: the longest sentence, the heads and their size, L (keys per beat) and the
    four code formats; every width follows."""

    tokens: int
    heads: int
    head_size: int
    lanes: int
    query: Codes
    key: Codes
    probs: Codes
    value: Codes

    def __post_init__(self):
        if not 1 <= self.lanes <= self.tokens or self.lanes & (self.lanes - 1):
            # a power of two, so that a token's bank is its low bits and its word the rest
            raise ValueError(f"attention lanes must be a power of two from 1 to the longest sentence {self.tokens}, "
                             f"not {self.lanes}")
        if self.heads < 1 or self.head_size < 1 or self.probs.signed or self.probs.bipolar:
            raise ValueError(f"attention products cannot be built for {self}")

    @property
    def words(self) -> int:  # per bank
        return self.beats * self.heads

    @property
    def score_bits(self) -> int:
        return _signed_bits(self.head_size * self.query.largest * self.key.largest)

    @property
    def context_bits(self) -> int:
        return _signed_bits(self.tokens * self.probs.largest * self.value.largest)

    def score_row_cycles(self, length: int) -> int:
        """From taking a query to taking the next (no stream waits)."""
        return 1 + self.row_beats(length)

    def context_row_cycles(self, length: int) -> int:
        return self.row_beats(length)

    def score_rows_cycles(self, rows: int, length: int) -> int:
        """From the first query taken to the last score beat out, rows back to back."""
        return rows * self.score_row_cycles(length) + SCORE_LATENCY

    def context_rows_cycles(self, rows: int, length: int) -> int:
        """From the first probability beat taken to the last context beat out, rows back to back."""
        return rows * self.context_row_cycles(length) + CONTEXT_LATENCY


def _signed_bits(bound: int) -> int:
    return bound.bit_length() + 1


def code_value(bits, codes: Codes):
    """The signed value of one stored code."""
    if codes.bipolar:
        return Mux(bits[0], 1, -1)
    return bits.as_signed() if codes.signed else bits.as_unsigned()


def code_product(a, a_codes: Codes, b, b_codes: Codes):
    """a x b of two stored codes; two bipolar codes multiply as an XNOR (+1 where they agree)."""
    if a_codes.bipolar and b_codes.bipolar:
        return Mux(a[0] ^ b[0], -1, 1)
    return code_value(a, a_codes) * code_value(b, b_codes)


def _write_signature(shape: AttentionShape, codes: Codes) -> wiring.Signature:
    return wiring.Signature({"en": Out(1), "token": Out(range(shape.tokens)), "head": Out(range(shape.heads)),
                             "codes": Out(shape.head_size * stored_bits(codes))})


def _banks(m: Module, shape: AttentionShape, codes: Codes, write, name: str):
    """L banks of head slices with the write port decoded; returns their read ports."""
    bits = shape.head_size * stored_bits(codes)
    lane_bits = shape.lanes.bit_length() - 1
    lane = write.token[:lane_bits] if lane_bits else 0
    address = (write.token >> lane_bits) * shape.heads + write.head
    reads = []
    for bank in range(shape.lanes):
        memory = Memory(shape=unsigned(bits), depth=shape.words, init=[])
        m.submodules[f"{name}{bank}"] = memory
        port = memory.write_port()
        m.d.comb += [port.en.eq(write.en & (lane == bank)), port.addr.eq(address), port.data.eq(write.codes)]
        reads.append(memory.read_port())
    return reads


class _Rows(BeatCounter):
    """The beat counter over a row of keys, the head counter over rows, and the banks' read address."""

    def __init__(self, shape: AttentionShape, length):
        super().__init__(shape, length)
        self.heads = shape.heads
        self.head = Signal(range(shape.heads))
        self.address = Mux(self.beat < shape.beats, self.beat, 0) * shape.heads + self.head

    def next_row(self):
        return self.restart() + [self.head.eq(Mux(self.head == self.heads - 1, 0, self.head + 1))]


class ScoreUnit(wiring.Component):
    def __init__(self, shape: AttentionShape):
        self.shape = s = shape
        super().__init__({
            "write": In(_write_signature(s, s.key)),
            "length": In(range(1, s.tokens + 1)),
            "query_in": In(stream.Signature(unsigned(s.head_size * stored_bits(s.query)))),
            "row_out": Out(stream.Signature(data.ArrayLayout(signed(s.score_bits), s.lanes))),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        s = self.shape
        q_bits, k_bits = stored_bits(s.query), stored_bits(s.key)
        reads = _banks(m, s, s.key, self.write, "keys")
        rows = _Rows(s, self.length)
        for port in reads:
            m.d.comb += port.addr.eq(rows.address)

        query = Signal(s.head_size * q_bits)
        issue = Signal()
        stage_valid = Signal(SCORE_STAGES)  # [0]: the read data; [1] the group sums; [2] the scores
        real = [Signal(s.lanes, name=f"real_{i}") for i in range(2)]
        m.d.sync += [stage_valid.eq(Cat(issue, stage_valid[:-1])), real[0].eq(rows.real), real[1].eq(real[0])]
        groups = [[Signal(signed(s.score_bits), name=f"group_{lane}_{g}") for g in range(ceil_div(s.head_size, GROUP))]
                  for lane in range(s.lanes)]
        scores = Signal(data.ArrayLayout(signed(s.score_bits), s.lanes))
        for lane, port in enumerate(reads):
            products = [code_product(query[d * q_bits:(d + 1) * q_bits], s.query,
                                     port.data[d * k_bits:(d + 1) * k_bits], s.key) for d in range(s.head_size)]
            for g, group in enumerate(groups[lane]):
                m.d.sync += group.eq(adder_tree(products[g * GROUP:(g + 1) * GROUP]))
            m.d.sync += scores[lane].eq(Mux(real[1][lane], adder_tree(groups[lane]), 0))
        room, fifo = credited_output(m, self.row_out, stage_valid, scores.as_value())

        with m.FSM(name="scores"):
            with m.State("QUERY"):
                m.d.comb += self.query_in.ready.eq(1)
                with m.If(self.query_in.valid):
                    m.d.sync += query.eq(self.query_in.payload)
                    m.next = "KEYS"
            with m.State("KEYS"):
                with m.If(room):
                    m.d.comb += issue.eq(1)
                    m.d.sync += rows.advance()
                    with m.If(rows.last):
                        m.d.sync += rows.next_row()
                        m.next = "QUERY"
        m.d.comb += self.busy.eq(~self.query_in.ready | stage_valid.any() | fifo.r_rdy)
        return m


class ContextUnit(wiring.Component):
    def __init__(self, shape: AttentionShape):
        self.shape = s = shape
        super().__init__({
            "write": In(_write_signature(s, s.value)),
            "length": In(range(1, s.tokens + 1)),
            "row_in": In(stream.Signature(data.ArrayLayout(unsigned(s.probs.bits), s.lanes))),
            "row_out": Out(stream.Signature(data.ArrayLayout(signed(s.context_bits), s.head_size))),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        s = self.shape
        v_bits = stored_bits(s.value)
        reads = _banks(m, s, s.value, self.write, "values")
        rows = _Rows(s, self.length)
        for port in reads:
            m.d.comb += port.addr.eq(rows.address)

        take = Signal()
        # stage valid bits: [0] the read data; [1] the beat's sums; [2] the accumulators. Only a row's
        # last beat makes an output, so the FIFO's credit counts last beats (``ends``).
        stage_valid, ends = Signal(CONTEXT_STAGES), Signal(CONTEXT_STAGES)
        first = Signal(CONTEXT_STAGES)
        m.d.sync += [stage_valid.eq(Cat(take, stage_valid[:-1])), ends.eq(Cat(take & rows.last, ends[:-1])),
                     first.eq(Cat(take & (rows.beat == 0), first[:-1]))]
        probs = Signal(data.ArrayLayout(unsigned(s.probs.bits), s.lanes))  # masked past the row's length
        m.d.sync += probs.eq(Cat(Mux(rows.real[lane], self.row_in.payload[lane], 0) for lane in range(s.lanes)))
        sums = Signal(data.ArrayLayout(signed(s.context_bits), s.head_size))
        context = Signal(data.ArrayLayout(signed(s.context_bits), s.head_size))
        for d in range(s.head_size):
            products = [code_product(probs[lane], s.probs, reads[lane].data[d * v_bits:(d + 1) * v_bits], s.value)
                        for lane in range(s.lanes)]
            m.d.sync += sums[d].eq(adder_tree(products))
        with m.If(stage_valid[1]):
            m.d.sync += [context[d].eq(Mux(first[1], sums[d], context[d] + sums[d])) for d in range(s.head_size)]
        room, fifo = credited_output(m, self.row_out, ends, context.as_value())

        m.d.comb += self.row_in.ready.eq(~rows.last | room)  # a row's last beat waits for room for its output
        with m.If(self.row_in.valid & self.row_in.ready):
            m.d.comb += take.eq(1)
            m.d.sync += rows.advance()
            with m.If(rows.last):
                m.d.sync += rows.next_row()
        m.d.comb += self.busy.eq((rows.beat != 0) | stage_valid.any() | fifo.r_rdy)
        return m


# ---- the resource models ---------------------------------------------------------------------------
SCORE_LUT_COEFFICIENTS = coefficients("attention_scores")
CONTEXT_LUT_COEFFICIENTS = coefficients("attention_context")


def product_width(a: Codes, b: Codes) -> int:
    """A code pair's product in partial-product bits: an XNOR for two bipolar codes, a conditional
    negation for one, a bits x bits array otherwise."""
    if a.bipolar and b.bipolar:
        return 1
    if a.bipolar or b.bipolar:
        return (b if a.bipolar else a).bits
    return a.bits * b.bits


def score_features(shape: AttentionShape) -> dict[str, float]:
    """LUT structure counts of the score unit: the L x head_size products, the adder trees' bits
    (groups and the final sum), the control (counters, FSM, write decode)."""
    s = shape
    return {"product_bits": s.lanes * s.head_size * product_width(s.query, s.key),
            "sum_bits": s.lanes * s.head_size * s.score_bits, "control": 1.0}


def context_features(shape: AttentionShape) -> dict[str, float]:
    """LUT structure counts of the context unit: the head_size x L products, the beat's adder trees
    and the accumulators, the control."""
    s = shape
    return {"product_bits": s.lanes * s.head_size * product_width(s.probs, s.value),
            "sum_bits": s.head_size * (s.lanes + 1) * s.context_bits, "control": 1.0}


def _banks_resources(shape: AttentionShape, codes: Codes) -> Resources:
    bank = row_buffer(shape.head_size * stored_bits(codes), shape.words, shared_address=False)
    return bank * shape.lanes


def _counters_ff(shape: AttentionShape) -> int:
    s = shape
    return ((s.beats + 1).bit_length() + (s.beats * s.lanes + 1).bit_length() + max(1, (s.heads - 1).bit_length()))


def score_resources(shape: AttentionShape) -> Resources:
    """LUTs from the features; flip-flops: the query, the group and score registers, the lane masks'
    delays, the counters; the key banks and the FIFO in distributed or block RAM. No DSPs: the
    products are a few bits wide."""
    s = shape
    groups = ceil_div(s.head_size, GROUP)
    # a register's sign extension merges into its sign bit: a group sum holds the bits its bound needs
    group_bits = _signed_bits(min(GROUP, s.head_size) * s.query.largest * s.key.largest)
    ff = (s.head_size * stored_bits(s.query) + s.lanes * (groups * group_bits + s.score_bits) + 2 * s.lanes
          + SCORE_STAGES + _counters_ff(s) + 1)
    return (_banks_resources(s, s.key) + fifo_resources(s.lanes * s.score_bits, SCORE_STAGES)
            + Resources(lut=linear_cost(SCORE_LUT_COEFFICIENTS, score_features(s)), ff=ff))


def context_resources(shape: AttentionShape) -> Resources:
    """LUTs from the features; flip-flops: the masked probabilities, the beat's sums, the
    accumulators, the stage flags, the counters; the value banks and the FIFO."""
    s = shape
    beat_bits = _signed_bits(s.lanes * s.probs.largest * s.value.largest)  # a beat's sum, before accumulating
    ff = (s.lanes * s.probs.bits + s.head_size * (beat_bits + s.context_bits) + 3 * CONTEXT_STAGES + _counters_ff(s))
    return (_banks_resources(s, s.value) + fifo_resources(s.head_size * s.context_bits, CONTEXT_STAGES)
            + Resources(lut=linear_cost(CONTEXT_LUT_COEFFICIENTS, context_features(s)), ff=ff))
