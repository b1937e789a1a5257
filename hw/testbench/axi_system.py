"""cocotb testbench of the encoder behind AXI (axi_system.py), driven by cocotbext-axi.

Settings (BEBERT_COSIM, from bebert.hw.flows.cosim.cosimulate_encoder with interface "axi"):
artifact, pe, simd, act_bits, tokens, attention_lanes, hidden_lanes, sentences, gap (the probability
of a pause on each stream each cycle), results (as the encoder's testbench).

A driver's view: AxiLiteMaster writes LENGTH and CONTROL and reads STATUS, the counters and the
build registers; AxiStreamSource sends each embedding row as one frame (TLAST on its last beat)
and, with streamed layers, each parameter unit as one frame, queued before START;
AxiStreamSink takes the class. Each sentence's class must be the simulator's, the result frame one
byte long (TLAST on its only beat), ``irq`` must rise once it is taken, and CYCLES must equal the
schedule's model when neither stream pauses (more when they do, with STALLS counting waits). The
bit-for-bit traces of the same core are the encoder testbench's (encoder.py): this one checks what
the AXI shell adds. Under Icarus, an X or Z on any output after reset fails the test.
"""

from __future__ import annotations

import random
import time

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge, SimTimeoutError, with_timeout
from cocotbext.axi import AxiLiteBus, AxiLiteMaster, AxiStreamBus, AxiStreamFrame, AxiStreamSink, AxiStreamSource

from bebert.hw.axi_system import (CONTROL_IRQ_ENABLE, CONTROL_START, FORMAT, REGISTERS, STATUS_BITS, artifact_id,
                                  embed_data_bits)
from bebert.hw.blocks.axi_lite import OKAY, SLVERR
from bebert.hw.flows.cosim import save_sentences, settings
from bebert.hw.generator.param_stream import unit_beats
from bebert.hw.schedule import inference_cycles
from bebert.hw.testbench.encoder import embedding_beats, encoder_build
from bebert.hw.testbench.streams import resolved

OUTPUTS = ("s_axil_awready", "s_axil_wready", "s_axil_bvalid", "s_axil_bresp", "s_axil_arready", "s_axil_rvalid",
           "s_axil_rresp", "s_axil_rdata", "s_axis_embed_tready", "m_axis_result_tvalid", "m_axis_result_tdata",
           "m_axis_result_tlast", "irq")
UNMAPPED = 0xFC


def pauses(probability: float, seed: int):
    """A pause generator for cocotbext-axi: True (pause this cycle) with ``probability``."""
    chance = random.Random(seed)
    while True:
        yield chance.random() < probability


