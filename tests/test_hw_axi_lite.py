"""The AXI4-Lite register block (hw/blocks/axi_lite.py) in Amaranth's simulator: a write's address and
data in either order and apart, its response held while BREADY is low, reads back to back with RREADY
low, the responses (OKAY, SLVERR) and strobes as its docstring states. The whole shell under
cocotbext-axi's random pauses is tests/test_hw_axi_system.py."""

from __future__ import annotations

import gc
import warnings

import pytest
from amaranth.hdl import UnusedElaboratable
from amaranth.sim import Simulator

from bebert.hw.blocks.axi_lite import OKAY, SLVERR, AxiLiteRegisters, Register

REGISTERS = {"knob": Register(0x00, "rw"), "flags": Register(0x04, "w1c"), "id": Register(0x08, "ro"),
             "kick": Register(0x0C, "wo")}


def run(bench_body):
    bus = AxiLiteRegisters(REGISTERS)
    simulator = Simulator(bus)
    simulator.add_clock(1e-8)
    seen = []

    async def bench(ctx):
        ctx.set(bus.read_knob, 0x1234)
        ctx.set(bus.read_flags, 0x5)
        ctx.set(bus.read_id, 0xCAFE)
        await bench_body(ctx, bus, seen)

    simulator.add_testbench(bench)
    simulator.run()
    return seen


LIMIT = 20  # cycles any handshake may take; a block that never answers fails instead of hanging


async def until(ctx, signal, what: str, on_tick=lambda: None):
    """Tick until ``signal`` is high, at most LIMIT cycles."""
    for _ in range(LIMIT):
        if ctx.get(signal):
            return
        await ctx.tick()
        on_tick()
    raise AssertionError(f"{what} not within {LIMIT} cycles")


async def write(ctx, bus, address, data, data_first=False, gap=0, bready_after=0):
    """One write: address and data ``gap`` cycles apart (data first if asked), BREADY held low
    ``bready_after`` cycles after BVALID; returns (BRESP, the strobes seen, cycles BVALID was held)."""
    strobes = set()

    def watch():
        for name, reg in REGISTERS.items():
            if reg.writable and ctx.get(getattr(bus, f"write_{name}")):
                strobes.add((name, ctx.get(bus.write_data)))
        if ctx.get(bus.read_only_write):
            strobes.add(("read_only_write", None))

    first, second = ((bus.wvalid, bus.wready), (bus.awvalid, bus.awready)) if data_first else \
        ((bus.awvalid, bus.awready), (bus.wvalid, bus.wready))
    ctx.set(bus.awaddr, address)
    ctx.set(bus.wdata, data)
    for valid, ready in (first, second):
        ctx.set(valid, 1)
        await until(ctx, ready, "AWREADY or WREADY", watch)
        await ctx.tick()
        watch()
        ctx.set(valid, 0)
        for _ in range(gap):
            await ctx.tick()
            watch()
    await until(ctx, bus.bvalid, "BVALID", watch)
    held = 0
    for _ in range(bready_after):
        await ctx.tick()
        watch()
        assert ctx.get(bus.bvalid), "BVALID dropped before BREADY"
        held += 1
    response = ctx.get(bus.bresp)
    ctx.set(bus.bready, 1)
    await ctx.tick()
    watch()
    ctx.set(bus.bready, 0)
    assert not ctx.get(bus.bvalid)
    for _ in range(2):
        await ctx.tick()
        watch()
    return response, strobes, held


async def read(ctx, bus, address, rready_after=0):
    ctx.set(bus.araddr, address)
    ctx.set(bus.arvalid, 1)
    await until(ctx, bus.arready, "ARREADY")
    await ctx.tick()
    ctx.set(bus.arvalid, 0)
    await until(ctx, bus.rvalid, "RVALID")
    for _ in range(rready_after):
        await ctx.tick()
        assert ctx.get(bus.rvalid) and not ctx.get(bus.arready), "RVALID dropped, or a read taken while one waits"
    data, response = ctx.get(bus.rdata), ctx.get(bus.rresp)
    ctx.set(bus.rready, 1)
    await ctx.tick()
    ctx.set(bus.rready, 0)
    return data, response


@pytest.mark.parametrize("data_first,gap", [(False, 0), (False, 3), (True, 0), (True, 5)])
def test_a_write_completes_with_address_and_data_in_either_order(data_first, gap):
    async def body(ctx, bus, seen):
        seen.append(await write(ctx, bus, 0x00, 0xDEADBEEF, data_first, gap, bready_after=4))

    [(response, strobes, held)] = run(body)
    assert response == OKAY and strobes == {("knob", 0xDEADBEEF)} and held == 4


def test_responses_and_strobes_by_access():
    async def body(ctx, bus, seen):
        for address in (0x04, 0x08, 0x0C, 0x10):
            seen.append(await write(ctx, bus, address, 7))

    flags, read_only, kick, unmapped = run(body)
    assert flags[:2] == (OKAY, {("flags", 7)})
    assert read_only[:2] == (OKAY, {("read_only_write", None)})  # ignored, reported
    assert kick[:2] == (OKAY, {("kick", 7)})
    assert unmapped[:2] == (SLVERR, set())  # nothing written


def test_reads_back_to_back_and_held_while_rready_is_low():
    async def body(ctx, bus, seen):
        for address, wait in ((0x00, 3), (0x04, 0), (0x08, 1), (0x0C, 0), (0x40, 2)):
            seen.append(await read(ctx, bus, address, wait))

    assert run(body) == [(0x1234, OKAY), (0x5, OKAY), (0xCAFE, OKAY), (0, OKAY), (0, SLVERR)]


def test_a_bad_register_map_is_refused():
    # the refused objects exist (Amaranth counts them at creation) but are never elaborated: collect
    # them here, where their UnusedElaboratable warning is expected, not during a later test
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)
        for registers, words in (({"a": Register(0, "rw"), "b": Register(0, "ro")}, "share an address"),
                                 ({"a": Register(2, "rw")}, "word address")):
            with pytest.raises(ValueError, match=words) as refused:
                AxiLiteRegisters(registers)
            del refused
            gc.collect()
