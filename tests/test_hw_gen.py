"""`bebert-hw gen` and what it is built from: configuration checks, the plan's widths, the cycle model's
arithmetic, memory image layouts, the host program against the simulator, Verilator lint."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import yaml

from bebert import bitpack
from bebert.builtin import BUILTIN_DIR
from bebert.hw.accelerator import run_cycles, step_cycles
from bebert.hw.design.config import ConfigError, HardwareConfig
from bebert.hw.flows.cosim import verilator_environment
from bebert.hw.generator.gen import LINT_WAIVERS_FILE, REPORT_FILE, TOP, generate, verilog_sources
from bebert.hw.host import beat_lanes, row_beats, run_member
from bebert.hw.generator.images import member_images
from bebert.hw.blocks.param_memory import tile_geometry
from bebert.hw.design.plan import plan_for
from bebert.hw.encoder_units import encoder_units
from bebert.hw.schedule import inference_cycles
from bebert.sim.ensemble import load_simulation
from bebert.sim.program import Codes
from bebert.sim.tokens import SentenceTokenizer
from conftest import make_tiny_ensemble


def hw(*args):
    return subprocess.run([sys.executable, "-m", "bebert.hw.cli", *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module", params=["w1e1a4", "w1e1a1"])
def tiny(request, tiny_backbone, tmp_path_factory):
    path = make_tiny_ensemble(tiny_backbone, request.param, 2, tmp_path_factory.mktemp(request.param) / "artifact")
    return path, load_simulation(path)


@pytest.mark.parametrize("kwargs,words", [
    ({"pe": 0}, ["--pe", "positive", "0"]),
    ({"simd": -3}, ["--simd", "-3"]),
    ({"members": 0}, ["--members", "0"]),
    ({"act_bits": 9}, ["--act-bits", "9"]),
])
def test_config_refuses_impossible_numbers(kwargs, words):
    with pytest.raises(ConfigError) as info:
        HardwareConfig(**kwargs)
    assert all(w in str(info.value) for w in words)


def test_plan_refuses_what_the_model_cannot_use(tiny):
    _, simulation = tiny
    bits = simulation.members[0].layers[0].input_codes.bits
    cases = [(HardwareConfig(pe=65), "exceeds the largest matrix"), (HardwareConfig(simd=65), "longest matrix row"),
             (HardwareConfig(pe=1, act_bits=4), "below the model's 2 labels"),
             (HardwareConfig(members=3, act_bits=4), "exceeds the model's 2")]
    if bits > 1:
        cases.append((HardwareConfig(act_bits=1), "need --act-bits 4"))
    for config, words in cases:
        with pytest.raises(ConfigError, match=words):
            plan_for(simulation, config)


def test_cycle_model_matches_hand_count(tiny):
    """By hand for the tiny shapes (hidden 32, intermediate 64, 2 labels) on PE 8 x SIMD 16: a qkv row
    is 2 input beats + 3 jobs x 4 output folds x (2 input folds x planes + drain + output)."""
    _, simulation = tiny
    plan = plan_for(simulation, HardwareConfig(8, 16, None, 4))
    planes = plan.jobs[0].planes  # 4 for 1-1-4, 1 for 1-1-1 (XNOR)
    row = {"qkv": 2 + 3 * 4 * (2 * planes + 2), "attention_output": 2 + 4 * (2 * planes + 2),
           "ffn": 2 + 8 * (2 * planes + 2) + 4 * (4 * plan.jobs[5].planes + 2),
           "head": 2 + 4 * (2 * planes + 2) + 1 * (2 * plan.jobs[-1].planes + 2)}
    for step in plan.steps:
        assert step_cycles(plan, step) == row[step.name.split(".")[-1]], step.name
    count = run_cycles(plan, tokens=10)
    per_member = 2 * 10 * (row["qkv"] + row["attention_output"] + row["ffn"]) + row["head"]
    assert count.total == 2 * per_member + 2 and count.parameter_load == 0  # settle and answer cycles
    streamed = run_cycles(plan, tokens=10, reload=True)
    assert streamed.parameter_load == 2 * (plan.weight_depth + plan.threshold_depth + plan.affine_depth)


def test_weight_image_layout(tiny):
    """Lane p, bit s of word (o, i) is weight (o*PE + p, i*SIMD + s); rows and columns past the matrix are 0."""
    _, simulation = tiny
    plan = plan_for(simulation, HardwareConfig(5, 12, None, 4))
    images = member_images(plan, 1)
    job = plan.jobs[4]  # layer0.ffn_in: 64 x 32
    signs = bitpack.unpack_signs(plan.linear(1, job).weights, job.k)
    base, in_folds = plan.weight_base[job.name], plan.in_folds(job)
    for o in range(plan.out_folds(job)):
        for i in range(in_folds):
            word = images.weights[base + o * in_folds + i].reshape(5, 12)
            for p in range(5):
                for s in range(12):
                    row, col = o * 5 + p, i * 12 + s
                    expected = int(signs[row, col] > 0) if row < job.rows and col < job.k else 0
                    assert word[p, s] == expected
    assert images.weights.shape == (plan.weight_depth, 60)


def test_stream_formats_round_trip():
    codes = np.array([-8, 7, -1, 0, 3, -5, 2])
    beats = row_beats(codes, Codes(4, True), simd=3, act_bits=4)
    assert len(beats) == 3
    stored = [(b >> (4 * c)) & 15 for b in beats for c in range(3)][:7]
    assert [v - 16 if v & 8 else v for v in stored] == codes.tolist()
    assert row_beats(np.array([1, -1, 1]), Codes(1, True, bipolar=True), 2, 1) == [0b01, 0b1]
    assert beat_lanes((5 << 8) | 0xFF, 2, 8) == [-1, 5]


def test_host_program_with_the_simulators_arithmetic_equals_the_simulator(tiny):
    """The host/accelerator split (plan, host program, job chaining) loses nothing: driven by the
    simulator's own arithmetic per step, every member's logits equal the simulator's."""
    path, simulation = tiny
    recipe = simulation.manifest["recipe"]
    tokenizer = SentenceTokenizer(recipe["backbone"], recipe["max_length"])
    plan = plan_for(simulation, HardwareConfig(8, 16, None, simulation.members[0].layers[0].input_codes.bits))
    for sentence in ("a gorgeous, witty, seductive movie.", "dull"):
        ids, types = tokenizer.encode(sentence)
        expected = simulation.member_logits([ids], [types])[:, 0]
        got = [run_member(plan, m, ids, types) for m in range(2)]
        assert np.array_equal(np.stack(got), expected)


