"""cocotb testbench of the residual stream alone (tests/test_hw_residual_stream.py runs it): the sums
into the LayerNorm unit against ``x + y`` and the codes against ``Staircase.apply``, each row's
token and staircase from its tag, and both paths' cycle counts against the unit's model.

Settings (BEBERT_COSIM): tokens, hidden, lanes, setting ("1-1-4": 4-bit signed codes, "1-1-1":
bipolar), length (the sentence driven), seed. The testbench plays the threshold memory (one cycle
of read latency) and the LayerNorm between the paths. ``phases`` lays out the sentence: groups of
rows in a shuffled order of tokens, each through the add path then (as LayerNorm outputs) the norm
path; first the embeddings, then product rows added to the stored states; every other row is
quantized by a staircase no state reaches, so each row's own base shows. Then the same with random
pauses on every stream, and a reset in the middle of an add row, then one row.
"""

from dataclasses import dataclass

import cocotb
import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge, with_timeout
from cocotb.utils import get_sim_time

from bebert.hw.flows.cosim import settings
from bebert.hw.blocks.residual_stream import TAGS_IN_FLIGHT, ResidualShape
from bebert.hw.testbench.streams import (StreamSink, StreamSource, pack, reset_mid_row, resolved,
                                         start_after_reset)
from bebert.sim.program import NEVER_DOWN, Codes, Staircase

STATE_BITS, ADD_BITS = 33, 30  # a LayerNorm output and a product's fixed-point output, as in the built-in model
CODES = {"1-1-4": Codes(4, True), "1-1-1": Codes(1, True, bipolar=True)}
STAIRCASES = 2  # staircases in the threshold memory; the test's is the second


