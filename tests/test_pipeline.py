"""End to end on the tiny backbone: run_recipe trains teacher and student, evaluates, exports; the
artifact reproduces the trained student exactly; a run is repeatable, resumable after a kill with
the same result, runs data-parallel under torchrun (with gradients really synchronised), and bad
recipes are refused with one BebertError sentence."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from bebert.backbone import load_tokenizer
from bebert.errors import BebertError
from bebert.export import load_model
from bebert.pipeline import load_dev, load_model_checkpoint, run_recipe
from bebert.recipe import Recipe, Stage, load_recipe
from bebert.train import predict_logits

SUBSET = 48
BATCH = 8


def tiny_recipe(backbone, task="sst2", quant="w1e1a4", **changes) -> Recipe:
    return Recipe(task=task, quant=quant, backbone=str(backbone), max_length=32, batch_size=BATCH,
                  train_subset=SUBSET, checkpoint_every=2,
                  teacher=(Stage("task", 1, 1e-3),),
                  student=(Stage("kd_hidden", 1, 1e-3), Stage("kd_pred", 1, 1e-3))).replace(**changes)


def quiet(*_args, **_kwargs):
    pass


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_bert_dir, glue_dir):
    """name -> (recipe, run dir, results) of a finished run, each run once per module."""
    done = {}

    def get(name: str, **recipe_changes):
        if name not in done:
            recipe = tiny_recipe(tiny_bert_dir, **recipe_changes)
            out = tmp_path_factory.mktemp(f"run-{name}")
            results = run_recipe(recipe, out, glue_dir=glue_dir, log=quiet)
            done[name] = recipe, out, results
        return done[name]

    return get


CASES = {
    "sst2-w1e1a4": dict(task="sst2", quant="w1e1a4"),
    "sst2-w1e1a1": dict(task="sst2", quant="w1e1a1"),
    "rte-w1e1a4": dict(task="rte", quant="w1e1a4", train_subset=32),
}


def manifest_of(out: Path) -> dict:
    return yaml.safe_load((out / "artifact" / "manifest.yaml").read_text())


@pytest.mark.parametrize("name", list(CASES))
def test_end_to_end_artifact_reproduces_the_trained_student(runs, name, glue_dir):
    recipe, out, results = runs(name, **CASES[name])
    bits = {"w1e1a4": "1-1-4", "w1e1a1": "1-1-1"}[recipe.quant]

    assert json.loads((out / "results.json").read_text()) == results
    assert (out / "artifact" / "manifest.yaml").is_file() and (out / "artifact" / "tensors.safetensors").is_file()
    assert yaml.safe_load((out / "recipe.yaml").read_text()) == recipe.to_dict()
    assert results["task"] == recipe.task and results["bits"] == bits
    metric = results["metric"]
    for role in ("teacher", "student"):
        assert 0.0 <= results[role]["dev"][metric] <= 100.0

    model, manifest = load_model(out / "artifact")
    checkpoint = load_model_checkpoint(out / "student" / "model.pt")
    dev = load_dev(recipe, load_tokenizer(recipe.backbone), glue_dir)
    assert results["dev_rows"] == len(dev)
    reloaded, trained = predict_logits(model, dev), predict_logits(checkpoint, dev)
    assert reloaded.shape == (len(dev), 2)
    assert np.array_equal(reloaded, trained)

    assert manifest["task"]["name"] == recipe.task
    assert manifest["task"]["metric"] == metric
    assert manifest["dev_metrics"] == results["student"]["dev"]
    assert manifest["recipe"] == recipe.to_dict()
    assert manifest["bits"]["label"] == bits
    assert manifest["quant"] == checkpoint.qc.to_dict()


def test_train_subset_is_recorded(runs):
    recipe, out, results = runs("sst2-w1e1a4", **CASES["sst2-w1e1a4"])
    assert results["train_rows"] == SUBSET
    assert results["recipe"]["train_subset"] == SUBSET
    assert manifest_of(out)["recipe"]["train_subset"] == SUBSET
    assert [s["steps"] for s in results["student"]["stages"]] == [SUBSET // BATCH] * 2


def test_same_recipe_and_seed_repeat_exactly(runs, tmp_path, glue_dir):
    recipe, out, results = runs("sst2-w1e1a4", **CASES["sst2-w1e1a4"])
    again = run_recipe(recipe, tmp_path / "again", glue_dir=glue_dir, log=quiet)
    assert again["student"]["dev"] == results["student"]["dev"]
    assert again["teacher"]["dev"] == results["teacher"]["dev"]
    first, second = manifest_of(out), manifest_of(tmp_path / "again")
    assert second["tensors"] == first["tensors"]  # every tensor's sha256, shape and kind
    assert second["tensor_file"] == first["tensor_file"]


@pytest.mark.parametrize("stage_dir,after", [("teacher/stage0-task", 2), ("student/stage1-kd_pred", 1)])
def test_killed_run_resumes_to_the_uninterrupted_result(runs, tmp_path, kill_after_checkpoint, glue_dir, stage_dir,
                                                        after):
    recipe, reference_out, reference = runs("sst2-w1e1a4", **CASES["sst2-w1e1a4"])
    out = tmp_path / "killed"
    state = kill_after_checkpoint(lambda: run_recipe(recipe, out, glue_dir=glue_dir, log=quiet), out / stage_dir, after)
    assert not (out / "results.json").exists() and not (out / "artifact").exists()
    assert (state["epoch"], state["step_in_epoch"]) == (0, 2 * after)  # really stopped mid-epoch

    with pytest.raises(BebertError, match="--resume"):
        run_recipe(recipe, out, glue_dir=glue_dir, log=quiet)
    resumed = run_recipe(recipe, out, glue_dir=glue_dir, resume=True, log=quiet)
    assert resumed["teacher"]["dev"] == reference["teacher"]["dev"]
    assert resumed["student"]["dev"] == reference["student"]["dev"]
    assert manifest_of(out)["tensors"] == manifest_of(reference_out)["tensors"]
    assert manifest_of(out)["tensor_file"] == manifest_of(reference_out)["tensor_file"]


def test_existing_run_dir_needs_resume_and_the_same_recipe(runs, glue_dir):
    recipe, out, _ = runs("sst2-w1e1a4", **CASES["sst2-w1e1a4"])
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    with pytest.raises(BebertError, match="--resume"):
        run_recipe(recipe, out, glue_dir=glue_dir, log=quiet)
    with pytest.raises(BebertError, match="different recipe"):
        run_recipe(recipe.replace(seed=7), out, glue_dir=glue_dir, resume=True, log=quiet)
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before


def test_resume_of_a_finished_run_reruns_nothing(runs, glue_dir, monkeypatch):
    recipe, out, results = runs("sst2-w1e1a4", **CASES["sst2-w1e1a4"])

    def no_training(*args, **kwargs):
        raise AssertionError("a finished stage was trained again")

    monkeypatch.setattr("bebert.pipeline.train_stage", no_training)
    again = run_recipe(recipe, out, glue_dir=glue_dir, resume=True, log=quiet)
    assert again["student"]["dev"] == results["student"]["dev"]
    assert again["teacher"]["dev"] == results["teacher"]["dev"]


# ------------------------------------------------------------------------------------------------
# data parallel under torchrun

DRIVER = textwrap.dedent("""
    # Runs `bebert train` under torchrun; records, per rank, what each rank trained on and a hash of
    # its weights when they are evaluated, so the test can tell that gradients were averaged.
    import hashlib, json, os, sys
    import bebert.pipeline, bebert.train
    from bebert.cli import main

    record = {"rows": [], "hashes": []}
    real_loss, real_predict = bebert.train.objective_loss, bebert.pipeline.predict

    def objective_loss(objective, out, teacher_out, batch, regression):
        record["rows"].append([objective, int(batch["labels"].shape[0])])
        return real_loss(objective, out, teacher_out, batch, regression)

    def predict(model, split, task):
        digest = hashlib.sha256()
        for name, value in sorted(model.state_dict().items()):
            digest.update(name.encode())
            digest.update(value.detach().cpu().contiguous().numpy().tobytes())
        record["hashes"].append(digest.hexdigest())
        return real_predict(model, split, task)

    bebert.train.objective_loss, bebert.pipeline.predict = objective_loss, predict
    rc = main(sys.argv[2:])
    with open(os.path.join(sys.argv[1], "rank%s.json" % os.environ["RANK"]), "w") as fh:
        json.dump(record, fh)
    sys.exit(rc)
