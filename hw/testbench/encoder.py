"""cocotb testbench of the encoder on chip (encoder_accelerator.py) against the simulator, bit for bit.

Settings (BEBERT_COSIM, from bebert.hw.flows.cosim.cosimulate_encoder): artifact, pe, simd, act_bits,
tokens (the build's longest sentence), attention_lanes, hidden_lanes, sentences ([ids, types]
pairs), gap (probability of a random stall on each host stream), results (a JSON file this
testbench writes: per sentence, tokens, cycles, model cycles, answers, wall time).

The host's only part is the embedding lookup: it streams every member's summed embedding rows and
reads the class. Watched on the trace ports, every row of codes the chip writes (each token's layer
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
from cocotb.triggers import ReadOnly, RisingEdge, with_timeout

from bebert.hw.design.config import HardwareConfig
from bebert.hw.design.plan import plan_for
from bebert.hw.encoder_units import encoder_units
from bebert.hw.flows.cosim import save_sentences, settings
from bebert.hw.generator.encoder_images import lane_rows
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


class Bench:
    def __init__(self, dut):
        self.dut, self.s = dut, settings()
        s = self.s
        self.simulation = load_simulation(s["artifact"])
        self.plan = plan_for(self.simulation, HardwareConfig(s["pe"], s["simd"], None, s["act_bits"]))
        self.units = encoder_units(self.plan, s["tokens"], s["attention_lanes"], s["hidden_lanes"])
        gap = s.get("gap", 0.0)
        self.source = StreamSource(dut, "embed_in", dut.clk, gap, seed=11)
        self.sink = StreamSink(dut, "result_out", dut.clk, gap, seed=13)
        self.watch = {name: Watch(dut, f"trace_{name}") for name in ("codes", "context", "logits")}
        self.records = []
        Clock(dut.clk, 10, unit="ns").start()

    async def reset(self, cycles: int = 3):
        await reset_checked(self.dut, CONTROL_OUTPUTS, cycles)

    def embedding_beats(self, trace: dict) -> list[int]:
        r = self.units.residual
        beats = []
        for member in self.simulation.members:
            for row in trace[member.prefix + "embeddings.sum"]:
                beats += [pack(beat, r.add_bits) for beat in lane_rows(row, r.beats, r.lanes)]
        return beats

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

    async def run_sentence(self, ids: list[int], types: list[int]) -> dict:
        dut = self.dut
        trace = {}
        expected_logits = self.simulation.member_logits([ids], [types], trace=trace)
        expected_answer = int(self.simulation.join(expected_logits)[0])
        started = time.perf_counter()
        dut.length.value = len(ids)
        dut.start.value = 1
        await RisingEdge(dut.clk)
        dut.start.value = 0
        sending = cocotb.start_soon(self.source.send(self.embedding_beats(trace)))
        answer = (await self.sink.receive(1))[0]
        await sending
        await ReadOnly()
        assert resolved(dut.done) == 1 and resolved(dut.busy) == 0
        cycles = resolved(dut.cycles)
        model = inference_cycles(self.plan, self.units, len(ids)).total
        record = {"tokens": len(ids), "cycles": cycles, "model_cycles": model, "answer": answer,
                  "simulator_answer": expected_answer, "wall_s": time.perf_counter() - started}
        self.records.append(record)
        dut._log.info("sentence of %d tokens: class %d (simulator %d), cycles %d (model %d), %.1f s",
                      len(ids), answer, expected_answer, cycles, model, record["wall_s"])
        self.check_traces(trace, len(ids))
        assert answer == expected_answer, f"class {answer} != the simulator's {expected_answer}"
        await RisingEdge(dut.clk)
        return record

    def timeout_ns(self, ids) -> int:
        return int(10 * (inference_cycles(self.plan, self.units, len(ids), serial=True).total * 20 + 100_000))

    def save(self):
        keys = ("pe", "simd", "act_bits", "tokens", "attention_lanes", "hidden_lanes")
        save_sentences({"config": {k: self.s[k] for k in keys}}, self.records)


@cocotb.test()
async def sentences_match_simulator(dut):
    """Every sentence through every member: codes, context, logits and class as the simulator says."""
    bench = Bench(dut)
    await bench.reset()
    for ids, types in bench.s["sentences"]:
        await with_timeout(bench.run_sentence(ids, types), bench.timeout_ns(ids), "ns")
    bench.save()
