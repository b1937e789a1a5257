"""The encoder on chip behind standard interfaces: AXI4-Lite for control, AXI4-Stream for the data.

``AxiEncoderSystem(plan, units, artifact_id)`` wraps the encoder on chip (encoder_accelerator.py)
as a block a Zynq or ECP5 system can instantiate (``bebert-hw gen --interface axi``). Ports, by
their Verilog names (clock ``clk``, synchronous reset ``rst``, active high):

* ``s_axil_*``: AXI4-Lite slave, 32-bit data, 8-bit byte addresses; the register map below
  (REGISTERS; docs/accelerator.md has it as a table);
* ``s_axis_embed_*``: AXI4-Stream slave (TDATA, TVALID, TREADY, TLAST): per member, per token,
  the summed embedding row, ``lanes`` values of ``value_bits`` bits a beat, lane 0 in the low bits,
  TDATA padded to whole bytes, TLAST on the last beat of each row (a TLAST elsewhere, or missing
  there, sets STATUS.TLAST_ERROR; the data is taken either way);
* ``s_axis_param_*`` (streamed layers only, ``gen --param-width W``): AXI4-Stream slave, W-bit
  TDATA: per sentence every member's parameter units (generator/param_stream.py), TLAST on the
  last beat of each unit (PARAM_BEATS beats a layer, PARAM_LAST_BEATS the member's last layer
  with the head); a TLAST out of place sets STATUS.PARAM_TLAST_ERROR (the data is taken either
  way). A driver may queue a sentence's units before START: the loader takes nothing while idle;
* ``m_axis_result_*``: AXI4-Stream master, one beat per sentence, the class in TDATA's low byte,
  TLAST high;
* ``irq``: high while STATUS.DONE and CONTROL.IRQ_ENABLE are both set.

A driver writes LENGTH, then CONTROL.START; streams the rows; reads the class from the result
stream (or waits for ``irq``); reads CYCLES and STALLS. START while busy, or with a LENGTH outside 1
to MAX_TOKENS, is ignored and sets STATUS.START_IGNORED. The build registers (FORMAT ... ARTIFACT)
let a driver refuse an artifact the images were not built from.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from amaranth import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .accelerator import COUNTER_BITS
from .blocks.axi_lite import AxiLiteRegisters, Register
from .design.plan import AcceleratorPlan
from .encoder_accelerator import EncoderAccelerator
from .encoder_units import EncoderUnits

FORMAT = 2  # the register map's version, FORMAT's low byte; bump it when the map changes
ADDRESS_BITS = 8
REGISTERS = {
    "control": Register(0x00, "rw"),  # bit 0 START (write 1; reads 0), bit 1 IRQ_ENABLE
    "status": Register(0x04, "w1c"),  # see STATUS_BITS; BUSY is read only
    "length": Register(0x08, "rw"),  # tokens of the next sentence
    "cycles_low": Register(0x0C, "ro"),  # cycles from START to the class taken (40 bits)
    "cycles_high": Register(0x10, "ro"),
    "stalls": Register(0x14, "ro"),  # of those, cycles a host stream kept the chip waiting (or could have)
    "sentences": Register(0x18, "ro"),  # classes sent since reset
    "format": Register(0x20, "ro"),  # [7:0] register map version, [15:8] activation bits, [23:16] members
    "array": Register(0x24, "ro"),  # [15:0] PE, [31:16] SIMD
    "max_tokens": Register(0x28, "ro"),
    "embed_format": Register(0x2C, "ro"),  # [7:0] lanes a beat, [15:8] bits a value, [23:16] beats a row
    "artifact": Register(0x30, "ro"),  # the first 32 bits of the artifact's SHA-256 (artifact_id)
    "param_width": Register(0x34, "ro"),  # bits a beat of the parameter stream; 0: parameters resident
    "param_beats": Register(0x38, "ro"),  # beats of a layer's parameter unit (streamed)
    "param_last_beats": Register(0x3C, "ro"),  # beats of a member's last unit: its last layer and the head
}
STATUS_BITS = {"busy": 0, "done": 1, "start_ignored": 2, "read_only_write": 3, "tlast_error": 4,
               "param_tlast_error": 5}
CONTROL_START, CONTROL_IRQ_ENABLE = 0, 1


def artifact_id(artifact: str | Path) -> int:
    """The first 32 bits (big-endian) of the SHA-256 of an artifact's files, sorted by name."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(artifact).iterdir() if p.is_file()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return int.from_bytes(digest.digest()[:4], "big")


