"""The encoder's sequencer: which step the PE array runs next, and when its input row is ready.

It walks every member's steps in the schedule's order (``hw.schedule.member_order``: per layer
key_value(t) for every token, query(0), then for each token t attention_output(t), query(t + 1),
ffn(t - 1); after the last layer the head) and offers each on ``step`` once the row it reads is
there, as a scoreboard of ready flags says:

* a flag per token of the codes store, set by ``codes_written`` (with ``codes_row``: the row store's
  ``written`` pulse) and cleared when query(t) or ffn(t) is taken, since the row is rewritten next
  (FFN-in codes after the attention, the next layer's input after the FFN); key_value(t) and
  query(t) read the layer's input codes, ffn(t) the FFN-in codes;
* a flag for the context store, set by ``context_written`` and cleared by attention_output(t);
* the head waits for every token's flag (the member's last LayerNorm row is through), then clears
  them all for the next member's embeddings.

``start`` (with ``length``, the sentence's tokens, held while it runs) begins with member 0; ``busy`` falls once the last
member's head is taken. Every state and flag is a register; ``step.valid`` is a function of them
only, so a step is offered the cycle after the event it waits for, and taken the cycle the engine
is ready.

Resource model (``sequencer_resources``): its registers counted; LUTs linear in the scoreboard's
token bits (each flag's set and clear decode, the sentence-length compare that masks it, the ready
flag's select) and a constant for the phase logic, fitted on Yosys (scripts/block_check.py).
"""

from __future__ import annotations

from amaranth import Cat, Module, Signal
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from ..resources import Resources, coefficients, linear_cost


class StepKind(enum.Enum, shape=3):
    KEY_VALUE = 0
    QUERY = 1
    ATTENTION_OUTPUT = 2
    FFN = 3
    HEAD = 4


def step_layout(members: int, layers: int, tokens: int) -> data.StructLayout:
    return data.StructLayout({"kind": StepKind, "member": range(max(members, 2)), "layer": range(max(layers, 2)),
                              "token": range(max(tokens, 2))})


