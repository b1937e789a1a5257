"""The command lines as a user meets them: every bad input is one `bebert: error:` line on stderr and
exit status 2 (never a traceback), a refused run leaves nothing behind, and help works."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import torch
import yaml

from bebert.backbone import load_backbone
from bebert.export import export_model
from bebert.model import BertDims, QuantBert, load_hf_weights
from bebert.qconfig import load_quant_config
from bebert.recipe import Recipe, Stage

ENV = dict(os.environ, OMP_NUM_THREADS="1")  # the machine is shared with a training job


def bebert(*args, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bebert.cli", *map(str, args)], env=ENV,
                          capture_output=True, text=True, timeout=timeout)


def assert_user_error(proc, *fragments):
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bebert: error: "), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def recipe_file(tmp_path_factory, tiny_bert_dir):
    recipe = Recipe(task="sst2", backbone=str(tiny_bert_dir), max_length=32, batch_size=8, train_subset=16,
                    teacher=(Stage("task", 1, 1e-3),), student=(Stage("kd_pred", 1, 1e-3),))
    path = tmp_path_factory.mktemp("recipes") / "tiny.yaml"
    path.write_text(yaml.safe_dump(recipe.to_dict(), sort_keys=False))
    return path


@pytest.fixture(scope="module")
def artifact(tmp_path_factory, tiny_bert_dir):
    """A real (untrained) w1e1a4 sst2 artifact of the tiny backbone, as a training run would write it."""
    hf, tokenizer = load_backbone(tiny_bert_dir)
    model = QuantBert(BertDims.from_hf_config(hf.config, 2), load_quant_config("w1e1a4"))
    load_hf_weights(model, hf.state_dict())
    with torch.no_grad():
        model(tokenizer(["warm up the quantizers"], return_tensors="pt")["input_ids"])
    return export_model(model.eval(), tmp_path_factory.mktemp("artifact") / "artifact", {
        "task": {"name": "sst2", "num_labels": 2, "metric": "accuracy"},
        "recipe": {"backbone": str(tiny_bert_dir), "max_length": 32},
    })


def test_missing_recipe_file(tmp_path):
    proc = bebert("train", "--recipe", tmp_path / "nope.yaml", "--out", tmp_path / "out")
    assert_user_error(proc, "nope.yaml", "does not exist")
    assert not (tmp_path / "out").exists()


def test_recipe_with_unknown_task(tmp_path, recipe_file):
    bad = tmp_path / "bad.yaml"
    bad.write_text(recipe_file.read_text().replace("task: sst2", "task: sst3"))
    proc = bebert("train", "--recipe", bad, "--out", tmp_path / "out")
    assert_user_error(proc, "Unknown GLUE task 'sst3'")
    assert not (tmp_path / "out").exists()  # nothing half-written: no run dir, no artifact


def test_unknown_quant_override(tmp_path, recipe_file):
    proc = bebert("train", "--recipe", recipe_file, "--out", tmp_path / "out", "--quant", "w7e7a7")
    assert_user_error(proc, "w7e7a7")
    assert not (tmp_path / "out").exists()


def test_missing_glue_dir(tmp_path, recipe_file):
    proc = bebert("train", "--recipe", recipe_file, "--out", tmp_path / "out", "--glue-dir", tmp_path / "no-glue")
    assert_user_error(proc, str(tmp_path / "no-glue"), "does not exist")
    assert not (tmp_path / "out").exists()


def test_eval_missing_artifact(tmp_path):
    proc = bebert("eval", "--artifact", tmp_path / "missing")
    assert_user_error(proc, str(tmp_path / "missing"), "does not exist")


def test_eval_corrupted_artifact(tmp_path, artifact):
    damaged = shutil.copytree(artifact, tmp_path / "damaged")
    blob = bytearray((damaged / "tensors.safetensors").read_bytes())
    blob[-10] ^= 0xFF
    (damaged / "tensors.safetensors").write_bytes(bytes(blob))
    proc = bebert("eval", "--artifact", damaged)
    assert_user_error(proc, str(damaged / "tensors.safetensors"), "corrupted")


def test_eval_with_missing_glue_dir(tmp_path, artifact):
    proc = bebert("eval", "--artifact", artifact, "--glue-dir", tmp_path / "no-glue")
    assert_user_error(proc, str(tmp_path / "no-glue"))


def test_eval_of_a_good_artifact(artifact, glue_dir):
    proc = bebert("eval", "--artifact", artifact, "--glue-dir", glue_dir)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("sst2 dev (872 rows, "), proc.stdout
    assert "accuracy" in proc.stdout


def test_bebert_help():
    proc = bebert("--help")
    assert proc.returncode == 0 and "usage: bebert" in proc.stdout
    for command in ("train", "eval", "demo"):
        assert command in proc.stdout


def test_bebert_without_command_is_a_usage_error():
    proc = bebert()
    assert proc.returncode == 2 and "usage: bebert" in proc.stderr and "Traceback" not in proc.stderr


def test_bebert_hw_help():
    proc = subprocess.run([sys.executable, "-m", "bebert.hw.cli", "--help"], env=ENV, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "usage: bebert-hw" in proc.stdout and "{sim,counts,gen,cosim,dse}" in proc.stdout
    bare = subprocess.run([sys.executable, "-m", "bebert.hw.cli"], env=ENV, capture_output=True, text=True, timeout=60)
    assert bare.returncode == 2 and "usage: bebert-hw" in bare.stderr and "Traceback" not in bare.stderr


@pytest.mark.parametrize("script", ["bebert", "bebert-hw"])
def test_console_scripts_are_installed(script):
    path = shutil.which(script, path=os.path.dirname(sys.executable))
    assert path is not None, f"{script} is not installed beside {sys.executable}"
    proc = subprocess.run([path, "--help"], env=ENV, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and f"usage: {script}" in proc.stdout
