"""The PE array in Verilator (cocotb): whole products over several PE, SIMD and code kinds, including
non-powers of two, K not a multiple of SIMD, and the worst-case accumulations, against NumPy."""

from __future__ import annotations

from pathlib import Path

import pytest
from amaranth.back import verilog

from bebert.hw.cosim import build, run
from bebert.hw.pe_array import PEArray
from bebert.sim.gemm import accumulator_bits
from cocotb_tools.check_results import get_results

def run_pe_array(tmp: Path, pe: int, simd: int, bits: int, kind: str, k: int) -> None:
    width = accumulator_bits(k, 1 if kind == "bipolar" else bits, kind != "unsigned")
    source = tmp / "pe_array.v"
    modes = ("xnor",) if kind == "bipolar" else ("and",) if kind == "signed" else ("and", "xnor")
    source.write_text(verilog.convert(PEArray(pe, simd, width, modes), name="pe_array", emit_src=False))
    runner = build([source], "pe_array", tmp / "build")
    results = run(runner, "bebert.hw.testbench.pe_array", "pe_array", tmp,
                  {"pe": pe, "simd": simd, "bits": bits, "kind": kind, "k": k, "rows": 6, "seed": pe * 1000 + simd})
    tests, failures = get_results(Path(results))
    assert tests == 1 and failures == 0, f"see {tmp / 'bebert.hw.testbench.pe_array.log'}"


@pytest.mark.parametrize("pe,simd,bits,kind,k", [
    (3, 7, 4, "signed", 40),  # non-powers of two, K not a multiple of SIMD
    (5, 13, 1, "bipolar", 64),  # XNOR mode
    (4, 16, 4, "unsigned", 48),  # attention-probability-like unsigned codes, on a two-mode array
])
def test_pe_array_products(tmp_path, pe, simd, bits, kind, k):
    run_pe_array(tmp_path, pe, simd, bits, kind, k)


@pytest.mark.parametrize("width", [1, 5, 6, 7, 13, 64, 100])
def test_popcount_in_amaranths_simulator(width):
    """The LUT-leaf compressor tree counts bits exactly (random values, all zeros, all ones)."""
    import random

    from amaranth import Module, Signal
    from amaranth.sim import Simulator

    from bebert.hw.pe_array import popcount

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
