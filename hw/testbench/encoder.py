"""cocotb testbench of the encoder on chip (encoder_accelerator.py) against the simulator, bit for bit.

Settings (BEBERT_COSIM, from bebert.hw.flows.cosim.cosimulate_encoder): artifact, pe, simd, act_bits,
param_width (streamed parameters, or None), beat_interval (the parameter stream's source offers a
beat that many cycles after the one before), tokens (the build's longest sentence), attention_lanes,
hidden_lanes, sentences ([ids, types] pairs), gap (probability of a random stall on each embedding
and class stream), results (a JSON file this testbench writes: per sentence, tokens, cycles, model
cycles, answers, wall time).

The host's only part is the embedding lookup: it streams every member's summed embedding rows (and
with streamed parameters every layer's parameters, generator/param_stream.py) and reads the class. Watched on the trace ports, every row of codes the chip writes (each token's layer
input, FFN-in and pooler codes, from its LayerNorms), every context row of every layer and every
member's logits must equal the simulator's trace of the same sentence, and the class its answer.
Under a four-state simulator an X or Z bit in any beat read, or in a control output after reset,
fails the test with the signal's name (streams.resolved).
"""

from __future__ import annotations

import time
from collections import defaultdict

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge, SimTimeoutError, with_timeout

from bebert.hw.design.config import HardwareConfig
from bebert.hw.design.plan import plan_for
from bebert.hw.encoder_units import encoder_units
from bebert.hw.flows.cosim import save_sentences, settings
from bebert.hw.generator.encoder_images import lane_rows
from bebert.hw.generator.param_stream import sentence_beats
from bebert.hw.host import beat_lanes, stored_codes
from bebert.hw.schedule import inference_cycles
from bebert.hw.testbench.streams import StreamSink, StreamSource, reset_checked, pack, resolved
from bebert.sim.ensemble import load_simulation

CONTROL_OUTPUTS = ("busy", "done", "cycles", "embed_in__ready", "result_out__valid", "trace_codes__valid",
                   "trace_context__valid", "trace_logits__valid")


class Watch:
    """Every beat a trace port shows (valid high at a rising edge), as payload integers."""

    def __init__(self, dut, name: str):
        self.valid, self.payload = getattr(dut, f"{name}__valid"), getattr(dut, f"{name}__payload")
        self.clk, self.beats = dut.clk, []
        cocotb.start_soon(self._run())

    async def _run(self):
        while True:
            await ReadOnly()
            if resolved(self.valid):
                self.beats.append(resolved(self.payload))
                await RisingEdge(self.clk)
            else:
                await RisingEdge(self.valid)

    def take(self) -> list[int]:
        beats, self.beats = self.beats, []
        return beats


def lanes(word: int, count: int, bits: int) -> list[int]:
    """An unsigned payload's ``count`` fields of ``bits`` bits."""
    return [(word >> (i * bits)) & ((1 << bits) - 1) for i in range(count)]


def encoder_build(s: dict):
    """The settings' artifact, compiled, and the encoder build it runs on: (simulation, plan, units)."""
    simulation = load_simulation(s["artifact"])
    plan = plan_for(simulation, HardwareConfig(s["pe"], s["simd"], None, s["act_bits"], s.get("param_width")))
    return simulation, plan, encoder_units(plan, s["tokens"], s["attention_lanes"], s["hidden_lanes"])


def embedding_beats(simulation, units, trace: dict) -> list[int]:
    """The host's embedding stream: every member's rows, member 0 first, token after token, each row
    ``units.residual.beats`` payload words."""
    r = units.residual
    return [pack(beat, r.add_bits) for member in simulation.members for row in trace[member.prefix + "embeddings.sum"]
            for beat in lane_rows(row, r.beats, r.lanes)]