def test_gen_writes_verilog_images_and_report(tiny, tmp_path):
    path, simulation = tiny
    out = tmp_path / "accelerator"
    result = hw("gen", "--products-only", "--artifact", path, "--pe", 8, "--simd", 16, "--out", out, "--tokens", 10)
    assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(["bebert_accelerator.v", "bebert_param_memory.v", "bebert_lut6.v", "bebert_ram.v",
                            LINT_WAIVERS_FILE, REPORT_FILE, "images"])
    assert sorted(p.name for p in (out / "images").iterdir()) == sorted(
        f"member{s}_{m}" for s in (0, 1) for m in ("weights", "thresholds", "affine"))
    report = yaml.safe_load((out / REPORT_FILE).read_text())
    plan = plan_for(simulation, HardwareConfig(8, 16, None, report["parameters"]["act_bits"]))
    assert report["cycles"]["per_inference"] == run_cycles(plan, 10).total
    images = member_images(plan, 0)
    for memory, spec in report["memories_per_set"].items():
        # the tiles, side by side and one above the other, hold the image and zeros past it
        tile_depth, tile_width, _ = tile_geometry(max(spec["words"], 1), spec["width"])
        files = sorted((out / "images" / f"member0_{memory}").iterdir())
        grid = {tuple(int(part[1:]) for part in f.stem.split("_")): f.read_text().split() for f in files}
        rows, cols = max(r for r, _ in grid) + 1, max(c for _, c in grid) + 1
        assert len(grid) == rows * cols and all(len(lines) == tile_depth for lines in grid.values())
        words = [sum(int(grid[r, c][i], 16) << (c * tile_width) for c in range(cols))
                 for r in range(rows) for i in range(tile_depth)]
        assert words[:spec["words"]] == images.words(memory) and not any(words[spec["words"]:])
    assert f"module {TOP}(" in (out / "bebert_accelerator.v").read_text()
    # a second run replaces its own earlier output; a folder of other files is refused
    assert hw("gen", "--products-only", "--artifact", path, "--pe", 8, "--simd", 16, "--out", out).returncode == 0
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    refused = hw("gen", "--products-only", "--artifact", path, "--out", other)
    assert refused.returncode == 2 and "holds other files" in refused.stderr
    assert sorted(p.name for p in other.iterdir()) == ["notes.txt"]
    # missing parent folders are created; a file in the way is refused with one sentence
    assert hw("gen", "--products-only", "--artifact", path, "--pe", 8, "--simd", 16, "--out", tmp_path / "a" / "b").returncode == 0
    blocked = hw("gen", "--products-only", "--artifact", path, "--out", other / "notes.txt" / "x")
    assert blocked.returncode == 2 and "Cannot create the output folder" in blocked.stderr
    # a folder that cannot be written into: one sentence, no traceback, nothing left behind
    unwritable = hw("gen", "--products-only", "--artifact", path, "--pe", 8, "--simd", 16, "--out", "/proc/nope")
    assert unwritable.returncode == 2 and "Traceback" not in unwritable.stderr
    assert unwritable.stderr.strip() == "bebert-hw: error: Cannot write into /proc for the output folder /proc/nope: " \
                                        "No such file or directory."


