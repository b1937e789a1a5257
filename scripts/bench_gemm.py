"""Throughput of the simulator's binary GEMM engines against torch's fp32 matrix product.

Shapes are MiniLM's (64 tokens x 384 -> 384 and 64 x 384 -> 1536). Prints, for each shape, the
median time per product and the ratio of each engine's throughput to torch fp32 on the same
machine in the same run (ratio > 1: faster than torch). 1-bit (XNOR) and 4-bit (bit-serial) rows.

    python scripts/bench_gemm.py [--repeats 20]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from bebert import bitpack
from bebert.sim.gemm import bitserial_matmul, xnor_popcount

SHAPES = [(64, 384, 384), (64, 384, 1536)]  # (tokens M, K, outputs N)


def median_time(fn, repeats: int) -> float:
    fn()  # warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; numpy {np.__version__}")
    print(f"{'shape (M x K -> N)':<20} {'torch fp32 ms':>13} {'engine':>16} {'ms':>8} {'vs torch':>9}")
    for m, k, n in SHAPES:
        a = np.where(rng.random((m, k)) < 0.5, -1, 1)
        w = np.where(rng.random((n, k)) < 0.5, -1, 1)
        x4 = rng.integers(-8, 8, size=(m, k))
        ta, tw = torch.tensor(a, dtype=torch.float32), torch.tensor(w, dtype=torch.float32)
        torch_s = median_time(lambda: ta @ tw.T, args.repeats)
        pa, pw = bitpack.pack_signs(a), bitpack.pack_signs(w)
        runs = {f"xnor {e}": (lambda e=e: xnor_popcount(pa, pw, k, e)) for e in ("literal", "fast")}
        runs.update({f"4-bit {e}": (lambda e=e: bitserial_matmul(x4, pw, k, 4, True, e)) for e in ("literal", "fast")})
        for name, fn in runs.items():
            s = median_time(fn, args.repeats)
            print(f"{f'{m} x {k} -> {n}':<20} {torch_s * 1e3:>13.3f} {name:>16} {s * 1e3:>8.3f} {torch_s / s:>8.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