def embed_data_bits(units: EncoderUnits) -> int:
    """TDATA width of the embedding stream: the lanes' bits in whole bytes."""
    r = units.residual
    return 8 * -(-(r.lanes * r.add_bits) // 8)


def build_registers(plan: AcceleratorPlan, units: EncoderUnits, artifact: int) -> dict[str, int]:
    """The read-only build registers' values."""
    a, r, cfg = units.attention, units.residual, plan.config
    streamed = {"param_width": cfg.param_width, "param_beats": plan.unit_beats(plan.param_units[0].name),
                "param_last_beats": plan.unit_beats(plan.param_units[-1].name)} if cfg.streamed else {}
    return {"format": FORMAT | cfg.act_bits << 8 | plan.ensemble_members << 16,
            "array": cfg.pe | cfg.simd << 16, "max_tokens": a.tokens,
            "embed_format": r.lanes | r.add_bits << 8 | r.beats << 16, "artifact": artifact,
            "param_width": 0, "param_beats": 0, "param_last_beats": 0, **streamed}


class AxiEncoderSystem(wiring.Component):
    def __init__(self, plan: AcceleratorPlan, units: EncoderUnits, artifact: int = 0):
        self.plan, self.units, self.artifact = plan, units, artifact
        self.bus = AxiLiteRegisters(REGISTERS, ADDRESS_BITS)
        members = {f"s_axil_{name}": (In if flow.flow == wiring.In else Out)(flow.shape)
                   for name, flow in self._bus_ports().items()}
        members |= {"s_axis_embed_tdata": In(embed_data_bits(units)), "s_axis_embed_tvalid": In(1),
                    "s_axis_embed_tready": Out(1), "s_axis_embed_tlast": In(1),
                    "m_axis_result_tdata": Out(8), "m_axis_result_tvalid": Out(1), "m_axis_result_tready": In(1),
                    "m_axis_result_tlast": Out(1), "irq": Out(1)}
        if plan.config.streamed:
            members |= {"s_axis_param_tdata": In(plan.config.param_width), "s_axis_param_tvalid": In(1),
                        "s_axis_param_tready": Out(1), "s_axis_param_tlast": In(1)}
        super().__init__(members)

    def _bus_ports(self) -> dict:
        """The AXI4-Lite ports of the register block, by AMBA name."""
        protocol = ("awaddr", "awvalid", "awready", "wdata", "wstrb", "wvalid", "wready", "bresp", "bvalid",
                    "bready", "araddr", "arvalid", "arready", "rdata", "rresp", "rvalid", "rready")
        return {name: self.bus.signature.members[name] for name in protocol}

    def elaborate(self, platform):
        m = Module()
        m.submodules.registers = bus = self.bus
        m.submodules.encoder = core = EncoderAccelerator(self.plan, self.units)
        registers = build_registers(self.plan, self.units, self.artifact)
        r, a = self.units.residual, self.units.attention
        for name, flow in self._bus_ports().items():
            port, inner = getattr(self, f"s_axil_{name}"), getattr(bus, name)
            m.d.comb += (inner.eq(port) if flow.flow == wiring.In else port.eq(inner))

        # ---- the data streams -------------------------------------------------------------------------
        value_bits = r.lanes * r.add_bits
        m.d.comb += [core.embed_in.payload.eq(self.s_axis_embed_tdata[:value_bits]),
                     core.embed_in.valid.eq(self.s_axis_embed_tvalid),
                     self.s_axis_embed_tready.eq(core.embed_in.ready),
                     self.m_axis_result_tdata.eq(core.result_out.payload),
                     self.m_axis_result_tvalid.eq(core.result_out.valid), self.m_axis_result_tlast.eq(1),
                     core.result_out.ready.eq(self.m_axis_result_tready)]
        beat = Signal(range(max(r.beats, 2)))  # the beat of the row the embedding stream is at
        tlast_error = Signal()
        with m.If(self.s_axis_embed_tvalid & self.s_axis_embed_tready):
            last = beat == r.beats - 1
            m.d.sync += beat.eq(0 if r.beats == 1 else (beat + 1) % r.beats)
            with m.If(self.s_axis_embed_tlast != last):
                m.d.sync += tlast_error.eq(1)

        # ---- control and status -----------------------------------------------------------------------
        length, irq_enable = Signal(16, init=1), Signal()  # wider than any build: no length wraps into range
        done, start_ignored, read_only_write = Signal(), Signal(), Signal()
        stalls, sentences = Signal(32), Signal(32)
        start = Signal()
        m.d.comb += core.length.eq(length)
        m.d.sync += core.start.eq(start)
        data = bus.write_data  # written whole: WSTRB is not used (a driver writes 32-bit words)
        m.d.comb += start.eq(0)
        with m.If(bus.write_control):
            m.d.sync += irq_enable.eq(data[CONTROL_IRQ_ENABLE])
            with m.If(data[CONTROL_START]):
                with m.If(core.busy | core.start | (length == 0) | (length > a.tokens)):
                    m.d.sync += start_ignored.eq(1)
                with m.Else():
                    m.d.comb += start.eq(1)
                    m.d.sync += [done.eq(0), stalls.eq(0), beat.eq(0), tlast_error.eq(0)]
        with m.If(bus.write_length):
            m.d.sync += length.eq(data[:16])
        param_tlast_error = Signal()
        sticky = {"done": done, "start_ignored": start_ignored, "read_only_write": read_only_write,
                  "tlast_error": tlast_error, "param_tlast_error": param_tlast_error}  # STATUS's write-1-to-clear bits
        with m.If(bus.write_status):
            for name, flag in sticky.items():
                with m.If(data[STATUS_BITS[name]]):
                    m.d.sync += flag.eq(0)
        with m.If(bus.read_only_write):
            m.d.sync += read_only_write.eq(1)
        with m.If(core.result_out.valid & core.result_out.ready):
            m.d.sync += [done.eq(1), sentences.eq(sentences + 1)]
        waiting = (core.embed_in.ready & ~self.s_axis_embed_tvalid) | (core.result_out.valid & ~self.m_axis_result_tready)
        if self.plan.config.streamed:  # a parameter beat the loader would take, not offered
            waiting |= core.param_in.ready & ~self.s_axis_param_tvalid
        with m.If(core.busy & waiting):
            m.d.sync += stalls.eq(stalls + 1)
        m.d.sync += self.irq.eq(done & irq_enable)

        # ---- the parameter stream (streamed layers): TLAST checked at each unit's last beat ----------
        if self.plan.config.streamed:
            plan = self.plan
            m.d.comb += [core.param_in.payload.eq(self.s_axis_param_tdata),
                         core.param_in.valid.eq(self.s_axis_param_tvalid),
                         self.s_axis_param_tready.eq(core.param_in.ready)]
            layer_beats, last_beats = registers["param_beats"], registers["param_last_beats"]
            param_beat = Signal(range(max(layer_beats, last_beats)))  # the beat within its unit
            unit = Signal(range(max(len(plan.param_units), 2)))  # the unit within its member
            with m.If(self.s_axis_param_tvalid & self.s_axis_param_tready):
                last_unit = unit == len(plan.param_units) - 1
                last = param_beat == Mux(last_unit, last_beats - 1, layer_beats - 1)
                m.d.sync += param_beat.eq(param_beat + 1)
                with m.If(last):
                    m.d.sync += [param_beat.eq(0), unit.eq(Mux(last_unit, 0, unit + 1))]
                with m.If(self.s_axis_param_tlast != last):
                    m.d.sync += param_tlast_error.eq(1)
            with m.If(start):
                m.d.sync += [param_beat.eq(0), unit.eq(0), param_tlast_error.eq(0)]

        status = {"busy": core.busy | core.start, **sticky}
        m.d.comb += [bus.read_control.eq(irq_enable << CONTROL_IRQ_ENABLE), bus.read_length.eq(length),
                     bus.read_status.eq(sum(flag << STATUS_BITS[name] for name, flag in status.items())),
                     bus.read_cycles_low.eq(core.cycles[:32]), bus.read_cycles_high.eq(core.cycles[32:COUNTER_BITS]),
                     bus.read_stalls.eq(stalls), bus.read_sentences.eq(sentences)]
        for name, value in registers.items():
            m.d.comb += getattr(bus, f"read_{name}").eq(value)
        return m