@pytest.mark.parametrize("args,words", [
    (["--pe", 0], "--pe must be a positive integer, not 0"),
    (["--pe", 4000], "--pe 4000 exceeds the largest matrix's 1536 output rows"),
    (["--act-bits", 1], "need --act-bits 4 or more, not 1"),
    (["--members", 3], "--members 3 exceeds the model's 2"),
    (["--tokens", 0], "--tokens must be a positive"),
    (["--tokens", 100000], "--tokens 100000 is outside the model's sentence lengths, 1 to 512 tokens"),
    (["--max-tokens", 600], "--max-tokens 600 is outside the model's sentence lengths, 1 to 512"),
    (["--max-tokens", 16], "--tokens 32 is longer than the build's longest sentence, --max-tokens 16"),
    (["--attention-lanes", 3], "attention lanes must be a power of two from 1 to the longest"),
    (["--hidden-lanes", 0], "LayerNorm lanes must be 1 to the row width 384, not 0"),
    (["--pe", 48], "PE 48 and the head size 32 must divide one into the other"),
    (["--members", 1], "the encoder on chip needs every member resident, not 1 of 2"),
    (["--interface", "axi4"], "--interface must be one of native, axi, not 'axi4'"),
    (["--interface", "axi", "--products-only"], "--interface axi is the encoder on chip's; drop --products-only"),
    (["--param-width", "100"], "--param-width must be a power of two from 32 to 1024 bits, not 100"),
    (["--param-width", "128", "--members", "1"], "--members (resident members) and --param-width (streamed layers)"),
    (["--param-width", "128", "--products-only"], "--param-width streams the encoder on chip's layers"),
])
def test_gen_bad_parameters_one_sentence_exit_2(tmp_path, args, words):
    out = tmp_path / "never"
    result = hw("gen", *args, "--out", out)
    assert result.returncode == 2
    assert result.stderr.strip() == f"bebert-hw: error: {result.stderr.strip().split('error: ', 1)[1]}"
    assert words in result.stderr and "Traceback" not in result.stderr
    assert not out.exists() and not list(tmp_path.glob(".never*"))


def test_builtin_gen_default(tmp_path):
    """README's command on the built-in model: the encoder on chip for sentences of up to 128 tokens,
    both members resident, the encoder's memory images beside the members', and the report's cycles
    from the schedule's model (exact against the RTL, tests/test_hw_encoder_accelerator.py)."""
    out = tmp_path / "accelerator"
    result = hw("gen", "--pe", 64, "--out", out)
    assert result.returncode == 0, result.stderr
    report = yaml.safe_load((out / REPORT_FILE).read_text())
    assert report["parameters"] == {"pe": 64, "simd": 64, "act_bits": 4, "members_resident": 2,
                                    "ensemble_members": 2, "combine": "logits", "param_width": None}
    assert report["encoder"]["max_tokens"] == 128 and report["encoder"]["attention_lanes"] == 4
    plan = plan_for(load_simulation(BUILTIN_DIR), HardwareConfig(64, 64, None, 4))
    assert report["cycles"]["per_inference"] == inference_cycles(plan, encoder_units(plan, 128, 4, 8), 32).total
    for name, words in report["encoder"]["memory_words"].items():
        tiles = sorted((out / "images" / f"encoder_{name}").glob("*.hex"))
        assert tiles and sum(len(t.read_text().split()) for t in tiles) >= words


@pytest.mark.parametrize("top", ["accelerator", "encoder", "encoder-axi"])
def test_lint_clean_with_listed_waivers(tiny, tmp_path, top):
    """verilator --lint-only -Wall: no warning beyond the waivers gen writes (hand-written modules: none),
    for the matrix-product accelerator and the encoder on chip, with its own ports and behind AXI."""
    path, simulation = tiny
    bits = simulation.members[0].layers[0].input_codes.bits
    if top == "accelerator":
        generate(plan_for(simulation, HardwareConfig(6, 20, 1, bits)), tmp_path / "gen")
    else:  # every member resident; widths that nest (PE and SIMD against the head size 8 and 4 lanes)
        plan = plan_for(simulation, HardwareConfig(8, 16, None, bits))
        generate(plan, tmp_path / "gen", tokens=8, units=encoder_units(plan, 8, 2, 4),
                 interface="axi" if top == "encoder-axi" else "native")
    env = {**os.environ, **verilator_environment()}
    sources = verilog_sources(tmp_path / "gen")
    lint = subprocess.run(["verilator", "--lint-only", "-Wall", "--top-module", TOP, LINT_WAIVERS_FILE,
                           *[s.name for s in sources]], cwd=tmp_path / "gen", env=env, capture_output=True, text=True)
    assert lint.returncode == 0 and "%Warning" not in lint.stderr, lint.stderr[-3000:]
    for library in sources[:-1]:  # the hand-written modules need no waiver
        alone = subprocess.run(["verilator", "--lint-only", "-Wall", library.name], cwd=tmp_path / "gen", env=env,
                               capture_output=True, text=True)
        assert alone.returncode == 0 and "%Warning" not in alone.stderr, alone.stderr[-3000:]


