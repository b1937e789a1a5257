"""An AXI4-Lite slave of 32-bit registers: the protocol and the address decode, not the registers.

``AxiLiteRegisters(registers)`` takes a register map, name -> ``Register(address, access)``, with
access ``"rw"`` (read and written), ``"ro"`` (read only), ``"w1c"`` (read; a written 1 clears a
bit) or ``"wo"`` (written only, reads 0). Its ports are the AXI4-Lite slave's (``awaddr`` ...
``rready``, AMBA names without a prefix; no ``awprot``/``arprot``: protection is not used) and, per
register, ``read_<name>`` (the value a read returns, driven by the owner) and ``write_<name>`` (one
cycle high when a write to it completes, with ``write_data`` and ``write_strb``). The owner keeps
the registers and their meaning (the system top, hw/axi_system.py).

Behaviour: one write and one read in flight at a time; a write's address and data are taken in
either order, and its response follows the cycle both are held; a read's data follows its address
by one cycle. Responses: OKAY for a mapped address; a write to a read-only register is OKAY, does
nothing, and pulses ``read_only_write`` (the owner reports it in a status bit); an unmapped address
answers SLVERR (a write does nothing, a read returns 0). Every output is a flip-flop or a gate of
flip-flops, zero after reset.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

DATA_BITS = 32
OKAY, SLVERR = 0b00, 0b10
ACCESSES = ("rw", "ro", "w1c", "wo")


@dataclass(frozen=True)
class Register:
    address: int  # byte address, a multiple of 4
    access: str

    @property
    def readable(self) -> bool:
        return self.access != "wo"

    @property
    def writable(self) -> bool:
        return self.access != "ro"


class AxiLiteRegisters(wiring.Component):
    def __init__(self, registers: dict[str, Register], address_bits: int = 8):
        for name, reg in registers.items():
            if reg.access not in ACCESSES or reg.address % 4 or not 0 <= reg.address < 1 << address_bits:
                raise ValueError(f"register {name}: {reg} is not a word address of {address_bits} bits with an "
                                 f"access of {ACCESSES}")
        if len({r.address for r in registers.values()}) != len(registers):
            raise ValueError("two registers share an address")
        self.registers, self.address_bits = dict(registers), address_bits
        members = {
            "awaddr": In(address_bits), "awvalid": In(1), "awready": Out(1),
            "wdata": In(DATA_BITS), "wstrb": In(DATA_BITS // 8), "wvalid": In(1), "wready": Out(1),
            "bresp": Out(2), "bvalid": Out(1), "bready": In(1),
            "araddr": In(address_bits), "arvalid": In(1), "arready": Out(1),
            "rdata": Out(DATA_BITS), "rresp": Out(2), "rvalid": Out(1), "rready": In(1),
            "write_data": Out(DATA_BITS), "read_only_write": Out(1),
        }
        for name, reg in registers.items():
            if reg.readable:
                members[f"read_{name}"] = In(DATA_BITS)
            if reg.writable:
                members[f"write_{name}"] = Out(1)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        # ---- writes: the address and the data held until both are here, then one response -------------
        address, address_held = Signal(self.address_bits), Signal()
        data_held = Signal()
        m.d.comb += [self.awready.eq(~address_held & ~self.bvalid), self.wready.eq(~data_held & ~self.bvalid)]
        with m.If(self.awvalid & self.awready):
            m.d.sync += [address.eq(self.awaddr), address_held.eq(1)]
        with m.If(self.wvalid & self.wready):
            m.d.sync += [self.write_data.eq(self.wdata), data_held.eq(1)]
        m.d.sync += self.read_only_write.eq(0)
        for name, reg in self.registers.items():
            if reg.writable:
                m.d.sync += getattr(self, f"write_{name}").eq(0)
        with m.If(address_held & data_held):
            m.d.sync += [address_held.eq(0), data_held.eq(0), self.bvalid.eq(1), self.bresp.eq(SLVERR)]
            with m.Switch(address):
                for name, reg in self.registers.items():
                    with m.Case(reg.address):
                        m.d.sync += self.bresp.eq(OKAY)
                        if reg.writable:
                            m.d.sync += getattr(self, f"write_{name}").eq(1)
                        else:
                            m.d.sync += self.read_only_write.eq(1)
        with m.If(self.bvalid & self.bready):
            m.d.sync += self.bvalid.eq(0)
        # ---- reads: the data one cycle after the address ------------------------------------------------
        m.d.comb += self.arready.eq(~self.rvalid)
        with m.If(self.arvalid & self.arready):
            m.d.sync += [self.rvalid.eq(1), self.rdata.eq(0), self.rresp.eq(SLVERR)]
            with m.Switch(self.araddr):
                for name, reg in self.registers.items():
                    with m.Case(reg.address):
                        m.d.sync += self.rresp.eq(OKAY)
                        if reg.readable:
                            m.d.sync += self.rdata.eq(getattr(self, f"read_{name}"))
        with m.If(self.rvalid & self.rready):
            m.d.sync += self.rvalid.eq(0)
        return m
