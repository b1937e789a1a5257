"""The row store alone in Amaranth's simulator, then in Verilator and Icarus (cocotb): rows written beat
by beat in any order of rows, with gaps, at every ratio of widths both ways; each row's ``written``
pulse once its last beat is in; every (row, beat) read back READ_LATENCY cycles after its address.
In Verilog both with Amaranth's memory and as the generator writes it, with the hand-written
``bebert_ram`` (a write enable per lane of a narrow write)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator

from bebert.hw.blocks.ram import MODULE_NAME as RAM_MODULE
from bebert.hw.blocks.ram import VERILOG as RAM_VERILOG
from bebert.hw.blocks.row_store import READ_LATENCY, RowStore, RowStoreShape
from bebert.hw.flows.cosim import SIMULATORS, build, run
from bebert.hw.generator.platform import GeneratedVerilog
from cocotb_tools.check_results import get_results

# (rows, values, bits, write width, read width)
SHAPES = [(5, 384, 4, 8, 64), (3, 384, 1, 32, 64), (1, 64, 4, 32, 16), (4, 12, 4, 4, 2), (2, 10, 3, 1, 8),
          (3, 7, 4, 7, 7)]


@pytest.mark.parametrize("rows,values,bits,in_width,out_width", SHAPES)
def test_rows_read_back_as_written(rows, values, bits, in_width, out_width):
    shape = RowStoreShape(rows, values, bits, in_width, out_width)
    rng = np.random.default_rng(values + rows)
    order = list(rng.permutation(rows)) + [0]  # every row, then the first again over its old codes
    data = {i: rng.integers(0, 1 << bits, size=(shape.in_beats * in_width)) for i in range(len(order))}
    unit = RowStore(shape)
    pulses, reads = [], {}

    async def bench(ctx):
        for index, row in enumerate(order):
            for b in range(shape.in_beats):
                while rng.random() < 0.3:  # a gap
                    ctx.set(unit.write.valid, 0)
                    await ctx.tick()
                    if ctx.get(unit.written):
                        pulses.append(ctx.get(unit.written_row))
                ctx.set(unit.write.valid, 1)
                ctx.set(unit.write.payload.row, int(row))
                for lane in range(in_width):
                    ctx.set(unit.write.payload.codes[lane], int(data[index][b * in_width + lane]))
                await ctx.tick()
                ctx.set(unit.write.valid, 0)
                if ctx.get(unit.written):
                    pulses.append(ctx.get(unit.written_row))
        await ctx.tick()
        if ctx.get(unit.written):
            pulses.append(ctx.get(unit.written_row))
        addresses = [(r, b) for r in range(rows) for b in range(shape.out_beats)]
        for cycle in range(len(addresses) + READ_LATENCY - 1):
            if cycle < len(addresses):
                ctx.set(unit.read_row, addresses[cycle][0])
                ctx.set(unit.read_beat, addresses[cycle][1])
            await ctx.tick()
            if cycle + 1 >= READ_LATENCY:
                done = cycle + 1 - READ_LATENCY
                reads[addresses[done]] = [ctx.get(unit.read_data[lane]) for lane in range(out_width)]

    simulator = Simulator(unit)
    simulator.add_clock(1e-8)
    simulator.add_testbench(bench)
    simulator.run()
    assert pulses == [int(r) for r in order]
    final = {int(row): data[index] for index, row in enumerate(order)}  # the last write of each row
    for (row, b), got in reads.items():
        want = np.concatenate([final[row], np.zeros(out_width, dtype=np.int64)])[b * out_width:(b + 1) * out_width]
        lanes = min(out_width, values - b * out_width)
        assert got[:lanes] == list(want[:lanes]), (row, b)


def test_widths_that_do_not_divide_are_refused():
    with pytest.raises(ValueError, match="not 12 into 64"):
        RowStoreShape(4, 384, 4, 12, 64)


@pytest.mark.parametrize("simulator", SIMULATORS)
@pytest.mark.parametrize("generated", [False, True], ids=["amaranth_memory", "bebert_ram"])
@pytest.mark.parametrize("rows,values,bits,in_width,out_width", [(3, 20, 3, 2, 8)])
def test_row_store_in_verilog(tmp_path: Path, simulator, generated, rows, values, bits, in_width, out_width):
    shape = RowStoreShape(rows, values, bits, in_width, out_width)
    source, ram = tmp_path / "store.v", tmp_path / f"{RAM_MODULE}.v"
    text = verilog.convert(RowStore(shape), name="store", platform=GeneratedVerilog("store") if generated else None,
                           emit_src=False)
    assert (f"{RAM_MODULE} #(" in text) == generated
    source.write_text(text)
    ram.write_text(RAM_VERILOG)
    runner = build([ram, source] if generated else [source], "store", tmp_path / "build", simulator=simulator)
    results = run(runner, "bebert.hw.testbench.row_blocks", "store", tmp_path,
                  {"rows": rows, "values": values, "bits": bits, "in_width": in_width,
                   "out_width": out_width, "seed": values}, testcase="row_store_reads_back")
    tests, failures = get_results(Path(results))
    assert tests == 1 and failures == 0, f"see {tmp_path}"
