"""The encoder blocks' resource models against Yosys synth_xilinx, each block over a range of shapes.

    python scripts/block_check.py [--block layer_norm|softmax|... ...] [--fit [--write]]

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

from bebert.hw.blocks import (attention_products, encoder_sequencer, layer_norm, residual_stream, row_gearbox, row_store,
                              softmax, staircase_quantizer)
from bebert.hw.testbench.attention import shape_of
from bebert.hw.testbench.residual_stream import shape_of as residual_shape
from bebert.hw.resources import CALIBRATION, coefficients, linear_cost, store_lut_coefficients
from bebert.hw.flows.synth import design_jobs, synthesize
from bebert.sim.fixed import FRAC
from bebert.sim.program import Codes
from bebert.hw.design.dims import SETTINGS

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


@dataclass(frozen=True)
class SequencerShape:
    members: int
    layers: int
    tokens: int


def _sequencer(s: SequencerShape):
    return encoder_sequencer.EncoderSequencer(s.members, s.layers, s.tokens)


def _sequencer_model(function):
    return lambda s: function(s.members, s.layers, s.tokens)


S4, BIPOLAR = SETTINGS["1-1-4"], SETTINGS["1-1-1"]
# (lanes, values, value bits, threshold bits, codes, threshold words, tag bits): the built-in model's context
# staircase (a 32-wide head a beat, 4-bit codes) at 32 and 128 tokens, BiT's, BERT-base's 64-wide heads, the
# tests' tiny heads, and the residual stream's norm path (8 lanes of 31-bit states, a token tag)
QUANTIZER_SHAPES = [staircase_quantizer.QuantizerShape(*shape) for shape in [
    (32, 384, 13, 14, S4, 144), (32, 384, 15, 16, S4, 144), (32, 384, 7, 8, BIPOLAR, 144), (64, 768, 15, 16, S4, 288),
    (8, 32, 12, 13, S4, 16), (8, 384, 31, 32, S4, 1248, 5)]]
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
    "sequencer": Block(
        "The encoder's sequencer", _sequencer,
        # (members, layers, longest sentence): the built-in model at 32 and 128 tokens, BERT-base, the tests' tiny ones
        [SequencerShape(*shape) for shape in [(2, 6, 32), (2, 6, 128), (4, 12, 128), (2, 2, 16), (3, 2, 12),
                                              (1, 12, 512)]],
        _sequencer_model(encoder_sequencer.sequencer_features), _sequencer_model(encoder_sequencer.sequencer_resources),
        "A ready flag per token of the longest sentence."),
    "staircase_quantizer": Block(
        "The staircase quantizer", staircase_quantizer.StaircaseQuantizer, QUANTIZER_SHAPES,
        staircase_quantizer.quantizer_features, staircase_quantizer.quantizer_resources,
        "Alone, as the attention pipeline's context staircase (in the residual stream its LUTs count with the stream's)."),
    "row_gearbox": Block(
        "The row gearbox", row_gearbox.RowGearbox,
        # (values, bits, signed, in width, out width): the built-in model's at PE 64 (K/V/Q codes into 32-wide
        # heads, 31-bit affine rows into 8 lanes), at PE 16 (a head is two beats), and the tests' tiny ones
        [row_gearbox.GearboxShape(*shape) for shape in [
            (384, 4, False, 64, 32), (384, 31, True, 64, 8), (384, 4, False, 16, 32), (384, 31, True, 16, 8),
            (32, 4, False, 8, 8), (32, 31, True, 16, 8)]],
        row_gearbox.gearbox_features, row_gearbox.gearbox_resources, "Two rows buffered."),
    "row_store": Block(
        "The row store", row_store.RowStore,
        # (rows, values, bits, in width, out width): the codes store at 32 and 128 tokens (L 8 in, SIMD 64 out),
        # the context store (a head in, SIMD out), BiT's 1-bit codes, the tests' tiny ones
        [row_store.RowStoreShape(*shape) for shape in [
            (32, 384, 4, 8, 64), (128, 384, 4, 8, 64), (1, 384, 4, 32, 64), (128, 384, 1, 8, 32), (16, 32, 4, 4, 16),
            (1, 32, 4, 8, 16)]],
        None, row_store.row_store_resources, "Structural model (no fitted coefficient)."),
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
    if fit and block.features is not None:
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