""")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("student", [
    pytest.param((Stage("kd_pred", 1, 1e-3),), id="kd_pred"),
    pytest.param((Stage("kd_hidden", 1, 1e-3), Stage("kd_pred", 1, 1e-3)), id="kd_hidden+kd_pred"),
])
def test_torchrun_two_processes(tmp_path, tiny_bert_dir, glue_dir, student):
    recipe = tiny_recipe(tiny_bert_dir, task="rte", student=student)  # RTE: less to tokenize than SST-2
    recipe_file = tmp_path / "recipe.yaml"
    recipe_file.write_text(yaml.safe_dump(recipe.to_dict(), sort_keys=False))
    (tmp_path / "driver.py").write_text(DRIVER)
    out, records = tmp_path / "run", tmp_path / "records"
    records.mkdir()
    port = free_port()
    # CPU only (gloo), one thread per process: two ranks share the 2 cores with other work.
    env = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="", MASTER_ADDR="127.0.0.1",
               MASTER_PORT=str(port))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(port),
           str(tmp_path / "driver.py"), str(records),
           "train", "--recipe", str(recipe_file), "--out", str(out), "--glue-dir", str(glue_dir)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[:6000])
    assert (out / "results.json").is_file() and (out / "artifact" / "manifest.yaml").is_file()
    results = json.loads((out / "results.json").read_text())
    assert set(results["student"]["dev"]) == {"accuracy"}
    model, manifest = load_model(out / "artifact")
    assert manifest["dev_metrics"] == results["student"]["dev"]

    steps = SUBSET // BATCH
    for role in ("teacher", "student"):
        assert all(s["steps"] == steps * s["epochs"] for s in results[role]["stages"])
    rank0, rank1 = (json.loads((records / f"rank{r}.json").read_text()) for r in (0, 1))
    # Each rank took its half of every global batch, one optimizer step per global batch ...
    objectives = ["task"] + [s.objective for s in student]
    expected_rows = [[obj, BATCH // 2] for obj in objectives for _ in range(steps)]
    assert rank0["rows"] == expected_rows and rank1["rows"] == expected_rows
    # ... on different rows, yet the teacher and the student end identical on both ranks: only
    # averaged gradients do that.
    assert len(rank0["hashes"]) == 2 and rank0["hashes"] == rank1["hashes"]
    # The exported artifact is the student that rank 0 saved.
    dev = load_dev(recipe, load_tokenizer(recipe.backbone), glue_dir)
    reference = load_model_checkpoint(out / "student" / "model.pt")
    assert np.array_equal(predict_logits(model, dev), predict_logits(reference, dev))


# ------------------------------------------------------------------------------------------------
# bad recipes


def one_sentence(exc: BebertError) -> str:
    text = str(exc)
    assert "\n" not in text and text.endswith("."), text
    return text


def write(tmp_path, text: str) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(textwrap.dedent(text))
    return path


GOOD = """
task: sst2
teacher: [{objective: task, epochs: 1, lr: 1.0e-4}]
student: [{objective: kd_pred, epochs: 1, lr: 1.0e-4}]
"""


def test_good_recipe_file_loads(tmp_path):
    recipe = load_recipe(write(tmp_path, GOOD))
    assert recipe.task == "sst2" and recipe.teacher == (Stage("task", 1, 1e-4),)


# (recipe text, expected fragment, whether the sentence names the file)
BAD_FILES = [
    (GOOD.replace("task: sst2", "task: sst3"), "Unknown GLUE task 'sst3'", False),
    (GOOD.replace("objective: task", "objective: mse"), "objective must be one of", False),
    (GOOD.replace("epochs: 1, lr: 1.0e-4}]\nstudent", "epochs: 0, lr: 1.0e-4}]\nstudent"),
     "epochs must be a positive integer, not 0", False),
    (GOOD.replace("lr: 1.0e-4}]\nstudent", "lr: -1.0e-4}]\nstudent"), "learning rate must be a positive number", False),
    (GOOD + "epochz: 3\n", "unknown setting(s) ['epochz']", True),
    (GOOD + "batch_size: 0\n", "batch_size must be a positive integer", False),
    (GOOD + "train_subset: 0\n", "train_subset must be a positive integer or null", False),
    (GOOD.replace("epochs: 1, lr: 1.0e-4}]\nstudent", "epochs: 1}]\nstudent"), "teacher stage is malformed", True),
    (GOOD.replace("teacher: [{objective: task, epochs: 1, lr: 1.0e-4}]", "teacher: []"),
     "at least one teacher stage", False),
    ("- task: sst2\n- quant: w1e1a4\n", "must be a mapping of settings", True),
    ("just words\n", "must be a mapping of settings", True),
    ("task: [unclosed\n", "is not valid YAML", True),
]


@pytest.mark.parametrize("text,fragment,names_file", BAD_FILES)
def test_bad_recipe_file(tmp_path, text, fragment, names_file):
    path = write(tmp_path, text)
    assert text != GOOD
    with pytest.raises(BebertError) as info:
        load_recipe(path)
    message = one_sentence(info.value)
    assert fragment in message, message
    if names_file:
        assert str(path) in message


@pytest.mark.parametrize("text", [
    pytest.param(GOOD.replace("task: sst2", "task: 5"), id="task-int"),
    pytest.param(GOOD.replace("task: sst2", "task: null"), id="task-null"),
    pytest.param(GOOD + "seed: -1\n", id="seed-negative"),
    pytest.param(GOOD + "seed: abc\n", id="seed-string"),
    pytest.param(GOOD.replace("lr: 1.0e-4}]\nstudent", "lr: 1.0e-4, warmup: abc}]\nstudent"), id="warmup-string"),
    pytest.param(GOOD.replace("epochs: 1, lr: 1.0e-4}]\nstudent", "epochs: true, lr: 1.0e-4}]\nstudent"),
                 id="epochs-bool"),
    pytest.param(GOOD.replace("lr: 1.0e-4}]\nstudent", "lr: true}]\nstudent"), id="lr-bool"),
])
def test_recipe_values_of_the_wrong_type(tmp_path, text):
    with pytest.raises(BebertError) as info:
        load_recipe(write(tmp_path, text))
    one_sentence(info.value)


def test_missing_recipe_file(tmp_path):
    with pytest.raises(BebertError, match="does not exist") as info:
        load_recipe(tmp_path / "nope.yaml")
    assert str(tmp_path / "nope.yaml") in one_sentence(info.value)


@pytest.mark.parametrize("make", [
    lambda: Recipe(task="nope"),
    lambda: Stage("distill", 1, 1e-4),
    lambda: Stage("task", 0, 1e-4),
    lambda: Stage("task", 1.5, 1e-4),
    lambda: Stage("task", 1, -1e-4),
    lambda: Stage("task", 1, 0.0),
    lambda: Recipe(task="sst2", max_length=0),
])
def test_bad_recipe_objects(make):
    with pytest.raises(BebertError) as info:
        make()
    one_sentence(info.value)


def test_bad_quant_or_backbone_is_refused_before_the_run_dir_is_made(tmp_path, tiny_bert_dir, glue_dir):
    with pytest.raises(BebertError, match="Quantization config"):
        run_recipe(tiny_recipe(tiny_bert_dir, quant="w9"), tmp_path / "a", glue_dir=glue_dir, log=quiet)
    with pytest.raises(BebertError, match="Backbone"):
        run_recipe(tiny_recipe(tmp_path / "no-such-backbone"), tmp_path / "b", glue_dir=glue_dir, log=quiet)
    with pytest.raises(BebertError, match="GLUE folder"):
        run_recipe(tiny_recipe(tiny_bert_dir), tmp_path / "c", glue_dir=tmp_path / "no-glue", log=quiet)
    with pytest.raises(BebertError, match="Ternary weight splitting"):
        run_recipe(tiny_recipe(tiny_bert_dir, quant="w1e1a1", ternary=(Stage("kd_hidden", 1, 1e-3),)),
                   tmp_path / "d", glue_dir=glue_dir, log=quiet)
    assert not any((tmp_path / d).exists() for d in "abcd")