class EncoderSequencer(wiring.Component):
    def __init__(self, members: int, layers: int, tokens: int):
        if members < 1 or layers < 1 or tokens < 1:
            raise ValueError(f"a sequencer needs a member, a layer and a token, not {members}, {layers}, {tokens}")
        self.members, self.layers, self.tokens = members, layers, tokens
        super().__init__({
            "start": In(1),
            "length": In(range(1, tokens + 1)),
            "busy": Out(1),
            "step": Out(stream.Signature(step_layout(members, layers, tokens))),
            "codes_written": In(1),
            "codes_row": In(range(max(tokens, 2))),
            "context_written": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        n = self.length
        member = Signal.like(self.step.payload.member)
        layer = Signal.like(self.step.payload.layer)
        t = Signal(range(self.tokens + 1))  # the loop's token; the step's own token follows from the phase
        codes_ready = Signal(self.tokens)
        context_ready = Signal()

        class Phase(enum.Enum, shape=3):
            KEY_VALUE = 0
            FIRST_QUERY = 1
            ATTENTION_OUTPUT = 2  # attention_output(t)
            QUERY = 3  # query(t + 1)
            FFN = 4  # ffn(t - 1)
            HEAD = 5

        phase = Signal(Phase)
        token = Signal.like(self.step.payload.token)
        kind = Signal(StepKind)
        ready = Signal()
        all_codes = Signal()
        m.d.comb += all_codes.eq((codes_ready | Cat(i >= n for i in range(self.tokens))).all())  # tokens past the sentence
        token_codes = codes_ready.bit_select(token, 1)
        with m.Switch(phase):
            for phase_name, step_kind, step_token, row_ready in (  # what each phase offers, and what it waits for
                    ("KEY_VALUE", StepKind.KEY_VALUE, t, token_codes), ("FIRST_QUERY", StepKind.QUERY, 0, token_codes),
                    ("ATTENTION_OUTPUT", StepKind.ATTENTION_OUTPUT, t, context_ready),
                    ("QUERY", StepKind.QUERY, t + 1, token_codes), ("FFN", StepKind.FFN, t - 1, token_codes),
                    ("HEAD", StepKind.HEAD, 0, all_codes)):
                with m.Case(Phase[phase_name]):
                    m.d.comb += [kind.eq(step_kind), token.eq(step_token), ready.eq(row_ready)]
        m.d.comb += [self.step.valid.eq(self.busy & ready),
                     self.step.payload.kind.eq(kind), self.step.payload.member.eq(member),
                     self.step.payload.layer.eq(layer), self.step.payload.token.eq(token)]

        def go(next_phase, next_t):
            m.d.sync += [phase.eq(next_phase), t.eq(next_t)]

        def end_of_layer():
            with m.If(layer == self.layers - 1):
                m.d.sync += layer.eq(0)  # the head's step names layer 0
                go(Phase.HEAD, 0)
            with m.Else():
                m.d.sync += layer.eq(layer + 1)
                go(Phase.KEY_VALUE, 0)

        with m.If(self.step.valid & self.step.ready):
            with m.Switch(phase):
                with m.Case(Phase.KEY_VALUE):
                    with m.If(t == n - 1):
                        go(Phase.FIRST_QUERY, 0)
                    with m.Else():
                        go(Phase.KEY_VALUE, t + 1)
                with m.Case(Phase.FIRST_QUERY):
                    go(Phase.ATTENTION_OUTPUT, 0)
                with m.Case(Phase.ATTENTION_OUTPUT):
                    with m.If(t + 1 < n):
                        go(Phase.QUERY, t)
                    with m.Elif(t >= 1):
                        go(Phase.FFN, t)
                    with m.Else():  # one token: its FFN comes in the loop's last round
                        go(Phase.FFN, 1)
                with m.Case(Phase.QUERY):
                    with m.If(t >= 1):
                        go(Phase.FFN, t)
                    with m.Else():
                        go(Phase.ATTENTION_OUTPUT, t + 1)
                with m.Case(Phase.FFN):
                    with m.If(t == n):
                        end_of_layer()
                    with m.Elif(t + 1 < n):
                        go(Phase.ATTENTION_OUTPUT, t + 1)
                    with m.Else():
                        go(Phase.FFN, t + 1)
                with m.Case(Phase.HEAD):
                    go(Phase.KEY_VALUE, 0)
                    with m.If(member == self.members - 1):
                        m.d.sync += self.busy.eq(0)
                    with m.Else():
                        m.d.sync += member.eq(member + 1)

        # the scoreboard: a take clears the row it read (when it is rewritten next), an event sets it
        taken = self.step.valid & self.step.ready
        clears_codes = taken & ((kind == StepKind.QUERY) | (kind == StepKind.FFN))
        codes_next = Signal.like(codes_ready)
        m.d.comb += codes_next.eq(codes_ready & ~(clears_codes << token)[:self.tokens])
        with m.If(taken & (kind == StepKind.HEAD)):
            m.d.comb += codes_next.eq(0)
        m.d.sync += codes_ready.eq(codes_next | (self.codes_written << self.codes_row)[:self.tokens])
        with m.If(taken & (kind == StepKind.ATTENTION_OUTPUT)):
            m.d.sync += context_ready.eq(0)
        with m.If(self.context_written):
            m.d.sync += context_ready.eq(1)

        with m.If(self.start & ~self.busy):
            m.d.sync += [self.busy.eq(1), member.eq(0), layer.eq(0), phase.eq(Phase.KEY_VALUE), t.eq(0),
                         codes_ready.eq(0), context_ready.eq(0)]
        return m


# ---- the resource model ---------------------------------------------------------------------------
LUT_COEFFICIENTS = coefficients("sequencer")


def _bits(count: int) -> int:
    """Bits of a signal of ``range(count)``, at least one."""
    return max(1, (count - 1).bit_length())


def sequencer_features(members: int, layers: int, tokens: int) -> dict[str, float]:
    """LUT structure counts: per token of the scoreboard its flag's logic, each a compare of a
    token's bits (``flag_bits``); the counters' increments and compares (``counter_bits``); the rest."""
    token_bits = _bits(tokens + 1)
    return {"flag_bits": tokens * token_bits,
            "counter_bits": _bits(max(members, 2)) + _bits(max(layers, 2)) + token_bits, "control": 1.0}


def sequencer_resources(members: int, layers: int, tokens: int) -> Resources:
    """LUTs from the features; flip-flops: the member, layer and token counters, a ready flag per
    token and the context's, the phase and ``busy``."""
    ff = _bits(max(members, 2)) + _bits(max(layers, 2)) + _bits(tokens + 1) + tokens + 1 + 3 + 1
    return Resources(lut=linear_cost(LUT_COEFFICIENTS, sequencer_features(members, layers, tokens)), ff=ff)
