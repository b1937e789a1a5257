"""The simulator's speed: its GEMM engines against torch's fp32 product, and the whole SST-2 dev set.

Part 1, shapes of MiniLM (64 tokens x 384 -> 384 and 64 x 384 -> 1536): the median time per
product and each engine's throughput as a ratio to torch fp32 on the same machine in the same run
(> 1: faster than torch), for 1-bit (XNOR-popcount) and 4-bit (bit-serial AND-popcount) inputs.
Part 2: the built-in model (2 members, 1-1-4) on all 872 SST-2 dev sentences through the integer
datapath with the fast engine: compile time, run time, accuracy. Run it on an otherwise idle
machine; the figures are only comparable within one run.

    python scripts/bench_sim.py [--repeats 20] [--glue-dir DIR]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from bebert import bitpack
from bebert import glue
from bebert.builtin import BUILTIN_DIR
from bebert.sim.ensemble import load_simulation
from bebert.sim.gemm import bitserial_matmul, xnor_popcount
from bebert.sim.tokens import SentenceTokenizer

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
    parser.add_argument("--glue-dir")
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

    started = time.perf_counter()
    simulation = load_simulation(BUILTIN_DIR)
    compiled = time.perf_counter() - started
    examples = glue.load_split("sst2", "dev", args.glue_dir)
    tokenizer = SentenceTokenizer(simulation.manifest["recipe"]["backbone"], simulation.manifest["recipe"]["max_length"])
    ids, types = tokenizer.encode_examples(examples)
    answers = simulation.join(simulation.member_logits(ids, types, engine="fast"))
    total = time.perf_counter() - started
    accuracy = 100.0 * float(np.mean(answers == np.array([e.label for e in examples])))
    print(f"SST-2 dev, built-in model ({len(simulation.members)} members), integer datapath, fast engine: "
          f"{len(examples)} sentences in {total:.1f} s (compile {compiled:.1f} s, run {total - compiled:.1f} s), "
          f"accuracy {accuracy:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