def shape_of(tokens: int, hidden: int, lanes: int, setting: str) -> ResidualShape:
    beats = -(-hidden // lanes) if lanes > 0 else 1  # a bad lane count is refused by the shape itself
    return ResidualShape(tokens, hidden, lanes, STATE_BITS, ADD_BITS, CODES[setting], STATE_BITS + 1,
                         STAIRCASES * beats)


def staircase(shape: ResidualShape, rng) -> Staircase:
    """Per-channel ascending thresholds over the whole state format, one channel's at its ends (the
    lowest value, and one past the highest: a level no state reaches)."""
    lo, hi = -(1 << (STATE_BITS - 1)), (1 << (STATE_BITS - 1))
    up = np.sort(rng.integers(lo // 4, hi // 4, size=(shape.hidden, shape.levels)), axis=1)
    up[0] = lo if shape.levels == 1 else np.linspace(lo, hi, shape.levels).astype(np.int64)
    if shape.codes.bipolar:  # the simulator's form: the boundary counted twice
        up = np.repeat(up, 2, axis=1)
    return Staircase(up, np.full_like(up, NEVER_DOWN), shape.codes.low)


def state_rows(shape: ResidualShape, length: int, stairs: Staircase, rng) -> np.ndarray:
    """LayerNorm outputs: random over the format, the format's ends, and each channel's thresholds
    and the values just below them."""
    lo, hi = -(1 << (STATE_BITS - 1)), (1 << (STATE_BITS - 1)) - 1
    rows = rng.integers(lo, hi + 1, size=(length, shape.hidden))
    rows[0, ::2], rows[0, 1::2] = lo, hi
    level = rng.integers(0, shape.levels, size=shape.hidden)
    channels = np.arange(shape.hidden)
    if length > 1:
        rows[1] = np.clip(stairs.up[channels, level], lo, hi)
    if length > 2:
        rows[2] = np.clip(stairs.up[channels, level] - 1, lo, hi)
    return rows


def product_rows(shape: ResidualShape, length: int, rng) -> np.ndarray:
    lo, hi = -(1 << (ADD_BITS - 1)), (1 << (ADD_BITS - 1)) - 1
    rows = rng.integers(lo, hi + 1, size=(length, shape.hidden))
    rows[0, ::2], rows[0, 1::2] = hi, lo
    return rows


def expected_codes(states: np.ndarray, stairs: Staircase, codes: Codes) -> np.ndarray:
    """The codes as the stream carries them (low bits, or 1 for +1)."""
    values = stairs.apply(states)
    return (values > 0).astype(np.int64) if codes.bipolar else values & ((1 << codes.bits) - 1)


def beats_of(rows: np.ndarray, shape: ResidualShape) -> list[np.ndarray]:
    padded = np.zeros((len(rows), shape.beats * shape.lanes), dtype=np.int64)
    padded[:, :shape.hidden] = rows
    return list(padded.reshape(-1, shape.lanes))


def threshold_words(shape: ResidualShape, stairs: Staircase) -> list[np.ndarray]:
    """The threshold memory: STAIRCASES staircases of ``beats`` words, (lanes, levels) each; padding
    channels never reached."""
    never = 1 << (STATE_BITS - 1)
    up = np.full((shape.beats * shape.lanes, shape.levels), never, dtype=np.int64)
    up[:shape.hidden] = stairs.up[:, :shape.levels]  # a bipolar staircase's repeated boundary once
    one = list(up.reshape(shape.beats, shape.lanes, shape.levels))
    return [np.full_like(one[0], never)] * shape.beats * (STAIRCASES - 1) + one


def threshold_base(shape: ResidualShape) -> int:
    return (STAIRCASES - 1) * shape.beats


def rows_of(beats: list, shape: ResidualShape, rows: int) -> np.ndarray:
    return np.array(beats, dtype=np.int64).reshape(rows, -1)[:, :shape.hidden]


@dataclass
class Phase:
    """Rows through one path: for ``add``, the tags offered with them and the sums expected; for
    ``norm``, the codes expected and the tokens they must carry."""

    path: str
    tokens: list[int]
    rows: np.ndarray
    expected: np.ndarray
    tags: list[dict]


def phases(shape: ResidualShape, length: int, stairs: Staircase, rng) -> list[Phase]:
    """A sentence as the encoder drives the unit (see the module docstring)."""
    out, states = [], np.zeros((length, shape.hidden), dtype=np.int64)
    never = shape.codes.low & ((1 << shape.code_bits) - 1) if not shape.codes.bipolar else 0
    for embed, addends in ((1, product_rows(shape, length, rng)), (0, product_rows(shape, length, rng))):
        order = [int(t) for t in rng.permutation(length)]
        for start in range(0, length, TAGS_IN_FLIGHT):
            group = order[start:start + TAGS_IN_FLIGHT]
            bases = [threshold_base(shape) if (start + i) % 2 == 0 else 0 for i in range(len(group))]
            rows = addends[group]
            out.append(Phase("add", group, rows, rows + (0 if embed else states[group]),
                             [{"token": t, "embed": embed, "threshold_base": b, "norm_base": 0}
                              for t, b in zip(group, bases)]))
            new = state_rows(shape, len(group), stairs, rng)
            codes = expected_codes(new, stairs, shape.codes)
            codes[[i for i, b in enumerate(bases) if b == 0]] = never
            out.append(Phase("norm", group, new, codes, []))
            states[group] = new
    return out


def pack_tag(tag: dict, shape: ResidualShape) -> int:
    """An ``add_row`` payload: token, embed, threshold_base, norm_base from the low bits up."""
    token_bits, base_bits = max(1, (shape.tokens - 1).bit_length()), (shape.threshold_words - 1).bit_length()
    return (tag["token"] | tag["embed"] << token_bits | tag["threshold_base"] << (token_bits + 1)
            | tag["norm_base"] << (token_bits + 1 + base_bits))


# ---- the cocotb testbench --------------------------------------------------------------------------
def unpack(word: int, lanes: int, bits: int, signed_values: bool) -> list[int]:
    values = [(word >> (lane * bits)) & ((1 << bits) - 1) for lane in range(lanes)]
    return [v - (1 << bits) if signed_values and v >> (bits - 1) else v for v in values]


async def threshold_memory(dut, words: list[np.ndarray], shape: ResidualShape):
    """The thresholds of the address seen at each edge, on the port after it."""
    address = 0
    while True:
        await RisingEdge(dut.clk)
        lanes = [pack(words[address][lane], shape.threshold_bits) for lane in range(shape.lanes)]
        dut.thresholds.value = pack(lanes, shape.levels * shape.threshold_bits)
        await ReadOnly()
        address = min(resolved(dut.threshold_addr), len(words) - 1)


async def through(dut, phase: Phase, shape: ResidualShape, gap: float = 0.0, seed: int = 0):
    """One phase's rows through its path; returns the output rows, their tokens (norm) and the cycles."""
    source_name, sink_name, in_bits = ("add_in", "sum_out", ADD_BITS) if phase.path == "add" else \
        ("norm_in", "codes_out", STATE_BITS)
    out_bits, signed_out = (shape.sum_bits, True) if phase.path == "add" else (shape.code_bits, False)
    source = StreamSource(dut, source_name, dut.clk, gap=gap, seed=seed)
    sink = StreamSink(dut, sink_name, dut.clk, gap=gap, seed=seed + 1)
    beats = [pack(b, in_bits) for b in beats_of(phase.rows, shape)]
    started = get_sim_time("ns")
    sending = cocotb.start_soon(source.send(beats))
    if phase.tags:
        tags = cocotb.start_soon(StreamSource(dut, "add_row", dut.clk, gap=gap, seed=seed + 2).send(
            [pack_tag(tag, shape) for tag in phase.tags]))
    budget = 200 * shape.rows_cycles(len(phase.rows), phase.path) + 10_000
    got = await with_timeout(sink.receive(len(beats)), budget, "ns")
    await sending
    if phase.tags:
        await tags
    cycles = round((get_sim_time("ns") - started) / 10)
    code_bits = shape.lanes * out_bits
    values = [v for word in got for v in unpack(word & ((1 << code_bits) - 1), shape.lanes, out_bits, signed_out)]
    tokens = [word >> code_bits for word in got[::shape.beats]] if phase.path == "norm" else phase.tokens
    return rows_of(values, shape, len(phase.rows)), tokens, cycles


def check(got: np.ndarray, expected: np.ndarray, what: str) -> None:
    bad = np.argwhere(got != expected)
    assert not len(bad), f"{what}: (row, channel) {bad[:4].tolist()} differ from the simulator"


async def run_phases(dut, shape: ResidualShape, todo: list[Phase], gap: float, seed: int, timed: bool, what: str):
    for phase in todo:
        rows, tokens, cycles = await through(dut, phase, shape, gap, seed)
        check(rows, phase.expected, f"{what}, {phase.path} of tokens {phase.tokens}")
        assert tokens == phase.tokens, f"{what}: codes of tokens {tokens}, not {phase.tokens}"
        model = shape.rows_cycles(len(phase.rows), phase.path)
        assert not timed or cycles == model, f"{what}, {phase.path}: {cycles} cycles, the model says {model}"


@cocotb.test()
async def residual_stream_equals_simulator(dut):
    s = settings()
    shape = shape_of(s["tokens"], s["hidden"], s["lanes"], s["setting"])
    length, rng = s["length"], np.random.default_rng(s["seed"])
    stairs = staircase(shape, rng)
    for name in ("add_row__valid", "add_in__valid", "norm_in__valid", "sum_out__ready", "codes_out__ready"):
        getattr(dut, name).value = 0  # a stream the phase does not use is idle, not undriven
    cocotb.start_soon(threshold_memory(dut, threshold_words(shape, stairs), shape))
    await start_after_reset(dut, ("add_row__ready", "add_in__ready", "norm_in__ready", "sum_out__valid",
                                  "codes_out__valid", "busy", "threshold_addr"))  # no X after reset
    await run_phases(dut, shape, phases(shape, length, stairs, rng), 0.0, s["seed"], True, "back to back")
    await run_phases(dut, shape, phases(shape, length, stairs, rng), 0.3, s["seed"], False, "with stalls")

    embedding = phases(shape, 1, stairs, rng)[:2]
    dut.add_row__payload.value, dut.add_row__valid.value = pack_tag(embedding[0].tags[0], shape), 1
    await reset_mid_row(dut, [pack(b, ADD_BITS) for b in beats_of(embedding[0].rows, shape)], "add_in",
                        ("sum_out__valid", "codes_out__valid"))
    dut.add_row__valid.value = 0
    await run_phases(dut, shape, embedding, 0.0, s["seed"], True, "after a reset")
