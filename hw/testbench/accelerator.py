"""cocotb testbench of the whole accelerator against the simulator, bit for bit.

Settings (BEBERT_COSIM, from bebert.hw.flows.cosim.cosimulate): artifact, pe, simd, members, act_bits,
sentences ([ids, types] pairs), gap (probability of a random stall on each stream side), reload,
results (a JSON file this testbench writes: per sentence, tokens, cycles, model cycles, stalls,
answers, wall time).

The host side is bebert.hw.host.member_program: it computes what the accelerator does not, from
the accelerator's own results. Every result the accelerator streams out (Q, K, V codes, the
attention output and FFN output in fixed point, each member's logits) must equal the simulator's
trace of the same sentence, the class must equal the simulator's answer, and the cycle counter
must equal the cycle model. Under a four-state simulator, an X or Z bit in any beat read or in a
control output after reset fails the test with the signal's name (streams.resolved).
"""

from __future__ import annotations

import time

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge, with_timeout

from bebert.hw.accelerator import run_cycles
from bebert.hw.design.config import HardwareConfig
from bebert.hw.flows.cosim import save_sentences, settings
from bebert.hw.host import beat_lanes, member_program, result_beat_count, step_beats, step_results
from bebert.hw.generator.images import member_images
from bebert.hw.design.plan import plan_for
from bebert.sim.ensemble import load_simulation
from bebert.hw.testbench.streams import StreamSink, StreamSource, reset_checked, resolved

CONTROL_OUTPUTS = ("busy", "done", "cycles", "stalls", "act_in__ready", "load_in__ready", "result_out__valid")


def trace_name(prefix: str, job) -> str:
    """The simulator's trace name of a job's streamed results (docs/datapath.md)."""
    if job.name == "classifier":
        return prefix + "logits"
    return prefix + job.name + (".out" if job.affine else ".codes")


class Bench:
    def __init__(self, dut):
        self.dut, self.s = dut, settings()
        s = self.s
        self.simulation = load_simulation(s["artifact"])
        self.plan = plan_for(self.simulation, HardwareConfig(s["pe"], s["simd"], s["members"], s["act_bits"]))
        gap = s.get("gap", 0.0)
        self.source = StreamSource(dut, "act_in", dut.clk, gap, seed=11)
        self.loader = StreamSource(dut, "load_in", dut.clk, gap, seed=12)
        self.sink = StreamSink(dut, "result_out", dut.clk, gap, seed=13)
        self.records = []
        Clock(dut.clk, 10, unit="ns").start()

    async def reset(self, cycles: int = 3):
        await reset_checked(self.dut, CONTROL_OUTPUTS, cycles)

    async def run_sentence(self, ids: list[int], types: list[int], reload: bool = False) -> dict:
        plan, dut = self.plan, self.dut
        trace = {}
        expected_logits = self.simulation.member_logits([ids], [types], trace=trace)
        expected_answer = int(self.simulation.join(expected_logits)[0])
        started = time.perf_counter()
        dut.tokens.value = len(ids)
        dut.reload.value = int(reload)
        dut.start.value = 1
        await RisingEdge(dut.clk)
        dut.start.value = 0
        streaming = reload or plan.resident < plan.ensemble_members
        for m, member in enumerate(plan.members):
            if streaming:
                await self.loader.send(member_images(plan, m).load_beats())
            program = member_program(plan, m, ids, types)
            request = next(program)
            while True:
                step, rows = request
                sending = cocotb.start_soon(self.source.send(step_beats(plan, step, rows)))
                beats = await self.sink.receive(result_beat_count(plan, step, len(rows)))
                await sending
                results = step_results(plan, step, beats, len(rows))
                for job in step.jobs:
                    if job.to_stream:
                        want = trace[trace_name(member.prefix, job)].reshape(results[job.name].shape)
                        assert (results[job.name] == want).all(), \
                            f"member {m} {job.name}: the accelerator's results differ from the simulator's"
                try:
                    request = program.send(results)
                except StopIteration:
                    break
        answer = beat_lanes((await self.sink.receive(1))[0], plan.config.pe, plan.value_bits)[0]
        await ReadOnly()
        assert resolved(dut.done) == 1 and resolved(dut.busy) == 0
        cycles, stalls = resolved(dut.cycles), resolved(dut.stalls)
        record = {"tokens": len(ids), "cycles": cycles, "model_cycles": run_cycles(plan, len(ids), reload).total,
                  "stalls": stalls, "answer": answer, "simulator_answer": expected_answer,
                  "wall_s": time.perf_counter() - started}
        self.records.append(record)
        dut._log.info("sentence of %d tokens: class %d (simulator %d), cycles %d (model %d), stalls %d, %.1f s",
                      len(ids), answer, expected_answer, cycles, record["model_cycles"], stalls, record["wall_s"])
        assert answer == expected_answer, f"class {answer} != the simulator's {expected_answer}"
        assert cycles == record["model_cycles"], f"cycle counter {cycles} != cycle model {record['model_cycles']}"
        await RisingEdge(dut.clk)
        return record

    def timeout_ns(self, ids) -> int:
        cycles = run_cycles(self.plan, len(ids), True).total
        return int(10 * (cycles * 20 + 100_000))

    def save(self):
        save_sentences({"config": {k: self.s[k] for k in ("pe", "simd", "members", "act_bits")},
                        "resident": self.plan.resident}, self.records)


@cocotb.test()
async def sentences_match_simulator(dut):
    """Every sentence through every member: results, logits, class and cycles as the simulator/model say."""
    bench = Bench(dut)
    await bench.reset()
    for ids, types in bench.s["sentences"]:
        await with_timeout(bench.run_sentence(ids, types, bench.s.get("reload", False)), bench.timeout_ns(ids), "ns")
    bench.save()


@cocotb.test()
async def reset_in_the_middle(dut):
    """A reset while a sentence is half done: the accelerator goes idle, emits nothing, and the next
    sentence is exact."""
    bench = Bench(dut)
    await bench.reset()
    ids, types = bench.s["sentences"][0]
    half = run_cycles(bench.plan, len(ids)).total // 2
    task = cocotb.start_soon(bench.run_sentence(ids, types))
    for _ in range(half):
        await RisingEdge(dut.clk)
    task.cancel()
    for stream in (bench.source, bench.loader):
        stream.valid.value = 0
    await bench.reset()
    await ReadOnly()
    assert resolved(dut.busy) == 0 and resolved(dut.done) == 0, "the reset did not return the accelerator to idle"
    await RisingEdge(dut.clk)
    await bench.sink.expect_silence(50)
    await with_timeout(bench.run_sentence(ids, types), bench.timeout_ns(ids), "ns")
    bench.save()
