"""valid/ready stream drivers for cocotb, with optional random stalls on either side.

A beat moves at a rising clock edge where valid and ready are both high. Both drivers decide in
the settled (ReadOnly) phase after an edge whether the next edge moves a beat. Without random
stalls they sleep until the other side raises its signal instead of waking every cycle, which
keeps long co-simulations fast.

Every value the testbench reads goes through ``resolved``: under a four-state simulator (Icarus) an
X or Z bit in a beat or a control signal fails the test with the signal's name; nothing turns X
into 0.
"""

from __future__ import annotations

import random

from cocotb.triggers import ReadOnly, RisingEdge


def resolved(signal) -> int:
    """The signal's value as an integer; fails the test, naming the signal, if any bit is X or Z."""
    value = signal.value
    if not value.is_resolvable:
        raise AssertionError(f"{signal._name} is {value}: X or Z bits where the testbench reads it")
    return int(value)


class StreamSource:
    def __init__(self, dut, name: str, clk, gap: float = 0.0, seed: int = 0):
        self.payload, self.valid, self.ready = (getattr(dut, f"{name}__{s}") for s in ("payload", "valid", "ready"))
        self.clk, self.gap, self.rng = clk, gap, random.Random(seed)
        self.valid.value = 0

    async def send(self, beats: list[int]) -> None:
        for beat in beats:
            while self.gap and self.rng.random() < self.gap:  # a random bubble before this beat
                self.valid.value = 0
                await RisingEdge(self.clk)
            self.payload.value = beat
            self.valid.value = 1
            await ReadOnly()
            while not resolved(self.ready):
                await (RisingEdge(self.clk) if self.gap else RisingEdge(self.ready))
                await ReadOnly()
            await RisingEdge(self.clk)  # the beat moves at this edge
        self.valid.value = 0


class StreamSink:
    def __init__(self, dut, name: str, clk, gap: float = 0.0, seed: int = 1):
        self.payload, self.valid, self.ready = (getattr(dut, f"{name}__{s}") for s in ("payload", "valid", "ready"))
        self.clk, self.gap, self.rng = clk, gap, random.Random(seed)
        self.ready.value = 0

    async def receive(self, count: int) -> list[int]:
        beats = []
        while len(beats) < count:
            ready = not (self.gap and self.rng.random() < self.gap)
            self.ready.value = int(ready)
            await ReadOnly()
            if ready and resolved(self.valid):
                beats.append(resolved(self.payload))
                await RisingEdge(self.clk)  # the beat moves at this edge
            elif ready and not self.gap:
                await RisingEdge(self.valid)
            else:
                await RisingEdge(self.clk)
        self.ready.value = 0
        return beats

    async def expect_silence(self, cycles: int) -> None:
        """Hold ready high for ``cycles`` cycles and fail on any beat."""
        self.ready.value = 1
        for _ in range(cycles):
            await ReadOnly()
            assert not resolved(self.valid), "a result beat appeared while the accelerator should be idle"
            await RisingEdge(self.clk)
        self.ready.value = 0
