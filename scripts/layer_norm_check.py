"""The LayerNorm unit's resource model against Yosys synth_xilinx, over row widths, lanes and input widths.

    python scripts/layer_norm_check.py [--fit [--write]] [--out results/layer_norm_resources.md]

Synthesizes the unit alone at each shape (hw/synth.py, cached by the Verilog's hash), evaluates
``layer_norm_resources`` and writes the table of both. ``--fit`` prints the non-negative least-squares
LUT coefficients of ``layer_norm_features`` from these syntheses; ``--write`` stores them in
hw/calibration.yaml.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from amaranth.back import verilog
from scipy.optimize import nnls

from bebert.hw.layer_norm import LayerNormShape, LayerNormUnit, layer_norm_features, layer_norm_resources
from bebert.hw.resources import CALIBRATION, store_lut_coefficients
from bebert.hw.synth import design_jobs, synthesize
from bebert.sim.fixed import FRAC

REPO = Path(__file__).resolve().parents[1]
GAIN_BOUND, BIAS_BOUND = 4 << FRAC, 1 << 26
# (H, lanes, input bits): MiniLM and BERT-base rows at the built-in model's width, and narrower formats
SHAPES = [(64, 2, 20), (128, 8, 24), (384, 4, 33), (384, 8, 33), (384, 16, 33), (768, 32, 33)]
FIELDS = ("lut", "ff", "lutram", "bram36", "dsp")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit", action="store_true")
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--workers", type=int)
    parser.add_argument("--out", default=str(REPO / "results" / "layer_norm_resources.md"))
    args = parser.parse_args(argv)
    shapes = [LayerNormShape(h, lanes, bits, GAIN_BOUND, BIAS_BOUND) for h, lanes, bits in SHAPES]
    designs = [design_jobs(verilog.convert(LayerNormUnit(s), name="layer_norm", emit_src=False), "layer_norm")
               for s in shapes]
    found = [result.total for result in synthesize(designs, workers=args.workers)]
    if args.fit:
        features = [layer_norm_features(s) for s in shapes]
        names = list(features[0])
        coefficients, _ = nnls(np.array([[f[n] for n in names] for f in features], float),
                               np.array([r.lut for r in found], float))
        fitted = {n: round(float(c), 4) for n, c in zip(names, coefficients)}
        print("layer_norm LUT coefficients:", fitted)
        if args.write:
            store_lut_coefficients({"layer_norm": fitted})
            print(f"wrote {CALIBRATION}")
    lines = ["# The LayerNorm unit: resource model against Yosys synth_xilinx", "",
             "Written by `python scripts/layer_norm_check.py`. Gains up to 4, biases up to 4 (fixed point,",
             f"FRAC = {FRAC}). Yosys: the unit alone, each module synthesized with its children as black boxes,",
             "summed. Error = model / Yosys - 1.", "",
             "| H | lanes | input bits | " + " | ".join(f"{f} Yosys | {f} model" for f in FIELDS) + " | LUT error | FF error |",
             "| ---: | ---: | ---: | " + " | ".join("---: | ---:" for _ in FIELDS) + " | ---: | ---: |"]
    for s, real in zip(shapes, found):
        model = layer_norm_resources(s)
        cells = " | ".join(f"{getattr(real, f):.0f} | {getattr(model, f):.0f}" for f in FIELDS)
        lines.append(f"| {s.width} | {s.lanes} | {s.in_bits} | {cells} | {model.lut / real.lut - 1:+.1%} | "
                     f"{model.ff / real.ff - 1:+.1%} |")
    text = "\n".join(lines) + "\n"
    Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
