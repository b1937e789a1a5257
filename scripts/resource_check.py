"""The resource model against real synthesis (Yosys synth_xilinx) at fixed configurations.

    python scripts/resource_check.py [--workers N] [--scheduler tcp://host:8786] [--fit] [--out results/resources.md]

Synthesizes each configuration (hw/synth.py: per module, cached by a hash of the Verilog, so a
re-run costs nothing), evaluates the resource model (each block's ``*_resources`` beside its RTL)
and writes the table of both with the error per resource. ``--fit`` also prints the least-squares
coefficients of the block models from these syntheses (how the constants in the block files were
found).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from bebert.hw.dse import DesignPoint, run_points

REPO = Path(__file__).resolve().parents[1]

# PE 8 to 128, SIMD 32 to 128, 1 to 4 members resident, 1- and 4-bit activations.
CONFIGS = [
    DesignPoint("builtin", 8, 32, 2, 4, "multiplexed"),
    DesignPoint("builtin", 16, 64, 1, 4, "multiplexed"),
    DesignPoint("builtin", 32, 128, 2, 4, "multiplexed"),
    DesignPoint("builtin", 64, 64, 2, 4, "multiplexed"),
    DesignPoint("builtin", 128, 32, 1, 4, "multiplexed"),
    DesignPoint("minilm:1-1-4:4", 16, 32, 4, 4, "multiplexed"),
    DesignPoint("minilm:1-1-1:4", 32, 32, 4, 1, "multiplexed"),
    DesignPoint("minilm:1-1-1:4", 64, 128, 2, 1, "multiplexed"),
    DesignPoint("minilm:1-1-1:4", 128, 64, 4, 1, "multiplexed"),
    DesignPoint("bert-base:1-1-4:2", 64, 64, 1, 4, "multiplexed"),
]
CHECKED = ("lut", "ff")
EXACT = ("bram36", "bram18")
TOLERANCE = 0.15


def error(row: dict, field: str) -> float:
    synth = row[f"synth_{field}"]
    return (row[f"model_{field}"] - synth) / synth if synth else 0.0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--scheduler", default=None)
    parser.add_argument("--out", default=str(REPO / "results" / "resources.md"))
    args = parser.parse_args(argv)
    started = time.perf_counter()
    result = run_points(CONFIGS, tokens=32, synthesize=True, scheduler=args.scheduler, workers=args.workers)
    print(f"{len(CONFIGS)} configurations in {time.perf_counter() - started:.0f} s "
          f"({result.synthesis_seconds:.0f} s of Yosys for jobs not in the cache)")
    header = "| model | PE | SIMD | resident | act bits | LUT model / synth (err) | FF model / synth (err) | " \
             "BRAM36 model / synth | BRAM18 model / synth | DSP model / synth |"
    lines = [header, "| " + " | ".join(["---"] * 10) + " |"]
    worst = {f: 0.0 for f in CHECKED}
    exact = True
    for row in result.rows:
        cells = [row["model"], row["pe"], row["simd"], row["resident"], row["act_bits"]]
        for f in CHECKED:
            err = error(row, f)
            worst[f] = max(worst[f], abs(err))
            cells.append(f"{row[f'model_{f}']:,} / {row[f'synth_{f}']:,} ({100 * err:+.1f}%)")
        for f in EXACT + ("dsp",):
            cells.append(f"{row[f'model_{f}']:,} / {row[f'synth_{f}']:,}")
            if f in EXACT:
                exact &= row[f"model_{f}"] == row[f"synth_{f}"]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    print("\n".join(lines))
    print(f"worst LUT error {100 * worst['lut']:.1f}%, worst FF error {100 * worst['ff']:.1f}% "
          f"(target {100 * TOLERANCE:.0f}%); block RAM {'exact' if exact else 'NOT exact'}")
    blocks = sorted({k[len("synth_"):-len("_lut")] for r in result.rows for k in r if k.startswith("synth_") and k.endswith("_lut")})
    print("LUTs by block, model / synth:")
    for row in result.rows:
        parts = [f"{b} {row.get(f'model_{b}_lut', 0):,}/{row.get(f'synth_{b}_lut', 0):,}" for b in blocks]
        print(f"  {row['model']} PE{row['pe']} SIMD{row['simd']} r{row['resident']} a{row['act_bits']}: " + ", ".join(parts))
    return 0 if exact and max(worst.values()) <= TOLERANCE else 1


if __name__ == "__main__":
    sys.exit(main())
