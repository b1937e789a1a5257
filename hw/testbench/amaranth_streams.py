"""The encoder blocks' row streams in Amaranth's simulator (the cocotb testbenches do the same in
Verilog): beats offered on an input stream, beats taken from an output stream of lane arrays, both
paused at random.

``stream_rows`` drives one block and returns what came out and the cycles from the first beat
taken to the last beat out.
"""

from __future__ import annotations

from collections.abc import Callable

from amaranth.sim import Simulator


async def stream_phase(ctx, row_in, row_out, inputs: list, beats_out: int, budget: int, stall=None,
                       memory: Callable | None = None) -> tuple[list[list[int]], int]:
    """One phase inside a testbench: ``inputs`` offered on ``row_in`` until ``beats_out`` beats came
    out of ``row_out``; returns them and the cycles from the first beat taken to the last beat out.
    ``stall``, ``memory``: as for ``stream_rows``. Leaves both streams idle."""
    lanes = len(row_out.payload)
    out, times = [], {}

    def paused() -> bool:
        return stall is not None and stall.random() < 0.3

    cycle, sent = 0, 0
    while len(out) < beats_out:
        offer = sent < len(inputs) and not paused()
        ctx.set(row_in.valid, offer)
        if offer and isinstance(inputs[sent], int):
            ctx.set(row_in.payload, inputs[sent])
        elif offer:
            for lane, value in enumerate(inputs[sent]):
                ctx.set(row_in.payload[lane], int(value))
        ctx.set(row_out.ready, not paused())
        taken = offer and ctx.get(row_in.ready)
        if ctx.get(row_out.valid) and ctx.get(row_out.ready):
            out.append([ctx.get(row_out.payload[lane]) for lane in range(lanes)])
            times["last"] = cycle
        drive = memory(ctx) if memory is not None else None
        await ctx.tick()
        if taken:
            times.setdefault("first", cycle)
            sent += 1
        if drive is not None:
            drive(ctx)
        cycle += 1
        assert cycle < budget, "the unit stopped answering"
    ctx.set(row_in.valid, 0)
    ctx.set(row_out.ready, 0)
    return out, times["last"] - times["first"] + 1


def stream_rows(unit, inputs: list, budget: int, stall=None, memory: Callable | None = None,
                held: tuple = (), prologue: Callable | None = None, source: str = "row_in",
                sink: str = "row_out", beats_out: int | None = None) -> tuple[list[list[int]], int]:
    """``inputs``: beats of lane values for ``unit.row_in``, in a simulation of their own. ``stall``:
    a random generator pausing each stream on 30% of cycles. ``memory(ctx)``, called before each
    clock edge, samples a read port's address and returns the function that drives its data after
    the edge (read latency 1). ``held``: (signal, value) pairs set once. ``prologue(ctx)``: awaited
    first (memory writes, say). A beat is a list of lane values, or an int for a payload that is not
    a lane array. ``source`` and ``sink`` name other streams than row_in and row_out; ``beats_out``:
    the beats to wait for (as many as went in unless given). Fails if they have not come out within
    ``budget`` cycles."""
    result = []

    async def bench(ctx):
        for signal, value in held:
            ctx.set(signal, value)
        if prologue is not None:
            await prologue(ctx)
        result.append(await stream_phase(ctx, getattr(unit, source), getattr(unit, sink), inputs,
                                         len(inputs) if beats_out is None else beats_out, budget, stall, memory))

    simulator = Simulator(unit)
    simulator.add_clock(1e-8)
    simulator.add_testbench(bench)
    simulator.run()
    return result[0]
