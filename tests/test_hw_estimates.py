"""Resource and cycle estimates, synthesis and the design-space exploration: the models' arithmetic on
fixed inputs, model shapes from dimensions, splitting a design into synthesis jobs, one small real
synthesis against the model, a sweep on a Dask LocalCluster, and `bebert-hw dse` end to end."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import pytest

from bebert.hw.blocks.compressor import CompressorShape, compressor_shape
from bebert.hw.design.config import HardwareConfig
from bebert.hw.design.dims import MINILM_L6, shape_from_dims
from bebert.hw.flows.dse import SweepError, ensemble_accuracy
from bebert.hw.generator.gen import TOP, verilog
from bebert.hw.blocks.param_memory import memory_resources, mux_luts, tile_geometry
from bebert.hw.blocks.pe_array import LUT_COEFFICIENTS as PE_LUTS
from bebert.hw.blocks.pe_array import pe_array_resources
from bebert.hw.design.plan import AcceleratorPlan
from bebert.hw.flows.plots import pareto_front
from bebert.hw.resources import Resources
from bebert.hw.flows.synth import SynthJob, design_jobs, synthesize

TINY = dict(num_layers=1, hidden_size=32, intermediate_size=64, num_heads=2, max_position=16, num_labels=2)


def hw(*args, env=None):
    return subprocess.run([sys.executable, "-m", "bebert.hw.cli", *map(str, args)], capture_output=True, text=True,
                          env=env)


@pytest.fixture(scope="module")
def tiny_plan():
    return AcceleratorPlan(HardwareConfig(8, 16, None, 4), shape_from_dims("tiny", TINY, "1-1-4", 2))


# ---- the models' arithmetic ----------------------------------------------------------------------------
def test_resources_from_yosys_cells():
    cells = {"LUT1": 1, "LUT6": 10, "INV": 2, "FDRE": 7, "FDSE": 1, "RAM64M": 3, "SRLC32E": 2, "RAMB36E1": 4,
             "RAMB18E1": 3, "DSP48E1": 5, "CARRY4": 6, "MUXF7": 9, "$scopeinfo": 4}
    r = Resources.from_cells(cells)
    assert (r.lut, r.ff, r.lutram, r.bram36, r.bram18, r.dsp, r.carry) == (13, 8, 14, 4, 3, 5, 6)
    assert r.bram_bits == 4 * 36864 + 3 * 18432 and r.bram36_equivalent == 5.5
    assert (r + r * 2).lut == 39 and sum([r, r], Resources()).ff == 16


@pytest.mark.parametrize("depth,width,geometry,bram36,bram18", [
    (42060, 256, (2048, 9, False), 0, 21 * 29),  # deep and narrow: RAMB18 at 2K x 9
    (2064, 3600, (512, 72, True), 5 * 50, 0),
    (73, 3527, (512, 72, True), 49, 0),  # shallower than a tile: one row
    (577, 447, (1024, 18, False), 0, 25),
    (512, 72, (512, 72, True), 1, 0),
])
def test_tile_geometry_and_block_ram(depth, width, geometry, bram36, bram18):
    assert tile_geometry(depth, width) == geometry
    r = memory_resources(depth, width)
    assert (r.bram36, r.bram18) == (bram36, bram18)
    rows = -(-depth // geometry[0])
    assert r.lut == (width * mux_luts(rows) + rows if rows > 1 else 0)


def test_mux_and_pe_array_formulas():
    assert [mux_luts(n) for n in (1, 2, 4, 5, 21)] == [0, 1, 1, 2, round(0.6 * 20)]
    # 32 products: 11 leaves (22 LUTs; 11 bits in each of columns 0 and 1), then two stages of two
    # (6;3) counters (12 LUTs) leave columns of 1, 3, 4 and 2 bits: four rows for the adders
    assert compressor_shape(32, "and") == compressor_shape(32, "xnor") == CompressorShape(cells=34, rows=4, columns=4)
    assert compressor_shape(32, "select").cells == 16 * 2 + 21  # two products and the mode to a leaf
    assert compressor_shape(6, "bits") == CompressorShape(cells=3, rows=1, columns=3)  # one (6;3) counter
    assert compressor_shape(5, "bits") == CompressorShape(cells=0, rows=5, columns=1)  # left to the adders
    c, shared = PE_LUTS, compressor_shape(32, "bits")
    one = pe_array_resources(8, 32, 15, ("and",))
    assert one.lut == pytest.approx(8 * 34 + shared.cells + c["adder_bits"] * (8 * 3 * 4 + shared.adder_bits))
    assert (one.ff, one.dsp) == (0, 8)  # the accumulators are the DSP slices' P registers
    xnor = pe_array_resources(8, 32, 15, ("xnor",))
    assert one.lut - xnor.lut == pytest.approx(shared.cells + c["adder_bits"] * shared.adder_bits)  # no shared popcount


def test_pareto_front():
    points = [(1, 1), (2, 3), (3, 2), (4, 5), (4, 4), (5, 5)]
    assert pareto_front(points) == [(1, 1), (2, 3), (4, 5)]


# ---- shapes from dimensions --------------------------------------------------------------------------
def test_minilm_dimensions_give_the_builtin_models_shape():
    """The shape built from MiniLM's dimensions is the built-in artifact's, job for job."""
    from bebert.builtin import BUILTIN_DIR
    from bebert.hw.design.plan import plan_for
    from bebert.sim.ensemble import load_simulation

    builtin = plan_for(load_simulation(BUILTIN_DIR), HardwareConfig(64, 64, None, 4))
    dims = AcceleratorPlan(HardwareConfig(64, 64, None, 4), shape_from_dims("minilm", MINILM_L6, "1-1-4", 2))
    assert dims.steps == builtin.steps
    assert (dims.acc_bits, dims.threshold_bits, dims.value_bits, dims.bias_bits) == \
           (builtin.acc_bits, builtin.threshold_bits, builtin.value_bits, builtin.bias_bits)
    assert dims.memory_shapes == builtin.memory_shapes


# ---- synthesis --------------------------------------------------------------------------------------------
def test_design_splits_into_block_jobs(tiny_plan):
    design = design_jobs(verilog(tiny_plan), TOP)
    blocks = [block for block, _ in design.blocks]
    assert tiny_plan.threshold_fold > 1  # its threshold words are read in parts, gathered by their block
    assert sorted(set(blocks)) == ["affine_memory", "buffers", "controller", "ensemble_unit", "output_unit", "pe_array",
                                   "threshold_words", "thresholds_memory", "weights_memory"]
    assert blocks.count("weights_memory") == 2  # one per resident member ...
    weights = [design.jobs[k] for b, k in design.blocks if b == "weights_memory"]
    assert weights[0].key == weights[1].key  # ... synthesized once
    words, width = tiny_plan.memory_shapes["weights"]
    assert dict(weights[0].params)["WIDTH"] == width and dict(weights[0].params)["DEPTH"] == words
    controller = design.jobs[dict((b, k) for b, k in design.blocks)["controller"]]
    assert "pe_array" in controller.stubs and "module" in controller.design


def test_small_real_synthesis_matches_the_model(tiny_plan, cache):
    """Yosys synth_xilinx on the tiny design's PE array and weight memory, against the model."""
    from bebert.hw.accelerator import accelerator_resources

    design = design_jobs(verilog(tiny_plan), TOP)
    keep = {"pe_array", "weights_memory"}
    design.blocks = [(b, k) for b, k in design.blocks if b in keep]
    design.jobs = {k: design.jobs[k] for _, k in design.blocks}
    [result] = synthesize([design], workers=2)
    model = accelerator_resources(tiny_plan)
    for block in keep:
        synth, predicted = result.blocks[block], model[block]
        assert (synth.bram36, synth.bram18) == (predicted.bram36, predicted.bram18), block
        for field in ("lut", "ff"):
            assert abs(getattr(predicted, field) - getattr(synth, field)) <= 0.15 * max(getattr(synth, field), 20), \
                (block, field, getattr(predicted, field), getattr(synth, field))
    assert result.seconds > 0
    assert len(list((cache / "synth").glob("*.json"))) == len(design.jobs)
    [again] = synthesize([design])  # all cached: no Yosys
    assert again.seconds == 0 and again.blocks == result.blocks


