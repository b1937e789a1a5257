"""The encoder blocks' resource models against Yosys synth_xilinx, each block over a range of shapes.

    python scripts/block_check.py [--block layer_norm|softmax ...] [--fit [--write]]

Synthesizes each block alone at each of its shapes (hw/flows/synth.py, cached by the Verilog's hash),
evaluates the block's resource model and writes results/<block>_resources.md with both. ``--fit``
prints the non-negative least-squares LUT coefficients of the block's features from these
syntheses; ``--write`` stores them in hw/calibration.yaml.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
from amaranth.back import verilog
from scipy.optimize import nnls

from bebert.hw.blocks import attention_products, layer_norm, residual_stream, softmax
from bebert.hw.testbench.attention import shape_of
from bebert.hw.testbench.residual_stream import shape_of as residual_shape
from bebert.hw.resources import CALIBRATION, coefficients, linear_cost, store_lut_coefficients
from bebert.hw.flows.synth import design_jobs, synthesize
from bebert.sim.fixed import FRAC
from bebert.sim.program import Codes

REPO = Path(__file__).resolve().parents[1]
FIELDS = ("lut", "ff", "lutram", "bram36", "bram18", "dsp")


@dataclass(frozen=True)
class Block:
    title: str
    unit: type
    shapes: list
    features: object
    resources: object
    note: str


GAIN_BOUND, BIAS_BOUND = 4 << FRAC, 1 << 26
# (longest sentence, heads, head size, lanes, setting): the built-in model's heads at 32 and 128
# tokens, BERT-base's 64-wide heads, BiT's 1-bit codes, and a small shape with distributed RAM banks
ATTENTION_SHAPES = [shape_of(*shape) for shape in [
    (32, 12, 32, 4, "1-1-4"), (128, 12, 32, 8, "1-1-4"), (128, 12, 64, 4, "1-1-4"), (16, 4, 16, 2, "1-1-4"),
    (32, 12, 32, 4, "1-1-1"), (128, 12, 64, 8, "1-1-1")]]
# (longest sentence, hidden, lanes, setting): MiniLM's 384-wide rows at 32 and 128 tokens, BERT-base's 768,
# BiT's bipolar codes, and a small shape whose states fit distributed RAM
RESIDUAL_SHAPES = [residual_shape(*shape) for shape in [
    (32, 384, 16, "1-1-4"), (128, 384, 16, "1-1-4"), (128, 768, 32, "1-1-4"), (8, 64, 4, "1-1-4"),
    (32, 384, 16, "1-1-1"), (128, 768, 8, "1-1-1")]]
ATTENTION_NOTE = "Codes: 1-1-4 (4-bit signed queries, keys, values; 4-bit probabilities) or 1-1-1 (BiT's)."
BLOCKS = {
    "layer_norm": Block(
        "The LayerNorm unit", layer_norm.LayerNormUnit,
        # (H, lanes, input bits): MiniLM and BERT-base rows at the built-in model's width, and narrower formats
        [layer_norm.LayerNormShape(h, lanes, bits, GAIN_BOUND, BIAS_BOUND)
         for h, lanes, bits in [(64, 2, 20), (128, 8, 24), (384, 4, 33), (384, 8, 33), (384, 16, 33), (768, 32, 33)]],
        layer_norm.layer_norm_features, layer_norm.layer_norm_resources,
        f"Gains up to 4, biases up to 4 (fixed point, FRAC = {FRAC})."),
    "softmax": Block(
        "The softmax unit", softmax.SoftmaxUnit,
        # (longest row, lanes, score bits, table depth, probability bits, largest step): the built-in
        # model's 13-bit scores and 4-bit probabilities at 32 to 512 tokens (row buffers of 8 to 128 words),
        # BiT's 1-bit probabilities
        [softmax.SoftmaxShape(*shape) for shape in [
            (32, 4, 13, 512, 4, 1 << 20), (128, 8, 13, 512, 4, 1 << 20), (384, 8, 13, 512, 4, 1 << 20),
            (128, 16, 13, 512, 1, 1 << 24), (64, 16, 15, 1024, 4, 1 << 20), (512, 4, 13, 512, 4, 1 << 20)]],
        softmax.softmax_features, softmax.softmax_resources,
        "Exponential tables are outside the unit (per-lane parameter memories)."),
    "residual_stream": Block(
        "The residual stream", residual_stream.ResidualStream, RESIDUAL_SHAPES, residual_stream.residual_features,
        residual_stream.residual_resources,
        "33-bit states (LayerNorm outputs), 30-bit product outputs, 34-bit thresholds from an outside memory."),
    "attention_scores": Block(
        "The attention score unit", attention_products.ScoreUnit, ATTENTION_SHAPES,
        attention_products.score_features, attention_products.score_resources, ATTENTION_NOTE),
    "attention_context": Block(
        "The attention context unit", attention_products.ContextUnit, ATTENTION_SHAPES,
        attention_products.context_features, attention_products.context_resources, ATTENTION_NOTE),
}


def describe(value) -> str:
    """A shape field as the table shows it; code formats as s4 (signed 4-bit), u4, +-1 (bipolar)."""
    if isinstance(value, Codes):
        return "+-1" if value.bipolar else f"{'s' if value.signed else 'u'}{value.bits}"
    return str(value)


def check(name: str, block: Block, fit: bool, write: bool, workers: int | None) -> str:
    designs = [design_jobs(verilog.convert(block.unit(s), name=name, emit_src=False), name) for s in block.shapes]
    found = [result.total for result in synthesize(designs, workers=workers)]
    if fit:
        features = [block.features(s) for s in block.shapes]
        names = list(features[0])
        # the LUTs the model counts outside the fitted features (a block RAM's read mux, say)
        fitted_now = coefficients(name)
        counted = [block.resources(s).lut - linear_cost(fitted_now, f) for s, f in zip(block.shapes, features)]
        solution, _ = nnls(np.array([[f[n] for n in names] for f in features], float),
                           np.array([r.lut - c for r, c in zip(found, counted)], float))
        fitted = {n: round(float(c), 4) for n, c in zip(names, solution)}
        print(f"{name} LUT coefficients:", fitted)
        if write:
            store_lut_coefficients({name: fitted})
            print(f"wrote {CALIBRATION}")
    shape_fields = [f.name for f in fields(block.shapes[0])]
    lines = [f"# {block.title}: resource model against Yosys synth_xilinx", "",
             f"Written by `python scripts/block_check.py --block {name}`. {block.note} Yosys: the unit alone,",
             "each module synthesized with its children as black boxes, summed. Error = model / Yosys - 1.", "",
             "| " + " | ".join(shape_fields) + " | " + " | ".join(f"{f} Yosys | {f} model" for f in FIELDS)
             + " | LUT error | FF error |",
             "| " + " | ".join("---:" for _ in shape_fields) + " | " + " | ".join("---: | ---:" for _ in FIELDS)
             + " | ---: | ---: |"]
    for s, real in zip(block.shapes, found):
        model = block.resources(s)
        cells = " | ".join(f"{getattr(real, f):.0f} | {getattr(model, f):.0f}" for f in FIELDS)
        values = " | ".join(describe(getattr(s, f)) for f in shape_fields)
        lines.append(f"| {values} | {cells} | {model.lut / real.lut - 1:+.1%} | {model.ff / real.ff - 1:+.1%} |")
    text = "\n".join(lines) + "\n"
    (REPO / "results" / f"{name}_resources.md").write_text(text)
    return text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--block", nargs="+", choices=sorted(BLOCKS), default=sorted(BLOCKS))
    parser.add_argument("--fit", action="store_true")
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--workers", type=int)
    args = parser.parse_args(argv)
    for name in args.block:
        print(check(name, BLOCKS[name], args.fit, args.write, args.workers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
