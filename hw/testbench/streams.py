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

from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge


def resolved(signal) -> int:
    """The signal's value as an integer; fails the test, naming the signal, if any bit is X or Z."""
    value = signal.value
    if not value.is_resolvable:
        raise AssertionError(f"{signal._name} is {value}: X or Z bits where the testbench reads it")
    return int(value)


def pack(values, bits: int) -> int:
    """Lane values into one payload word, lane i at bits [i*bits, (i+1)*bits), two's complement."""
    return sum((int(v) & ((1 << bits) - 1)) << (i * bits) for i, v in enumerate(values))


async def start_after_reset(dut, outputs: tuple[str, ...], period_ns: int = 10) -> None:
    """Start the clock, hold ``rst`` for two cycles, and check that none of ``outputs`` is X or Z
    after the reset; returns at the next rising edge."""
    Clock(dut.clk, period_ns, unit="ns").start()
    dut.rst.value = 1
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    await ReadOnly()
    for name in outputs:
        resolved(getattr(dut, name))
    await RisingEdge(dut.clk)


async def reset_checked(dut, outputs: tuple[str, ...], cycles: int = 3) -> None:
    """Hold ``rst`` for ``cycles`` cycles with ``start`` low, and check one cycle after it that none of
    ``outputs`` is X or Z (a four-state simulator's check); returns at the next rising edge."""
    dut.start.value = 0
    dut.rst.value = 1
    for _ in range(cycles):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    await RisingEdge(dut.clk)
    await ReadOnly()
    for name in outputs:
        resolved(getattr(dut, name))
    await RisingEdge(dut.clk)


async def reset_mid_row(dut, beats: list[int], source_name: str = "row_in",
                        outputs: tuple[str, ...] = ("row_out__valid",)) -> "StreamSource":
    """Send the first half of a row's ``beats`` on the input stream, reset for one cycle, and check
    that the block is idle after it (not ``busy``, no output stream valid); returns the source, for
    the whole row that follows."""
    source = StreamSource(dut, source_name, dut.clk)
    await source.send(beats[:max(1, len(beats) // 2)])
    dut.rst.value = 1
    await RisingEdge(dut.clk)
    dut.rst.value = 0
    await ReadOnly()
    assert not resolved(dut.busy) and not any(resolved(getattr(dut, name)) for name in outputs), \
        "the unit is busy after a reset"
    await RisingEdge(dut.clk)
    return source


class StreamSource:
    """Sends beats; ``gap``: the probability of a random bubble before each beat; ``interval``: a
    throttled source, which offers each beat ``interval`` cycles after the one before was taken (the
    rate of a memory behind the stream: one beat every ``interval`` cycles at most)."""

    def __init__(self, dut, name: str, clk, gap: float = 0.0, seed: int = 0, interval: int = 1):
        self.payload, self.valid, self.ready = (getattr(dut, f"{name}__{s}") for s in ("payload", "valid", "ready"))
        self.clk, self.gap, self.rng, self.interval = clk, gap, random.Random(seed), interval
        self.sent = 0  # beats of the last ``send`` taken so far
        self.valid.value = 0

    async def send(self, beats: list[int]) -> None:
        self.sent = 0
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
            self.sent += 1
            if self.interval > 1:
                self.valid.value = 0
                await ClockCycles(self.clk, self.interval - 1)
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
