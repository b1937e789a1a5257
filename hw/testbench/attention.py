"""cocotb testbench of the attention products alone (tests/test_hw_attention.py runs it): the score
unit's rows and the context unit's accumulators against ``bebert.sim.execute.product`` on one head,
and both cycle counts against the units' models.

Settings (BEBERT_COSIM): tokens, heads, head_size, lanes, setting ("1-1-4" or "1-1-1"), length (the
sentence length driven), seed. The keys and values of every token are written first through each
unit's ``write`` port; then three phases per unit: the rows back to back with no stalls (cycles
from the first beat in to the last beat out equal the model's), with random pauses on both streams,
and after a reset in the middle of a row, one more row.
"""

import cocotb
import numpy as np
from cocotb.triggers import RisingEdge, with_timeout
from cocotb.utils import get_sim_time

from bebert.hw.blocks.attention_products import AttentionShape, stored_bits
from bebert.hw.flows.cosim import settings
from bebert.hw.testbench.streams import StreamSink, StreamSource, pack, reset_mid_row, start_after_reset
from bebert.sim.execute import product
from bebert.sim.program import Codes

SETTINGS = {  # (query, key, probabilities, value) codes
    "1-1-4": (Codes(4, True), Codes(4, True), Codes(4, False), Codes(4, True)),
    "1-1-1": (Codes(1, True, bipolar=True), Codes(1, True, bipolar=True), Codes(1, False), Codes(1, True, bipolar=True)),
}


def shape_of(tokens: int, heads: int, head_size: int, lanes: int, setting: str) -> AttentionShape:
    return AttentionShape(tokens, heads, head_size, lanes, *SETTINGS[setting])


def draw(codes: Codes, size, rng, extreme: bool = False) -> np.ndarray:
    """Codes of the format: uniform over its levels, or only its two ends (the largest products)."""
    levels = codes.levels if not extreme else np.array([codes.low, codes.high])
    return rng.choice(levels, size=size).astype(np.int64)


def stored(values: np.ndarray, codes: Codes) -> np.ndarray:
    """Values as the units store them: low bits, or 1 for +1 of a bipolar code."""
    return (values > 0).astype(np.int64) if codes.bipolar else values & ((1 << codes.bits) - 1)


def layer_data(shape: AttentionShape, length: int, rng):
    """A sentence's codes: (queries, keys, values) (length, heads, head_size) and probabilities
    (length, heads, length). Half the queries and the first keys take only their format's ends."""
    size = (length, shape.heads, shape.head_size)
    q, k, v = (draw(c, size, rng) for c in (shape.query, shape.key, shape.value))
    half = length // 2
    q[:half], k[:half], v[:half] = (draw(c, (half,) + size[1:], rng, extreme=True)
                                    for c in (shape.query, shape.key, shape.value))
    p = draw(shape.probs, (length, shape.heads, length), rng)
    p[:half] = draw(shape.probs, (half, shape.heads, length), rng, extreme=True)
    return q, k, v, p


def expected_scores(q, k, shape: AttentionShape) -> list[np.ndarray]:
    """Score rows in the units' order: query by query, head by head."""
    return [product(q[i, h][None], shape.query, k[:, h], shape.key, "literal")[0]
            for i in range(len(q)) for h in range(shape.heads)]


def expected_context(p, v, shape: AttentionShape) -> list[np.ndarray]:
    return [product(p[i, h][None], shape.probs, v[:, h].T, shape.value, "literal")[0]
            for i in range(len(p)) for h in range(shape.heads)]


def slice_writes(values: np.ndarray, codes: Codes) -> list[tuple[int, int, int]]:
    """(token, head, packed head slice) for every slice of (tokens, heads, head_size) codes."""
    bits = stored_bits(codes)
    return [(t, h, pack(stored(values[t, h], codes), bits)) for t in range(values.shape[0])
            for h in range(values.shape[1])]


def probability_beats(p_row: np.ndarray, shape: AttentionShape, rng) -> list[np.ndarray]:
    """A probability row's beats; lanes past the sentence carry random codes the unit must ignore."""
    beats = shape.row_beats(len(p_row))
    padded = draw(shape.probs, beats * shape.lanes, rng)
    padded[:len(p_row)] = p_row
    return list(padded.reshape(beats, shape.lanes))