def test_synthesis_on_a_dask_local_cluster(cache):
    """Jobs run on a real dask.distributed cluster give what Yosys gives locally (one memory tile)."""
    from distributed import LocalCluster

    from bebert.hw.blocks.param_memory import MODULE_NAME, VERILOG
    from bebert.hw.flows.synth import DesignJobs, split_modules

    job = SynthJob(MODULE_NAME, split_modules(VERILOG)[MODULE_NAME],
                   params=(("WIDTH", 100), ("DEPTH", 600), ("ADDR_BITS", 10), ("TILE_WIDTH", 36),
                           ("TILE_DEPTH", 1024)))
    design = DesignJobs({job.key: job}, [("weights_memory", job.key)])
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        [result] = synthesize([design], scheduler=cluster.scheduler_address)
    assert result.blocks["weights_memory"].bram36 == 3  # 100 bits in three 1K x 36 tiles
    assert result.seconds > 0


def test_unreachable_scheduler_is_one_sentence(tmp_path):
    env = {**os.environ, "BEBERT_HW_CACHE": str(tmp_path / "cache")}  # nothing cached: jobs go to the scheduler
    done = hw("dse", "--models", "builtin", "--pe", "16", "--simd", "32", "--resident", "2", "--mapping",
              "multiplexed", "--scheduler", "tcp://127.0.0.1:9", "--accuracy", "", "--out", tmp_path / "d", env=env)
    assert done.returncode == 2, done.stderr
    assert "Dask scheduler" in done.stderr and "Traceback" not in done.stderr