class Bench:
    def __init__(self, dut, gap: float | None = None):
        """``gap``: the probability of a pause on each stream each cycle (default: the settings')."""
        self.dut, self.s = dut, settings()
        gap = self.s.get("gap", 0.0) if gap is None else gap
        self.simulation, self.plan, self.units = encoder_build(self.s)
        self.gap, self.records = gap, []
        Clock(dut.clk, 10, unit="ns").start()
        self.regs = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.clk, dut.rst)
        self.embed = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis_embed"), dut.clk, dut.rst)
        self.result = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis_result"), dut.clk, dut.rst)
        streamed = self.plan.config.streamed
        self.params = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis_param"), dut.clk, dut.rst) if streamed else None
        self.outputs = OUTPUTS + (("s_axis_param_tready",) if streamed else ())
        if gap:  # every channel of every interface: the data streams and the register file's five
            channels = [self.embed, self.result, self.regs.write_if.aw_channel, self.regs.write_if.w_channel,
                        self.regs.write_if.b_channel, self.regs.read_if.ar_channel, self.regs.read_if.r_channel]
            channels += [self.params] if streamed else []
            for seed, channel in enumerate(channels, start=11):
                channel.set_pause_generator(pauses(gap, seed))

    async def reset(self):
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 3)
        self.dut.rst.value = 0
        await RisingEdge(self.dut.clk)
        await ReadOnly()
        for name in self.outputs:
            resolved(getattr(self.dut, name))
        await RisingEdge(self.dut.clk)

    async def read(self, name: str, expect=OKAY) -> int:
        done = await self.regs.read(REGISTERS[name].address if name in REGISTERS else UNMAPPED, 4)
        assert done.resp == expect, f"reading {name}: response {done.resp}, not {expect}"
        return int.from_bytes(done.data, "little")

    async def write(self, name: str, value: int, expect=OKAY) -> None:
        done = await self.regs.write(REGISTERS[name].address if name in REGISTERS else UNMAPPED,
                                     value.to_bytes(4, "little"))
        assert done.resp == expect, f"writing {name}: response {done.resp}, not {expect}"

    async def status(self) -> dict[str, int]:
        word = await self.read("status")
        return {name: word >> bit & 1 for name, bit in STATUS_BITS.items()}

    def rows(self, trace: dict) -> list[bytes]:
        """The embedding stream's frames: the encoder testbench's beats as TDATA bytes, a row a frame."""
        beats, width = embedding_beats(self.simulation, self.units, trace), embed_data_bits(self.units) // 8
        per_row = self.units.residual.beats
        return [b"".join(beat.to_bytes(width, "little") for beat in beats[start:start + per_row])
                for start in range(0, len(beats), per_row)]

    def param_frames(self) -> list[bytes]:
        """The parameter stream's frames (streamed layers): a unit a frame, W / 8 bytes a beat."""
        plan, width = self.plan, self.plan.config.param_width // 8
        return [b"".join(beat.to_bytes(width, "little") for beat in unit_beats(plan, member, unit))
                for member in range(plan.ensemble_members) for unit in plan.param_units]

    async def start(self, tokens: int) -> None:
        await self.write("length", tokens)
        await self.write("control", 1 << CONTROL_START | 1 << CONTROL_IRQ_ENABLE)

    async def run_sentence(self, ids, types, split_first_row: bool = False, split_first_unit: bool = False,
                           while_running=None) -> dict:
        """One sentence through the AXI shell, checked; ``split_first_row`` (``split_first_unit``) sends
        the first embedding row (parameter unit) as two frames, a TLAST too early; ``while_running`` is
        awaited after START, before the class."""
        dut = self.dut
        trace = {}
        expected = int(self.simulation.join(self.simulation.member_logits([ids], [types], trace=trace))[0])
        started = time.perf_counter()
        if self.params:  # queued before START: the loader takes its first beat as the sentence starts
            units = self.param_frames()
            if split_first_unit:
                half = len(units[0]) // 2 // (self.plan.config.param_width // 8) * (self.plan.config.param_width // 8)
                units[:1] = [units[0][:half], units[0][half:]]
            for unit in units:
                self.params.send_nowait(AxiStreamFrame(unit))
        await self.start(len(ids))
        frames = self.rows(trace)
        if split_first_row:  # at a beat boundary, halfway through the row
            width = embed_data_bits(self.units) // 8
            half = len(frames[0]) // width // 2 * width
            frames[:1] = [frames[0][:half], frames[0][half:]]
        for frame in frames:
            self.embed.send_nowait(AxiStreamFrame(frame))
        if while_running is not None:
            await while_running()
        model = inference_cycles(self.plan, self.units, len(ids)).total
        try:
            frame = await with_timeout(self.result.recv(), 10 * (20 * model + 100_000), "ns")
        except SimTimeoutError:
            raise AssertionError(f"no class after {20 * model + 100_000:,} cycles") from None
        assert len(frame.tdata) == 1, f"the result frame has {len(frame.tdata)} beats: TLAST not on its only beat"
        for _ in range(4):  # the interrupt follows the class taken within a few cycles
            await RisingEdge(dut.clk)
        await ReadOnly()
        assert resolved(dut.irq) == 1, "no interrupt after the class was taken"
        await RisingEdge(dut.clk)
        status = await self.status()
        assert status["done"] == 1 and status["busy"] == 0, status
        cycles = await self.read("cycles_low") | await self.read("cycles_high") << 32
        stalls = await self.read("stalls")
        answer = frame.tdata[0]
        record = {"tokens": len(ids), "cycles": cycles, "model_cycles": model, "stalls": stalls, "answer": answer,
                  "simulator_answer": expected, "gap": self.gap, "wall_s": time.perf_counter() - started}
        self.records.append(record)
        dut._log.info("sentence of %d tokens over AXI: class %d (simulator %d), cycles %d (model %d), stalls %d",
                      len(ids), answer, expected, cycles, model, stalls)
        assert answer == expected, f"class {answer} != the simulator's {expected}"
        await self.write("status", 1 << STATUS_BITS["done"])  # write 1 to clear
        await RisingEdge(dut.clk)
        assert (await self.status())["done"] == 0 and resolved(dut.irq) == 0, "DONE or irq not cleared"
        return record

    def save(self):
        keys = ("pe", "simd", "act_bits", "tokens", "attention_lanes", "hidden_lanes")
        save_sentences({"config": {k: self.s[k] for k in keys}}, self.records)


