"""The PE array in Verilator and Icarus Verilog (cocotb): whole products over several PE, SIMD and code kinds, including
non-powers of two, K not a multiple of SIMD, and the worst-case accumulations, against NumPy."""

from __future__ import annotations

from pathlib import Path

import pytest
from amaranth.back import verilog

from bebert.hw.blocks.compressor import MODULE_NAME as LUT_MODULE
from bebert.hw.blocks.compressor import VERILOG as LUT_VERILOG
from bebert.hw.flows.cosim import SIMULATORS, build, run
from bebert.hw.blocks.pe_array import PEArray
from bebert.sim.gemm import accumulator_bits
from cocotb_tools.check_results import get_results

def run_pe_array(tmp: Path, pe: int, simd: int, bits: int, kind: str, k: int, simulator: str = "verilator") -> None:
    width = accumulator_bits(k, 1 if kind == "bipolar" else bits, kind != "unsigned")
    source, cells = tmp / "pe_array.v", tmp / f"{LUT_MODULE}.v"
    cells.write_text(LUT_VERILOG)
    modes = ("xnor",) if kind == "bipolar" else ("and",) if kind == "signed" else ("and", "xnor")
    source.write_text(verilog.convert(PEArray(pe, simd, width, modes, bits), name="pe_array", emit_src=False))
    runner = build([cells, source], "pe_array", tmp / "build", simulator=simulator)
    results = run(runner, "bebert.hw.testbench.pe_array", "pe_array", tmp,
                  {"pe": pe, "simd": simd, "bits": bits, "kind": kind, "k": k, "rows": 6, "seed": pe * 1000 + simd})
    tests, failures = get_results(Path(results))
    assert tests == 1 and failures == 0, f"see {tmp / 'bebert.hw.testbench.pe_array.log'}"


@pytest.mark.parametrize("pe,simd,bits,kind,k", [
    (3, 7, 4, "signed", 40),  # non-powers of two, K not a multiple of SIMD
    (5, 13, 1, "bipolar", 64),  # XNOR mode
    (4, 16, 4, "unsigned", 48),  # attention-probability-like unsigned codes, on a two-mode array
])
@pytest.mark.parametrize("simulator", SIMULATORS)
def test_pe_array_products(tmp_path, pe, simd, bits, kind, k, simulator):
    run_pe_array(tmp_path, pe, simd, bits, kind, k, simulator)


@pytest.mark.parametrize("width", [1, 5, 6, 7, 13, 64, 100])
def test_popcount_in_amaranths_simulator(width):
    """The output unit's small popcount (logic) counts bits exactly (random values, all zeros, all ones)."""
    import random

    from amaranth import Module, Signal
    from amaranth.sim import Simulator

    from bebert.hw.blocks.compressor import popcount

    m = Module()
    value = Signal(width)
    count = popcount(m, value, "count")
    simulator = Simulator(m)
    rng = random.Random(width)

    async def bench(ctx):
        for v in [0, 2**width - 1] + [rng.getrandbits(width) for _ in range(100)]:
            ctx.set(value, v)
            assert ctx.get(count) == bin(v).count("1")

    simulator.add_testbench(bench)
    simulator.run()


@pytest.mark.parametrize("kind", ["bits", "and", "xnor", "select"])
@pytest.mark.parametrize("width", [1, 2, 5, 7, 13, 64])
def test_compressor_in_amaranths_simulator(kind, width):
    """The compressor tree counts exactly, counter tables and all (the same tables as its LUT
    instances, as Amaranth logic): random values, all zeros, all ones, both modes."""
    import random

    from amaranth import Module, Signal
    from amaranth.sim import Simulator

    from bebert.hw.blocks.compressor import compressor_popcount, logic_cell, product

    m = Module()
    x, w, mode = Signal(width), Signal(width), Signal()
    inputs = [x[i] for i in range(width)] if kind == "bits" else [(x[i], w[i]) for i in range(width)]
    count = compressor_popcount(m, inputs, kind, "count", mode=mode, cell=logic_cell(m))
    simulator = Simulator(m)
    rng = random.Random(width)
    ones = 2**width - 1
    cases = [(0, 0, 0), (ones, ones, 0), (ones, 0, 1)] + [(rng.getrandbits(width), rng.getrandbits(width), rng.getrandbits(1))
                                                         for _ in range(60)]

    async def bench(ctx):
        for xv, wv, xnor in cases:
            ctx.set(x, xv)
            ctx.set(w, wv)
            ctx.set(mode, xnor)
            bits = [(xv >> i) & 1 for i in range(width)]
            expected = sum(bits) if kind == "bits" else \
                sum(product(kind, bits[i], (wv >> i) & 1, xnor) for i in range(width))
            assert ctx.get(count) == expected

    simulator.add_testbench(bench)
    simulator.run()