# ---- the sweep ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("args,words", [
    (["--pe", "16,x"], ["--pe", "comma-separated"]),
    (["--models", "gpt2"], ["gpt2", "builtin"]),
    (["--models", "bert-base:1-1-4:0"], ["bert-base:1-1-4:0"]),
    (["--mapping", "parallel"], ["mapping", "parallel"]),
    (["--pe", "0"], ["'pe'", "0"]),
    (["--pe", "4096"], ["no valid design point", "--pe 4096"]),
    (["--tokens", "0"], ["tokens"]),
    (["--device", "zu9eg,vu9p"], ["Unknown device 'vu9p'", "zu9eg, ecp5-85f"]),
])
def test_bad_sweeps_are_one_sentence(args, words, tmp_path):
    done = hw("dse", "--no-synth", "--accuracy", "", "--out", tmp_path / "d", *args)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and all(w in done.stderr for w in words), done.stderr
    assert not (tmp_path / "d").exists()


def test_bad_sweep_files_are_one_sentence(tmp_path):
    spec = tmp_path / "sweep.yaml"
    for text, word in (("pe: [16]\nfrequency: 3\n", "frequency"), ("- 1\n- 2\n", "mapping"), ("pe: [\n", "YAML")):
        spec.write_text(text)
        done = hw("dse", "--no-synth", "--spec", spec, "--accuracy", "", "--out", tmp_path / "d")
        assert done.returncode == 2 and word in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_ensemble_accuracy_reads_the_glue_table_among_others(tmp_path):
    """The report holds tables that mention the same models and task rows; only the GLUE table counts."""
    report = tmp_path / "bebert.md"
    report.write_text(
        "| target | measured |\n| --- | --- |\n| BEBERT 1-1-4 x2 average within 2.0 of fp32 | 7.8 |\n\n"
        "| task | metric | majority class | fp32 | 1-1-4 | BEBERT 1-1-4 x2 | BEBERT 1-1-4 x4 |\n"
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |\n"
        "| mrpc | f1 | 81.22 | 85.86 | 80.33 | 78.57 | 79.05 |\n"
        "| sst2 | accuracy | 50.92 | 84.52 | 82.00 | 82.34 | - |\n\n"
        "| task | model | seed 42 |\n| --- | --- | ---: |\n| sst2 | single 1-1-4 | 99.00 |\n")
    assert ensemble_accuracy(report) == {1: 82.0, 2: 82.34}  # x4 not run yet
    report.write_text("| task | model | seed 42 |\n| --- | --- | ---: |\n| sst2 | single 1-1-4 | 82.00 |\n")
    with pytest.raises(SweepError, match="no GLUE table"):
        ensemble_accuracy(report)


def test_three_point_sweep_writes_csv_and_plots(tmp_path):
    spec = tmp_path / "sweep.yaml"
    spec.write_text("models: [builtin]\npe: [16, 32, 64]\nsimd: [32]\nresident: [2]\nmapping: [multiplexed]\n")
    done = hw("dse", "--no-synth", "--spec", spec, "--out", tmp_path / "d")  # the default accuracy report
    assert done.returncode == 0, done.stderr
    with open(tmp_path / "d" / "dse.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["pe"]) for r in rows] == [16, 32, 64]
    cycles = [int(r["cycles"]) for r in rows]
    assert cycles[0] > cycles[1] > cycles[2]  # more lanes, fewer output folds
    assert all(float(r["model_lut"]) > 0 and int(r["model_bram36"]) + int(r["model_bram18"]) > 0 for r in rows)
    for name in ("pareto", "resources_by_block", "cycles_by_layer", "weights_on_chip", "accuracy_latency"):
        for ext in ("png", "svg"):
            assert (tmp_path / "d" / f"{name}.{ext}").stat().st_size > 1000, name
    assert "3 point(s)" in done.stdout
