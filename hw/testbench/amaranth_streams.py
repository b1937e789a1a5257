"""The encoder blocks' row streams in Amaranth's simulator (the cocotb testbenches do the same in
Verilog): beats offered on ``row_in``, beats taken from ``row_out``, both paused at random.

``stream_rows`` drives one block whose ports are ``row_in`` / ``row_out`` streams of lane arrays and
returns what came out and the cycles from the first beat taken to the last beat out.
"""

from __future__ import annotations

from collections.abc import Callable

from amaranth.sim import Simulator


def stream_rows(unit, inputs: list, budget: int, stall=None, memory: Callable | None = None,
                held: tuple = ()) -> tuple[list[list[int]], int]:
    """``inputs``: beats of lane values for ``unit.row_in``. ``stall``: a random generator pausing
    each stream on 30% of cycles. ``memory(ctx)``, called before each clock edge, samples a read
    port's address and returns the function that drives its data after the edge (read latency 1).
    ``held``: (signal, value) pairs set once. Fails if no beat comes out within ``budget`` cycles."""
    lanes = len(unit.row_out.payload)
    out, times = [], {}

    def paused() -> bool:
        return stall is not None and stall.random() < 0.3

    async def bench(ctx):
        for signal, value in held:
            ctx.set(signal, value)
        cycle, sent = 0, 0
        while len(out) < len(inputs):
            offer = sent < len(inputs) and not paused()
            ctx.set(unit.row_in.valid, offer)
            if offer:
                for lane in range(lanes):
                    ctx.set(unit.row_in.payload[lane], int(inputs[sent][lane]))
            ctx.set(unit.row_out.ready, not paused())
            taken = offer and ctx.get(unit.row_in.ready)
            if ctx.get(unit.row_out.valid) and ctx.get(unit.row_out.ready):
                out.append([ctx.get(unit.row_out.payload[lane]) for lane in range(lanes)])
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

    simulator = Simulator(unit)
    simulator.add_clock(1e-8)
    simulator.add_testbench(bench)
    simulator.run()
    return out, times["last"] - times["first"] + 1
