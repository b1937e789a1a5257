"""The encoder on chip's estimates: its resource model (the blocks' models summed, by block as synthesis
names them), the nominal sizing of shapes from dimensions against the built-in artifact, and the
design-space exploration's whole inferences (cycles from the schedule's event model)."""

from __future__ import annotations

import csv
import subprocess
import sys

import pytest

from bebert.hw.blocks.encoder_sequencer import EncoderSequencer, sequencer_resources
from bebert.hw.blocks.staircase_quantizer import QuantizerShape, StaircaseQuantizer, quantizer_resources
from bebert.hw.design.config import HardwareConfig
from bebert.hw.design.dims import MINILM_L6, SETTINGS, TINY, shape_from_dims
from bebert.hw.design.plan import AcceleratorPlan
from bebert.hw.encoder_accelerator import ENCODER_BLOCKS, encoder_accelerator_resources, tag_bits
from bebert.hw.encoder_units import artifact_constants, encoder_units, nominal_constants
from bebert.hw.flows.dse import DesignPoint, evaluate, load_sweep, sweep_points
from bebert.hw.flows.synth import block_name, design_jobs
from bebert.hw.generator.gen import TOP, verilog
from bebert.hw.resources import RESOURCE_FIELDS, total
from bebert.hw.schedule import inference_cycles
from conftest import assert_block_resources

TINY_POINT = DesignPoint("tiny:1-1-4:2", 8, 16, 2, 4, "multiplexed", True, 16, 2, 4)


@pytest.fixture(scope="module")
def builtin_plan():
    from bebert.builtin import BUILTIN_DIR
    from bebert.hw.design.plan import plan_for
    from bebert.sim.ensemble import load_simulation

    return plan_for(load_simulation(BUILTIN_DIR), HardwareConfig(64, 64, None, 4))


@pytest.fixture(scope="module")
def tiny_verilog():
    plan = TINY_POINT.plan()
    return verilog(plan, TINY_POINT.units(plan))


def test_dims_give_the_builtin_models_encoder(builtin_plan):
    """MiniLM's dimensions in 1-1-4 with two members size every encoder block as the built-in artifact
    does: its code formats follow from the products, its constants are the artifact's (REFERENCE_ENCODER)."""
    dims = AcceleratorPlan(HardwareConfig(64, 64, None, 4), shape_from_dims("minilm", MINILM_L6, "1-1-4", 2))
    constants = nominal_constants(dims, MINILM_L6["num_heads"])
    assert constants == artifact_constants(builtin_plan.members)
    for tokens, attention, hidden in ((32, 4, 8), (128, 8, 16)):
        assert encoder_units(dims, tokens, attention, hidden, constants) == \
               encoder_units(builtin_plan, tokens, attention, hidden)
    nominal = encoder_accelerator_resources(dims, encoder_units(dims, 32, 4, 8, constants))
    real = encoder_accelerator_resources(builtin_plan, encoder_units(builtin_plan, 32, 4, 8))
    # the encoder's blocks alike; the ensemble unit (the members' weights) and the top's held layer
    # constants (the artifact's tables and steps) are the artifact's own
    assert {b: nominal[b] for b in ENCODER_BLOCKS} == {b: real[b] for b in ENCODER_BLOCKS}


def test_bit_setting_gives_bipolar_attention():
    """BiT's 1-1-1: bipolar queries, keys, values and context codes, {0, 1} probabilities."""
    plan = AcceleratorPlan(HardwareConfig(16, 8, None, 1), shape_from_dims("tiny", TINY, "1-1-1", 3))
    units = encoder_units(plan, 12, 4, 8, nominal_constants(plan, TINY["num_heads"]))
    a = units.attention
    assert (a.query, a.key, a.value, units.pipeline.context_codes) == (SETTINGS["1-1-1"],) * 4
    assert (a.probs.bits, a.probs.signed, a.probs.bipolar) == (1, False, False)
    assert (a.heads, a.head_size, units.softmax.prob_bits) == (4, 8, 1)


def test_model_names_every_synthesized_block(tiny_verilog):
    """The model has a figure for every block synthesis counts in the generated design, and no other."""
    plan = TINY_POINT.plan()
    design = design_jobs(tiny_verilog, TOP)
    assert {block for block, _ in design.blocks} == set(encoder_accelerator_resources(plan, TINY_POINT.units(plan)))
    assert set(ENCODER_BLOCKS) < {block for block, _ in design.blocks}


