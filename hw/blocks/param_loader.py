"""The parameter loader: streamed parameters, a layer at a time, into two layer slots.

A sentence's parameters arrive on ``stream`` (``width`` bits a beat) as parameter units in the order
the PE array uses them: per member, each layer, the head with the last (plan.py, ``param_units``). A unit's
beats are its weight words, then its threshold words, then its affine words, each word in chunks of
``width`` bits, least significant first (generator/param_stream.py writes them). Each beat is
written into its memory's slot as one chunk of one word, one cycle after it is taken (``write``:
memory, word, slot, chunk, data, all registers).

Units fill the two slots in turn. The loader takes beats while a slot is free: ``filled`` counts the
units loaded and not yet released (0 to 2), ``loaded`` (``filled`` > 0) tells the controller that the
unit it runs next is there, and ``release`` (a pulse from the controller, once the unit's last step
has read its last word) frees its slot. ``start`` begins a sentence: slot 0, no unit filled; after
the sentence's last unit the loader takes nothing until the next ``start``.

Cycle model: a unit's first beat is taken the cycle after its slot is free (``release`` seen, or
the sentence started) and the beat before it was taken; its last beat taken at cycle c, ``loaded``
rises at c + 1 (``LOADED_LATENCY``).

Resource model (``loader_resources``): the write registers and the state counted; LUTs linear in the
counters' bits, fitted on Yosys.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from amaranth import Array, Const, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..design.plan import MEMORIES, AcceleratorPlan
from ..resources import Resources, coefficients, linear_cost

LOADED_LATENCY = 1  # a unit's last beat taken to ``loaded`` seen
RELEASE_TO_BEAT = 1  # ``release`` seen to the first beat of the next unit taken (its slot free)


@dataclass(frozen=True)
class LoaderShape:
    """``segments``: per unit kind (0: a layer, 1: the last layer with the head) its memories'
    (memory index, words, chunks a word) in stream order, memories without words left out."""

    width: int
    members: int
    layers: int
    segments: tuple[tuple[tuple[int, int, int], ...], tuple[tuple[int, int, int], ...]]
    memories: int

    def __post_init__(self):
        if self.width < 1 or self.members < 1 or self.layers < 1:
            raise ValueError(f"a loader needs a width, a member and a layer, not {self}")
        if not all(self.segments):
            raise ValueError("every parameter unit has words to load")

    @property
    def most_words(self) -> int:
        return max(words for unit in self.segments for _, words, _ in unit)

    @property
    def most_chunks(self) -> int:
        return max(chunks for unit in self.segments for _, _, chunks in unit)

    def unit_beats(self, last: bool) -> int:
        return sum(words * chunks for _, words, chunks in self.segments[last])


def loader_shape(plan: AcceleratorPlan) -> LoaderShape:
    """The loader of a streamed plan (plan.py)."""
    width = plan.config.param_width
    layer, last = plan.param_units[0].name, plan.param_units[-1].name

    def segments(unit):
        return tuple((i, plan.unit_words[unit][name], math.ceil(plan.memory_shapes[name][1] / width))
                     for i, name in enumerate(MEMORIES) if plan.unit_words[unit][name])

    if any(plan.unit_words[u.name] != plan.unit_words[layer] for u in plan.param_units[:-1]):
        raise ValueError("the loader takes layers of one shape")
    return LoaderShape(width, plan.ensemble_members, len(plan.param_units), (segments(layer), segments(last)),
                       len(MEMORIES))


def write_layout(shape: LoaderShape) -> data.StructLayout:
    return data.StructLayout({"valid": 1, "memory": range(max(shape.memories, 2)), "word": range(shape.most_words),
                              "slot": 1, "chunk": range(max(shape.most_chunks, 2)), "data": shape.width})


class ParamLoader(wiring.Component):
    def __init__(self, shape: LoaderShape):
        self.shape = shape
        super().__init__({
            "start": In(1),
            "release": In(1),
            "loaded": Out(1),
            "stream": In(stream.Signature(shape.width)),
            "write": Out(write_layout(shape)),
        })

    def elaborate(self, platform):
        m = Module()
        shape = self.shape
        active = Signal()
        member = Signal(range(max(shape.members, 2)))
        unit = Signal(range(shape.layers))  # the layer within the member
        segment = Signal(range(max(len(s) for s in shape.segments) + 1))
        word = Signal.like(self.write.word)
        chunk = Signal.like(self.write.chunk)
        slot = Signal()
        filled = Signal(range(3))

        last = Signal()  # the member's last layer, with the head
        m.d.comb += last.eq(unit == shape.layers - 1)

        def table(column: int, bits) -> Signal:  # segment field ``column`` of the unit (``last``), ``segment``
            rows = [[Const(s[column], bits) for s in unit_segments] + [Const(0, bits)] * (3 - len(unit_segments))
                    for unit_segments in shape.segments]
            out = Signal(bits)
            m.d.comb += out.eq(Array(Array(row) for row in rows)[last][segment])
            return out

        memory = table(0, self.write.memory.shape())
        words = table(1, range(shape.most_words + 1))
        chunks = table(2, range(shape.most_chunks + 1))
        segments = Signal(range(4))
        m.d.comb += segments.eq(Array(Const(len(s), 3) for s in shape.segments)[last])

        # a unit being released is no longer there: the controller may not take its successor's step
        # on the strength of it (the release and ``filled`` are both registers)
        m.d.comb += [self.stream.ready.eq(active & (filled != 2)), self.loaded.eq(filled > self.release)]
        take = self.stream.valid & self.stream.ready
        m.d.sync += self.write.valid.eq(take)
        unit_done = Signal()
        with m.If(take):
            m.d.sync += [self.write.memory.eq(memory), self.write.word.eq(word), self.write.slot.eq(slot),
                         self.write.chunk.eq(chunk), self.write.data.eq(self.stream.payload),
                         chunk.eq(chunk + 1)]
            with m.If(chunk == chunks - 1):
                m.d.sync += [chunk.eq(0), word.eq(word + 1)]
                with m.If(word == words - 1):
                    m.d.sync += [word.eq(0), segment.eq(segment + 1)]
                    with m.If(segment == segments - 1):
                        m.d.comb += unit_done.eq(1)
                        m.d.sync += [segment.eq(0), slot.eq(~slot), unit.eq(unit + 1)]
                        with m.If(last):
                            m.d.sync += [unit.eq(0), member.eq(member + 1)]
                            with m.If(member == shape.members - 1):
                                m.d.sync += active.eq(0)
        m.d.sync += filled.eq(filled + unit_done - self.release)

        with m.If(self.start):
            m.d.sync += [active.eq(1), member.eq(0), unit.eq(0), segment.eq(0), word.eq(0), chunk.eq(0),
                         slot.eq(0), filled.eq(0)]
        return m


# ---- the resource model ---------------------------------------------------------------------------
def _bits(count: int) -> int:
    return max(1, (count - 1).bit_length())


# LUTs linear in the counters' bits (each bit's increment, wrap and end compare, the segment tables
# they index), fitted on Yosys' synth_xilinx of eight streamed encoder designs (the tiny and the
# built-in model, PE 8 and 16, 32- and 512-bit streams: 40 to 74 LUTs, within 5 of the fit).
LUT_COEFFICIENTS = coefficients("param_loader")


def loader_features(shape: LoaderShape) -> dict[str, float]:
    counters = (_bits(max(shape.members, 2)) + _bits(shape.layers) + 2 + _bits(shape.most_words)
                + _bits(max(shape.most_chunks, 2)))
    return {"counter_bits": counters, "control": 1.0}


def loader_resources(shape: LoaderShape) -> Resources:
    """Flip-flops: the write registers (data, memory, word, slot, chunk, valid) and the state (active,
    member, unit, segment, word, chunk, slot, filled). LUTs: ``LUT_COEFFICIENTS`` on the counters."""
    features = loader_features(shape)
    write = shape.width + _bits(max(shape.memories, 2)) + _bits(shape.most_words) + 1 + _bits(max(shape.most_chunks, 2)) + 1
    return Resources(lut=linear_cost(LUT_COEFFICIENTS, features), ff=write + int(features["counter_bits"]) + 4)