class Bench:
    def __init__(self, dut, gap: float | None = None):
        """``gap``: the probability of a stall on each host stream (default: the settings')."""
        self.dut, self.s = dut, settings()
        s = self.s
        self.simulation, self.plan, self.units = encoder_build(s)
        self.gap = gap = s.get("gap", 0.0) if gap is None else gap
        self.source = StreamSource(dut, "embed_in", dut.clk, gap, seed=11)
        self.sink = StreamSink(dut, "result_out", dut.clk, gap, seed=13)
        self.interval = s.get("beat_interval", 1)
        self.params = (StreamSource(dut, "param_in", dut.clk, interval=self.interval)
                       if self.plan.config.streamed else None)
        self.watch = {name: Watch(dut, f"trace_{name}") for name in ("codes", "context", "logits")}
        self.records, self.sending = [], []
        Clock(dut.clk, 10, unit="ns").start()

    async def reset(self, cycles: int = 3):
        await reset_checked(self.dut, CONTROL_OUTPUTS, cycles)

    def missing_rows(self, tokens: int, beats_sent: int) -> str:
        """Which embedding rows the host has not streamed, after ``beats_sent`` beats of a sentence of
        ``tokens`` tokens (for the message of a sentence that does not finish)."""
        beats = self.units.residual.beats
        rows_sent, total = beats_sent // beats, len(self.simulation.members) * tokens
        if rows_sent >= total:
            return f"all {total} embedding rows were taken"
        first, last = divmod(rows_sent, tokens), divmod(total - 1, tokens)
        return (f"{total - rows_sent} of {total} embedding rows were never taken, from member {first[0]} token "
                f"{first[1]} to member {last[0]} token {last[1]}")

    def expected_codes(self, trace: dict, member) -> dict[int, list[np.ndarray]]:
        """Per token, the rows of codes its LayerNorms write, in order: each layer's input and FFN-in
        codes, then the pooler staircase's codes of the last hidden state."""
        kind = self.units.residual.codes
        p, layers = member.prefix, len(member.layers)
        rows = [trace[f"{p}layer{i}.{name}"] for i in range(layers) for name in ("input_codes", "ffn_in.codes")]
        rows.append(member.pooler_stairs.apply(trace[f"{p}layer{layers - 1}.ffn_norm"]))
        tokens = len(rows[0])
        return {t: [stored_codes(r[t], kind) for r in rows] for t in range(tokens)}

    def check_traces(self, trace: dict, tokens: int) -> None:
        r, a, plan = self.units.residual, self.units.attention, self.plan
        context_bits = 1 if self.units.pipeline.context_codes.bipolar else self.units.pipeline.context_codes.bits
        code_beats = self.watch["codes"].take()
        context_beats = self.watch["context"].take()
        logit_beats = self.watch["logits"].take()
        row_bits = max(1, (max(a.tokens, 2) - 1).bit_length())
        per_member_rows = tokens * (2 * len(self.simulation.members[0].layers) + 1) * r.beats
        context_per_member = len(self.simulation.members[0].layers) * tokens * a.heads
        assert len(code_beats) == len(self.simulation.members) * per_member_rows, \
            f"{len(code_beats)} beats of codes written, not {len(self.simulation.members) * per_member_rows}"
        assert len(context_beats) == len(self.simulation.members) * context_per_member
        assert len(logit_beats) == len(self.simulation.members)
        for m, member in enumerate(self.simulation.members):
            got = defaultdict(list)
            beats = code_beats[m * per_member_rows:(m + 1) * per_member_rows]
            for start in range(0, len(beats), r.beats):
                row = beats[start] & ((1 << row_bits) - 1)
                codes = [c for beat in beats[start:start + r.beats]
                         for c in lanes(beat >> row_bits, r.lanes, r.code_bits)][:r.hidden]
                assert all(beat & ((1 << row_bits) - 1) == row for beat in beats[start:start + r.beats])
                got[row].append(np.array(codes))
            for token, rows in self.expected_codes(trace, member).items():
                assert len(got[token]) == len(rows), f"member {m} token {token}: {len(got[token])} rows of codes"
                for i, (have, want) in enumerate(zip(got[token], rows)):
                    assert np.array_equal(have, want), f"member {m} token {token}: codes row {i} differs"
            beats = context_beats[m * context_per_member:(m + 1) * context_per_member]
            have = np.array([lanes(b, a.head_size, context_bits) for b in beats]).reshape(-1, tokens, a.heads * a.head_size)
            for i in range(len(member.layers)):
                want = stored_codes(trace[f"{member.prefix}layer{i}.context_codes"], self.units.pipeline.context_codes)
                assert np.array_equal(have[i], want), f"member {m} layer {i}: context codes differ"
            logits = beat_lanes(logit_beats[m], plan.labels, plan.value_bits)
            assert logits == [int(v) for v in trace[member.prefix + "logits"]], f"member {m}: logits differ"

    async def run_sentence(self, ids: list[int], types: list[int], withhold_rows: int = 0,
                           timeout_ns: int | None = None) -> dict:
        """One sentence, checked, failing after ``timeout_ns`` (default ``self.timeout_ns``) with the
        embedding rows the chip did not take; ``withhold_rows`` > 0 leaves the last rows unsent."""
        dut = self.dut
        trace = {}
        expected_logits = self.simulation.member_logits([ids], [types], trace=trace)
        expected_answer = int(self.simulation.join(expected_logits)[0])
        started = time.perf_counter()
        dut.length.value = len(ids)
        dut.start.value = 1
        await RisingEdge(dut.clk)
        dut.start.value = 0
        beats = embedding_beats(self.simulation, self.units, trace)
        beats = beats[:len(beats) - withhold_rows * self.units.residual.beats]
        self.sending = [cocotb.start_soon(self.source.send(beats))]
        if self.params:
            self.sending.append(cocotb.start_soon(self.params.send(sentence_beats(self.plan))))
        timeout_ns = timeout_ns or self.timeout_ns(ids)
        try:
            answer = (await with_timeout(self.sink.receive(1), timeout_ns, "ns"))[0]
        except SimTimeoutError:
            raise AssertionError(f"no class after {timeout_ns // 10:,} cycles of a {len(ids)}-token sentence: "
                                 f"{self.missing_rows(len(ids), self.source.sent)}") from None
        for sending in self.sending:
            await sending
        await ReadOnly()
        assert resolved(dut.done) == 1 and resolved(dut.busy) == 0
        cycles = resolved(dut.cycles)
        model = self.model_cycles(len(ids))
        record = {"tokens": len(ids), "cycles": cycles, "model_cycles": model, "answer": answer,
                  "simulator_answer": expected_answer, "gap": self.gap, "beat_interval": self.interval,
                  "wall_s": time.perf_counter() - started}
        self.records.append(record)
        dut._log.info("sentence of %d tokens: class %d (simulator %d), cycles %d (model %d), %.1f s",
                      len(ids), answer, expected_answer, cycles, model, record["wall_s"])
        self.check_traces(trace, len(ids))
        assert answer == expected_answer, f"class {answer} != the simulator's {expected_answer}"
        await RisingEdge(dut.clk)
        return record

    def model_cycles(self, tokens: int, serial: bool = False) -> int:
        return inference_cycles(self.plan, self.units, tokens, serial, self.interval).total

    def timeout_ns(self, ids) -> int:
        """Twenty times the serial schedule's cycles and 100,000 more, in ns of the 10 ns clock."""
        return int(10 * (self.model_cycles(len(ids), serial=True) * 20 + 100_000))

    async def abandon(self, task=None) -> None:
        """Cancel a sentence in flight (its ``task``, if it still runs) and reset: the chip must go
        idle and answer nothing; the traces of the abandoned sentence are dropped."""
        for running in (task, *self.sending):  # the sentence, and its streams' tasks
            if running is not None and not running.done():
                running.cancel()
        for source in (self.source, self.params):
            if source:
                source.valid.value = 0
        await self.reset()
        await ReadOnly()
        assert resolved(self.dut.busy) == 0 and resolved(self.dut.done) == 0, "the reset did not idle the chip"
        await RisingEdge(self.dut.clk)
        await self.sink.expect_silence(50)
        for watch in self.watch.values():
            watch.take()

    def save(self):
        keys = ("pe", "simd", "act_bits", "param_width", "beat_interval", "tokens", "attention_lanes", "hidden_lanes")
        save_sentences({"config": {k: self.s.get(k) for k in keys}}, self.records)