def test_block_names_of_nested_units():
    top = "bebert_accelerator"
    assert block_name(f"\\{top}.attention.score_unit.fifo", top) == "attention_scores"
    assert block_name(f"\\{top}.attention", top) == "attention_pipeline"
    assert block_name(f"\\{top}.residual_norm.layer_norm.divider", top) == "layer_norm"
    assert block_name(f"\\{top}.residual_norm.residual.quantizer.out_fifo", top) == "residual_stream"
    assert block_name(f"\\{top}.encoder_exp_table_lane3", top) == "exp_table_memory"
    assert block_name(f"\\{top}.encoder_hidden_thresholds", top) == "hidden_thresholds_memory"
    assert block_name(f"\\{top}.thresholds1", top) == "thresholds_memory"
    assert block_name(f"\\{top}.key_gearbox.out_fifo", top) == "key_gearbox"
    assert block_name(top, top) == "controller"


def test_tag_queue_width_is_the_rtls(tiny_verilog):
    import re

    from bebert.hw.flows.synth import split_modules

    queue = split_modules(tiny_verilog)[f"\\{TOP}.tag_queue"]
    width = int(re.search(r"output \[(\d+):0\] r_data;", queue).group(1)) + 1
    assert tag_bits(TINY_POINT.units()) == width


def test_dse_row_is_a_whole_inference_and_sums_its_blocks(builtin_plan):
    """The DSE's built-in point at PE 64 x SIMD 64: cycles are inference_cycles' total (the RTL's
    counter), the products alone are run_cycles'; the model's totals are its blocks' sums."""
    from bebert.hw.accelerator import run_cycles

    point = DesignPoint("builtin", 64, 64, 2, 4, "multiplexed", True, 128, 4, 8)
    row = evaluate(point, 32, 100.0)
    units = encoder_units(builtin_plan, 128, 4, 8)
    assert row["cycles"] == inference_cycles(builtin_plan, units, 32).total == 734_490
    assert row["products_cycles"] == run_cycles(builtin_plan, 32).total == 712_314
    assert row["cycles"] == sum(row[f"cycles_{k}"] for k in ("qkv", "attention_output", "ffn", "head")) \
        + row["cycles_waits"] + 2  # the settle and answer cycles
    assert row["sentences_per_s"] == pytest.approx(100e6 / 734_490)
    blocks = encoder_accelerator_resources(builtin_plan, units)
    whole = total(blocks)
    for field in RESOURCE_FIELDS:
        assert row[f"model_{field}"] == round(getattr(whole, field))
    assert abs(sum(row[f"model_{b}_lut"] for b in blocks) - row["model_lut"]) <= len(blocks) / 2  # rounding
    share = sum(blocks[b].lut for b in ENCODER_BLOCKS) / whole.lut
    assert row["model_encoder_lut_share"] == pytest.approx(share, abs=1e-4)


def test_replicated_encoder_runs_one_member():
    one = evaluate(DesignPoint("builtin", 64, 64, 1, 4, "replicated", True, 128, 4, 8), 32, 100.0)
    both = evaluate(DesignPoint("builtin", 64, 64, 2, 4, "multiplexed", True, 128, 4, 8), 32, 100.0)
    assert one["copies"] == 2 and one["cycles"] < both["cycles"] / 1.9
    assert one["model_bram36"] + one["model_bram18"] > 0


def test_sweep_holds_every_member_and_skips_widths_that_do_not_nest():
    sweep = load_sweep(None, {"models": ["minilm:1-1-4:2"], "pe": [24, 16], "simd": [32], "resident": [1, 2],
                              "mapping": ["multiplexed"]})
    points, skipped = sweep_points(sweep)
    assert [(p.pe, p.resident, p.encoder) for p in points] == [(16, 2, True)]  # the encoder holds both members
    assert len(skipped) == 1 and "divide" in skipped[0][1]  # PE 24 and the 32-wide heads
    products, _ = sweep_points(load_sweep(None, {"models": ["minilm:1-1-4:2"], "pe": [16], "simd": [32],
                                                 "resident": [1, 2], "mapping": ["multiplexed"], "encoder": False}))
    assert [(p.resident, p.encoder) for p in products] == [(1, False), (2, False)]


def test_products_only_sweep_from_the_command_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "bebert.hw.cli", "dse", "--no-synth", "--products-only", "--models",
                           "minilm:1-1-4:2", "--pe", "16", "--simd", "32", "--resident", "2", "--mapping", "multiplexed",
                           "--accuracy", "", "--out", str(tmp_path / "d")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "matrix products alone" in done.stdout
    with open(tmp_path / "d" / "dse.csv") as f:
        [row] = list(csv.DictReader(f))
    assert row["encoder"] == "False" and row["cycles"] == row["products_cycles"]


def test_sequencer_and_context_staircase_against_yosys(cache):
    """synth_xilinx on the sequencer and a context staircase (scripts/block_check.py runs more shapes):
    LUTs and FFs within 15% of the model; distributed and block RAM exact."""
    codes = SETTINGS["1-1-4"]
    staircase = QuantizerShape(8, 32, 12, 13, codes, 16)
    assert_block_resources([(EncoderSequencer(2, 2, 16), sequencer_resources(2, 2, 16)),
                            (StaircaseQuantizer(staircase), quantizer_resources(staircase))])