def unpack(word: int, lanes: int, bits: int) -> list[int]:
    """Signed lane values of a payload word."""
    values = [(word >> (lane * bits)) & ((1 << bits) - 1) for lane in range(lanes)]
    return [v - (1 << bits) if v >> (bits - 1) else v for v in values]


async def write_slices(dut, writes) -> None:
    """One head slice a cycle through the unit's ``write`` port."""
    for token, head, codes in writes:
        dut.write__en.value, dut.write__token.value, dut.write__head.value, dut.write__codes.value = 1, token, head, codes
        await RisingEdge(dut.clk)
    dut.write__en.value = 0


def check(outputs, expected, length: int, what: str, phase: str) -> None:
    for i, (out, want) in enumerate(zip(outputs, expected)):
        got = np.asarray(out[:len(want)])
        assert np.array_equal(got, want), \
            f"{phase}, {what} row {i}: lanes {np.flatnonzero(got != want)[:8]} differ from the simulator"
        assert not np.asarray(out[len(want):]).any(), f"{phase}, {what} row {i}: padding lanes are not 0"


async def three_phases(dut, source_name: str, beats: list[int], rows_in: int, beats_out: int, unpack_beat,
                       expected, model_cycles: int, what: str) -> None:
    """Back to back (the cycle model), with stalls, and one row after a reset mid-row."""
    s = settings()
    per_row_out = beats_out // len(expected)

    async def run(source, sink, count):
        sending = cocotb.start_soon(source.send(beats[:count * rows_in]))
        got = await with_timeout(sink.receive(count * per_row_out), 200 * model_cycles + 10_000, "ns")
        await sending
        flat = [value for word in got for value in unpack_beat(word)]
        return list(np.array(flat, dtype=np.int64).reshape(count, -1))

    source, sink = StreamSource(dut, source_name, dut.clk), StreamSink(dut, "row_out", dut.clk)
    started = get_sim_time("ns")
    check(await run(source, sink, len(expected)), expected, s["length"], what, "back to back")
    cycles = round((get_sim_time("ns") - started) / 10)
    assert cycles == model_cycles, f"{what}: {cycles} cycles, the model says {model_cycles}"

    source = StreamSource(dut, source_name, dut.clk, gap=0.3, seed=s["seed"])
    sink = StreamSink(dut, "row_out", dut.clk, gap=0.3, seed=s["seed"] + 1)
    check(await run(source, sink, len(expected)), expected, s["length"], what, "with stalls")

    source = await reset_mid_row(dut, beats[:rows_in], source_name)
    check(await run(source, StreamSink(dut, "row_out", dut.clk), 1), expected[:1], s["length"], what, "after a reset")


@cocotb.test()
async def scores_equal_simulator(dut):
    s = settings()
    shape = shape_of(s["tokens"], s["heads"], s["head_size"], s["lanes"], s["setting"])
    length, rng = s["length"], np.random.default_rng(s["seed"])
    q, k, _, _ = layer_data(shape, length, rng)
    dut.length.value = length
    await start_after_reset(dut, ("query_in__ready", "row_out__valid", "busy"))  # no X after reset
    await write_slices(dut, slice_writes(k, shape.key))
    queries = [code for _, _, code in slice_writes(q, shape.query)]
    expected = expected_scores(q, k, shape)
    rows = len(expected)
    await three_phases(dut, "query_in", queries, 1, rows * shape.row_beats(length),
                       lambda word: unpack(word, shape.lanes, shape.score_bits), expected,
                       shape.score_rows_cycles(rows, length), "scores")


@cocotb.test()
async def context_equals_simulator(dut):
    s = settings()
    shape = shape_of(s["tokens"], s["heads"], s["head_size"], s["lanes"], s["setting"])
    length, rng = s["length"], np.random.default_rng(s["seed"])
    _, _, v, p = layer_data(shape, length, rng)
    dut.length.value = length
    await start_after_reset(dut, ("row_in__ready", "row_out__valid", "busy"))  # no X after reset
    await write_slices(dut, slice_writes(v, shape.value))
    beats = [pack(b, shape.probs.bits) for i in range(length) for h in range(shape.heads)
             for b in probability_beats(p[i, h], shape, rng)]
    expected = expected_context(p, v, shape)
    rows = len(expected)
    await three_phases(dut, "row_in", beats, shape.row_beats(length), rows,
                       lambda word: unpack(word, shape.head_size, shape.context_bits), expected,
                       shape.context_rows_cycles(rows, length), "context")
