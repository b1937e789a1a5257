"""The staircase quantizer alone in Amaranth's simulator: every code equal to the simulator's
``Staircase.apply``, for 4-bit and bipolar codes, at the thresholds and just below them, at the
format's ends, with a partial last beat (padding lanes 0) and stalls, per-channel thresholds and one
row shared by every channel; each row's tag beside its
codes; a beat out QUANTIZE_LATENCY cycles after it went in."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from bebert.hw.blocks.staircase_quantizer import QUANTIZE_LATENCY, QuantizerShape, StaircaseQuantizer
from bebert.hw.testbench.amaranth_streams import stream_rows
from bebert.sim.program import NEVER_DOWN, Codes, Staircase

CODES = {"1-1-4": Codes(4, True), "1-1-1": Codes(1, True, bipolar=True)}
VALUE_BITS = 14
BASE = 3  # the row's staircase starts at this threshold word


def staircase(shape: QuantizerShape, rng) -> Staircase:
    """Random rising thresholds, a row per channel (one row for every channel if ``shape.shared``)."""
    lo, hi = -(1 << (VALUE_BITS - 1)), 1 << (VALUE_BITS - 1)
    rows = 1 if shape.shared else shape.values
    up = np.sort(rng.integers(lo // 2, hi // 2, size=(rows, shape.levels)), axis=1)
    up[0] = lo if shape.levels == 1 else np.linspace(lo, hi, shape.levels).astype(np.int64)
    if shape.codes.bipolar:  # the simulator's form: the boundary counted twice
        up = np.repeat(up, 2, axis=1)
    return Staircase(up, np.full_like(up, NEVER_DOWN), shape.codes.low)


def threshold_words(shape: QuantizerShape, stairs: Staircase) -> list[np.ndarray]:
    never = 1 << (VALUE_BITS - 1)
    if shape.shared:  # one word, the row every lane compares with, between words it must not read
        return ([np.full((1, shape.levels), never)] * BASE + [stairs.up[:, :shape.levels]]
                + [np.full((1, shape.levels), -never)] * shape.beats)
    up = np.full((shape.beats * shape.lanes, shape.levels), never, dtype=np.int64)
    up[:shape.values] = stairs.up[:, :shape.levels]
    return [np.full((shape.lanes, shape.levels), never)] * BASE + list(up.reshape(shape.beats, shape.lanes, -1))


def rows_for(shape: QuantizerShape, stairs: Staircase, count: int, rng) -> np.ndarray:
    lo, hi = -(1 << (VALUE_BITS - 1)), (1 << (VALUE_BITS - 1)) - 1
    rows = rng.integers(lo, hi + 1, size=(count, shape.values))
    rows[0, ::2], rows[0, 1::2] = lo, hi
    channels = np.zeros(shape.values, dtype=int) if shape.shared else np.arange(shape.values)
    level = rng.integers(0, shape.levels, size=shape.values)
    rows[1] = np.clip(stairs.up[channels, level], lo, hi)
    rows[2] = np.clip(stairs.up[channels, level] - 1, lo, hi)
    return rows


def expected(rows: np.ndarray, stairs: Staircase, codes: Codes) -> np.ndarray:
    values = stairs.apply(rows)
    return (values > 0).astype(np.int64) if codes.bipolar else values & ((1 << codes.bits) - 1)


def beats_of(rows: np.ndarray, lanes: int) -> list[list[int]]:
    padded = np.zeros((len(rows), -(-rows.shape[1] // lanes) * lanes), dtype=np.int64)
    padded[:, :rows.shape[1]] = rows
    return [list(b) for b in padded.reshape(-1, lanes)]


def memory_of(unit, words):
    def sample(ctx):
        address = min(ctx.get(unit.threshold_addr), len(words) - 1)

        def drive(ctx):
            for lane in range(unit.shape.threshold_lanes):
                for level in range(unit.shape.levels):
                    ctx.set(unit.thresholds[lane][level], int(words[address][lane, level]))
        return drive
    return sample


@pytest.mark.parametrize("lanes,values,setting,shared", [(8, 32, "1-1-4", False), (4, 10, "1-1-4", False),
                                                         (32, 32, "1-1-1", False), (1, 3, "1-1-4", False),
                                                         (3, 7, "1-1-1", False), (4, 10, "1-1-4", True),
                                                         (8, 32, "1-1-4", True), (3, 7, "1-1-1", True)])
@pytest.mark.parametrize("stalls", [False, True])
def test_codes_equal_the_simulators_staircase(lanes, values, setting, shared, stalls):
    """Per-channel staircases a word a beat, or one shared row a word (every lane compares with it)."""
    words = 1 if shared else -(-values // lanes)
    shape = QuantizerShape(lanes, values, VALUE_BITS, VALUE_BITS + 1, CODES[setting], BASE + words, shared=shared)
    rng = np.random.default_rng(lanes * 31 + values)
    stairs = staircase(shape, rng)
    rows = rows_for(shape, stairs, 4, rng)
    unit = StaircaseQuantizer(shape)
    out, cycles = stream_rows(unit, beats_of(rows, lanes), budget=2000, held=((unit.base, BASE),),
                              memory=memory_of(unit, threshold_words(shape, stairs)),
                              stall=np.random.default_rng(2) if stalls else None)
    got = np.array(out, dtype=np.int64).reshape(len(rows), -1)
    want = np.zeros_like(got)
    want[:, :values] = expected(rows, stairs, shape.codes)
    assert (got == want).all()
    if not stalls:
        assert cycles == len(rows) * shape.beats + QUANTIZE_LATENCY  # the last beat taken, then its latency


def test_each_row_carries_its_tag():
    shape = QuantizerShape(4, 10, VALUE_BITS, VALUE_BITS + 1, CODES["1-1-4"], BASE + 3, tag_bits=5)
    rng = np.random.default_rng(9)
    stairs = staircase(shape, rng)
    rows = rows_for(shape, stairs, 3, rng)
    beats, tags = beats_of(rows, 4), [17, 2, 30]
    unit = StaircaseQuantizer(shape)
    words, got = threshold_words(shape, stairs), []
    sample = memory_of(unit, words)

    async def bench(ctx):
        ctx.set(unit.base, BASE)
        ctx.set(unit.row_out.ready, 1)
        sent = 0
        for _ in range(200):
            if sent < len(beats):
                ctx.set(unit.row_in.valid, 1)
                ctx.set(unit.tag, tags[sent // shape.beats] if sent % shape.beats == 0 else 0)  # held at the first beat
                for lane, value in enumerate(beats[sent]):
                    ctx.set(unit.row_in.payload[lane], int(value))
            else:
                ctx.set(unit.row_in.valid, 0)
            taken = sent < len(beats) and ctx.get(unit.row_in.ready)
            if ctx.get(unit.row_out.valid):
                got.append((ctx.get(unit.row_out.payload.tag),
                            [ctx.get(unit.row_out.payload.codes[lane]) for lane in range(4)]))
            drive = sample(ctx)
            await ctx.tick()
            drive(ctx)
            sent += taken

    simulator = Simulator(unit)
    simulator.add_clock(1e-8)
    simulator.add_testbench(bench)
    simulator.run()
    assert [tag for tag, _ in got] == [t for t in tags for _ in range(shape.beats)]
    want = np.zeros((3, 12), dtype=np.int64)
    want[:, :10] = expected(rows, stairs, shape.codes)
    assert np.array([codes for _, codes in got]).reshape(3, -1).tolist() == want.tolist()
