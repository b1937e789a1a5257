"""Rows of up to ``tokens`` values carried L (``lanes``) a beat, as the softmax and attention units
stream them: the beat counts their cycle models use, and the beat counter their RTL shares.

``LaneRows`` is a mixin for a frozen shape dataclass with ``tokens`` and ``lanes`` fields.
``BeatCounter`` counts the beats of a row of ``length`` values: which beat is the row's last,
and which lanes of the current beat hold values (the rest are padding).
"""

from __future__ import annotations

from amaranth import Cat, Signal

from ..resources import ceil_div


class LaneRows:
    tokens: int
    lanes: int

    @property
    def beats(self) -> int:
        """Beats of the longest row (a row buffer's depth)."""
        return ceil_div(self.tokens, self.lanes)

    def row_beats(self, length: int) -> int:
        return ceil_div(length, self.lanes)


class BeatCounter:
    """``beat`` and ``position`` (of the beat's first value) with ``advance`` and ``restart``
    statements; ``last``: this beat ends the row; ``real``: one bit per lane holding a value."""

    def __init__(self, shape: LaneRows, length, name: str = "beat"):
        self.lanes = shape.lanes
        self.beat = Signal(range(shape.beats + 1), name=name)
        self.position = Signal(range(shape.beats * shape.lanes + 1), name=f"{name}_position")
        self.last = self.position + shape.lanes >= length
        self.real = Cat(self.position + lane < length for lane in range(shape.lanes))

    def advance(self) -> list:
        return [self.beat.eq(self.beat + 1), self.position.eq(self.position + self.lanes)]

    def restart(self) -> list:
        return [self.beat.eq(0), self.position.eq(0)]