@cocotb.test()
async def sentences_over_axi(dut):
    """Build registers as gen wrote them; every sentence's class the simulator's, cycles the model's."""
    bench = Bench(dut)
    await bench.reset()
    plan, r = bench.plan, bench.units.residual
    assert await bench.read("format") == FORMAT | plan.config.act_bits << 8 | plan.ensemble_members << 16
    assert await bench.read("array") == plan.config.pe | plan.config.simd << 16
    assert await bench.read("max_tokens") == bench.units.attention.tokens
    assert await bench.read("embed_format") == r.lanes | r.add_bits << 8 | r.beats << 16
    assert await bench.read("artifact") == artifact_id(bench.s["artifact"])
    width = plan.config.param_width or 0
    assert await bench.read("param_width") == width
    assert await bench.read("param_beats") == (plan.unit_beats(plan.param_units[0].name) if width else 0)
    assert await bench.read("param_last_beats") == (plan.unit_beats(plan.param_units[-1].name) if width else 0)
    assert await bench.read("sentences") == 0
    for ids, types in bench.s["sentences"]:
        await bench.run_sentence(ids, types)
    assert await bench.read("sentences") == len(bench.s["sentences"])
    bench.save()


@cocotb.test()
async def pauses_on_every_stream(dut):
    """TVALID pauses on the embedding stream, TREADY pauses on the result stream, and pauses on the AXI4-Lite
    AW, W and AR (VALID) and B and R (READY) channels, 30% of cycles each: the same classes, registers
    read and written as without pauses; the counter exceeds the model by waits that STALLS counts."""
    bench = Bench(dut, gap=0.3)
    await bench.reset()
    for ids, types in bench.s["sentences"]:
        record = await bench.run_sentence(ids, types)
        assert record["stalls"] > 0 and record["cycles"] > record["model_cycles"]
    bench.save()


@cocotb.test()
async def register_protocol(dut):
    """A write to a read-only register is ignored and reported; an unmapped address answers SLVERR;
    START with LENGTH 0, or while busy, is ignored and reported; each flag clears by writing 1."""
    bench = Bench(dut)
    await bench.reset()
    await bench.write("array", 0)
    assert await bench.read("array") == bench.plan.config.pe | bench.plan.config.simd << 16
    assert (await bench.status())["read_only_write"] == 1
    await bench.write("status", 1 << STATUS_BITS["read_only_write"])
    assert (await bench.status())["read_only_write"] == 0
    assert await bench.read("unmapped", expect=SLVERR) == 0
    await bench.write("unmapped", 1, expect=SLVERR)
    assert (await bench.status())["read_only_write"] == 0
    await bench.write("length", 0)
    await bench.write("control", 1 << CONTROL_START)
    flags = await bench.status()
    assert flags["start_ignored"] == 1 and flags["busy"] == 0
    await bench.write("status", 1 << STATUS_BITS["start_ignored"])

    async def start_again():
        assert (await bench.status())["busy"] == 1
        await bench.write("control", 1 << CONTROL_START | 1 << CONTROL_IRQ_ENABLE)
        assert (await bench.status())["start_ignored"] == 1

    ids, types = bench.s["sentences"][0]
    await bench.run_sentence(ids, types, while_running=start_again)
    await ClockCycles(dut.clk, 100)
    assert await bench.read("sentences") == 1 and bench.result.empty(), "the ignored START ran a sentence"
    bench.save()


@cocotb.test()
async def tlast_in_the_wrong_place(dut):
    """The first row sent as two frames (TLAST in its middle): the class is still right (the data is
    taken), STATUS.TLAST_ERROR is set, and the next START clears it. With streamed layers the same
    for the first parameter unit and STATUS.PARAM_TLAST_ERROR."""
    bench = Bench(dut)
    await bench.reset()
    ids, types = bench.s["sentences"][0]
    streamed = bench.params is not None
    await bench.run_sentence(ids, types, split_first_row=True, split_first_unit=streamed)
    flags = await bench.status()
    assert flags["tlast_error"] == 1 and flags["param_tlast_error"] == int(streamed)
    await bench.run_sentence(ids, types)
    flags = await bench.status()
    assert flags["tlast_error"] == 0 and flags["param_tlast_error"] == 0
    bench.save()
