"""cocotb testbench of the PE array alone (tests/test_hw_pe_array.py runs it): whole matrix products against a plain NumPy product.

Settings (BEBERT_COSIM): pe, simd, bits, kind ("signed", "unsigned" or "bipolar"), k, rows, seed.
Each row of codes is driven plane by plane (most significant first) and fold by fold, as the
controller does; after the
last pass every lane's accumulator must equal the row's integer product with its weights. The
rows include the worst cases: every product at its largest positive and negative magnitude.
"""

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from bebert.hw.flows.cosim import settings
from bebert.hw.host import beat_lanes, stored_codes
from bebert.hw.testbench.streams import resolved
from bebert.sim.program import Codes


def pack(bits_row):
    return int("".join(str(int(b)) for b in bits_row[::-1]) or "0", 2)


@cocotb.test()
async def products_equal_numpy(dut):
    s = settings()
    pe, simd, bits, kind, k = s["pe"], s["simd"], s["bits"], s["kind"], s["k"]
    rng = np.random.default_rng(s["seed"])
    kind_codes = Codes(1 if kind == "bipolar" else bits, kind != "unsigned", kind == "bipolar")
    lo, hi = kind_codes.low, kind_codes.high
    rows = [rng.integers(lo, hi + 1, size=k) for _ in range(s["rows"])]
    rows += [np.full(k, lo), np.full(k, hi)]
    if kind == "bipolar":
        rows = [np.where(r > 0, 1, -1) for r in rows]
    weights = np.where(rng.integers(0, 2, size=(pe, k)) > 0, 1, -1)
    weights[0] = 1  # worst cases: one lane all +1, one all -1
    weights[-1] = -1
    folds = -(-k // simd)
    padded_w = np.zeros((pe, folds * simd), dtype=np.int64)
    padded_w[:, :k] = weights > 0
    words = [pack(np.concatenate([padded_w[p, i * simd:(i + 1) * simd] for p in range(pe)])) for i in range(folds)]

    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 0
    dut.enable.value = 0
    await RisingEdge(dut.clk)
    planes = 1 if kind == "bipolar" else bits
    for row in rows:
        stored = stored_codes(row, kind_codes)
        padded = np.zeros(folds * simd, dtype=np.int64)
        padded[:k] = stored
        for j in reversed(range(planes)):  # most significant plane first, as the controller runs them
            for i in range(folds):
                dut.activations.value = pack((padded[i * simd:(i + 1) * simd] >> j) & 1)
                dut.weights.value = words[i]
                dut.xnor_mode.value = int(kind == "bipolar")
                dut.valid.value = min(simd, k - i * simd)
                dut.negative.value = int(kind == "bipolar" or (kind == "signed" and j == bits - 1))
                dut.clear.value = int(i == 0 and j == planes - 1)
                dut.plane.value = j
                dut.enable.value = 1
                await RisingEdge(dut.clk)
        dut.enable.value = 0
        await ReadOnly()
        got = beat_lanes(resolved(dut.accumulators), pe, len(dut.accumulators) // pe)
        expected = (weights @ row).tolist()
        assert got == expected, f"row {row.tolist()[:8]}...: lanes {got} != {expected}"
        await RisingEdge(dut.clk)
    dut._log.info("PE array pe=%d simd=%d bits=%d %s k=%d: %d rows equal NumPy", pe, simd, bits, kind, k, len(rows))