@pytest.mark.parametrize("args,words", [
    (["--sentences", 0], "--sentences must be a positive count, not 0"),
    (["--gap", 1.5], "--gap is a probability of a stall, in [0, 1), not 1.5"),
    (["--simd", 0], "--simd must be a positive integer, not 0"),
    (["--simulator", "modelsim"], "--simulator must be one of verilator, icarus, not 'modelsim'"),
    (["--simulator", "icarus", "--waves"], "Waveforms are recorded under Verilator only"),
    (["--interface", "pcie"], "--interface must be one of native, axi, not 'pcie'"),
    (["--interface", "axi", "--products-only"], "--interface axi runs the encoder on chip in its AXI shell"),
])
def test_cosim_bad_parameters_one_sentence_exit_2(tmp_path, args, words):
    result = hw("cosim", *args, "--out", tmp_path / "never")
    assert result.returncode == 2 and words in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "never").exists()


@pytest.mark.parametrize("args,words", [
    (["--max-tokens", 4], "Dev sentence 1 has 12 tokens, more than the build's --max-tokens 4"),
    (["--netlist", "generic"], "--netlist simulates the matrix-product accelerator only; add --products-only"),
])
def test_cosim_refuses_what_the_encoder_build_cannot_run(tmp_path, glue_dir, args, words):
    """A dev sentence longer than the build, or a netlist of the encoder: one sentence, exit 2, nothing written."""
    result = hw("cosim", *args, "--sentences", 2, "--glue-dir", glue_dir, "--out", tmp_path / "never")
    assert result.returncode == 2 and words in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "never").exists()


def test_cosim_command_on_a_real_dev_sentence(tiny, tmp_path, glue_dir):
    """`bebert-hw cosim` as a user runs it: the first SST-2 dev sentence through a tiny ensemble."""
    path, _ = tiny
    result = subprocess.run([sys.executable, "-m", "bebert.hw.cli", "cosim", "--artifact", str(path), "--pe", "8",
                             "--simd", "16", "--max-tokens", "24", "--attention-lanes", "2", "--sentences", "1", "--out", "runs/cosim", "--glue-dir", str(glue_dir)],
                            capture_output=True, text=True, cwd=tmp_path)  # a relative --out, as make demo gives
    assert result.returncode == 0, result.stderr[-2000:]
    assert "sentence   1:" in result.stdout and "equal to the simulator's" in result.stdout
    line = next(x for x in result.stdout.splitlines() if x.strip().startswith("sentence   1:"))
    model = line.split("(model ")[1].split(")")[0]
    assert f"cycles {model} " in line  # the counter printed equals the model printed


def test_streamed_gen_writes_no_member_images(tmp_path):
    """``gen --param-width`` (no width: 128 bits a beat): the two layer slots have no images (their words
    come on the parameter stream), the encoder's constants keep theirs for both members; the report
    gives the stream's beats per unit and the cycles of the schedule's model with a beat a cycle."""
    from bebert.hw.generator.param_stream import sentence_beats

    out = tmp_path / "accelerator"
    result = hw("gen", "--pe", 64, "--param-width", "--max-tokens", 32, "--out", out)
    assert result.returncode == 0, result.stderr
    assert "layers streamed 128 bits a beat into two slots" in result.stdout
    assert sorted(p.name for p in (out / "images").iterdir()) == sorted(
        f"encoder_{m}" for m in ("norm", "hidden_thresholds", "exp_table", "context_thresholds"))
    report = yaml.safe_load((out / REPORT_FILE).read_text())
    plan = plan_for(load_simulation(BUILTIN_DIR), HardwareConfig(64, 64, None, 4, 128))
    assert report["param_stream"]["beats_per_sentence"] == len(sentence_beats(plan))
    assert report["memories_per_set"]["weights"]["words"] == 2 * plan.slot_depth["weights"]
    assert report["cycles"]["per_inference"] == inference_cycles(plan, encoder_units(plan, 32, 4, 8), 32).total
