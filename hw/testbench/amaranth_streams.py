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
                       memory: Callable | None = None, tags: tuple | None = None,
                       read: Callable | None = None) -> tuple[list[list[int]], int]:
    """One phase inside a testbench: ``inputs`` offered on ``row_in`` until ``beats_out`` beats came
    out of ``row_out``; returns them and the cycles from the first beat taken to the last beat out.
    ``stall``, ``memory``: as for ``stream_rows``. ``tags``: (a side stream, its payloads as dicts of
    field values), offered one after another beside the rows (a row's tag, taken with its first
    beat). ``read(ctx, payload)``: one beat out as a list (by default the payload's lanes). Leaves
    the streams idle."""
    read = read or (lambda ctx, payload: [ctx.get(payload[lane]) for lane in range(len(payload))])
    out, times = [], {}
    tag_stream, tag_values = tags if tags is not None else (None, [])
    tagged = 0

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
        tag_taken = False
        if tag_stream is not None:
            ctx.set(tag_stream.valid, tagged < len(tag_values))
            if tagged < len(tag_values):
                for name, value in tag_values[tagged].items():
                    ctx.set(getattr(tag_stream.payload, name), value)
                tag_taken = ctx.get(tag_stream.ready)
        taken = offer and ctx.get(row_in.ready)
        if ctx.get(row_out.valid) and ctx.get(row_out.ready):
            out.append(read(ctx, row_out.payload))
            times["last"] = cycle
        drive = memory(ctx) if memory is not None else None
        await ctx.tick()
        tagged += tag_taken
        if taken:
            times.setdefault("first", cycle)
            sent += 1
        if drive is not None:
            drive(ctx)
        cycle += 1
        assert cycle < budget, "the unit stopped answering"
    ctx.set(row_in.valid, 0)
    ctx.set(row_out.ready, 0)
    if tag_stream is not None:
        ctx.set(tag_stream.valid, 0)
    return out, times["last"] - times["first"] + 1


def image_reads(ports: list[tuple]) -> Callable:
    """A ``memory`` callback that reads parameter images: for each (address, data, words), the word
    of ``words`` (an image's words as integers) at the address is on ``data`` one cycle later.
    ``address`` is a signal, or (signal, base) for a read at base + the signal; ``data`` a signal or
    a view given the whole word, or a tuple of them given its fields, least significant first (an
    address past the image reads 0)."""
    def memory(ctx):
        values = []
        for address, data, words in ports:
            signal, base = address if isinstance(address, tuple) else (address, 0)
            index = base + ctx.get(signal)
            values.append((data, words[index] if index < len(words) else 0))

        def drive(ctx):
            for data, value in values:
                for port in data if isinstance(data, tuple) else (data,):
                    port = port.as_value() if hasattr(port, "as_value") else port
                    ctx.set(port, value & ((1 << len(port)) - 1))
                    value >>= len(port)
        return drive
    return memory


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