async def every_sentence(bench: Bench) -> None:
    await bench.reset()
    for ids, types in bench.s["sentences"]:
        await bench.run_sentence(ids, types)
    bench.save()


@cocotb.test()
async def sentences_match_simulator(dut):
    """Every sentence through every member: codes, context, logits and class as the simulator says."""
    await every_sentence(Bench(dut))


@cocotb.test()
async def stalls_on_the_host_streams(dut):
    """The embedding stream and the class's reader pause on 30% of cycles: every trace and the class
    still equal the simulator's (the counter counts the waits too, so it exceeds the model's)."""
    await every_sentence(Bench(dut, gap=0.3))


@cocotb.test()
async def reset_in_the_middle(dut):
    """A reset halfway through a sentence (by the schedule's cycles): the chip goes idle and answers
    nothing, and the same sentence run again is exact."""
    bench = Bench(dut)
    await bench.reset()
    ids, types = bench.s["sentences"][0]
    task = cocotb.start_soon(bench.run_sentence(ids, types))
    for _ in range(bench.model_cycles(len(ids)) // 2):
        await RisingEdge(dut.clk)
    await bench.abandon(task)
    await bench.run_sentence(ids, types)
    bench.save()


@cocotb.test()
async def embedding_stream_ends_early(dut):
    """The host stops one row short: the chip waits for the row (busy, no class) and the testbench's
    timeout names the row it never took; after a reset the whole sentence is exact."""
    bench = Bench(dut)
    await bench.reset()
    ids, types = bench.s["sentences"][0]
    waiting = 4 * bench.model_cycles(len(ids))
    try:
        await bench.run_sentence(ids, types, withhold_rows=1, timeout_ns=10 * waiting)
    except AssertionError as failure:
        message = str(failure)
    else:
        raise AssertionError("the sentence was answered without its last embedding row")
    last = len(bench.simulation.members) - 1
    assert message.endswith(f"1 of {len(bench.simulation.members) * len(ids)} embedding rows were never taken, from "
                            f"member {last} token {len(ids) - 1} to member {last} token {len(ids) - 1}"), message
    await ReadOnly()
    assert resolved(dut.busy) == 1, "the chip stopped waiting for the missing row"
    await RisingEdge(dut.clk)
    await bench.abandon()
    await bench.run_sentence(ids, types)
    bench.save()
