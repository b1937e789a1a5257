"""BEBERT ensembles end to end on the tiny backbone: members boosted from the distilled student,
the boosting arithmetic applied to the real members, export -> load with identical predictions,
resumption, bagging, regression (AdaBoost.R2), the KD modes, and bad inputs."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import yaml

import bebert.ensemble
from bebert.artifact import RESERVED_KEYS, read_artifact, write_artifact
from bebert.backbone import load_tokenizer
from bebert.boosting import combine_members, samme_round, uniform_weights
from bebert.ensemble import artifact_predictions, run_ensemble
from bebert.errors import BebertError
from bebert.export import ArtifactError, export_ensemble, load_ensemble
from bebert.pipeline import load_dev, load_model_checkpoint, load_training, run_recipe
from bebert.recipe import Ensemble, Recipe, Stage, load_recipe
from bebert.train import predict_logits

SUBSET = 48
BATCH = 8


def tiny_recipe(backbone, task="sst2", **ensemble) -> Recipe:
    return Recipe(task=task, quant="w1e1a4", backbone=str(backbone), max_length=32, batch_size=BATCH,
                  train_subset=SUBSET, checkpoint_every=2,
                  teacher=(Stage("task", 1, 1e-3),), student=(Stage("kd_pred", 1, 1e-3),),
                  ensemble=Ensemble(**{"members": 2, "lr": 1e-3, **ensemble}))


def quiet(*_args, **_kwargs):
    pass


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_bert_dir, glue_dir):
    """name -> (recipe, run dir, results); the sst2 runs share one base run, as the experiments do."""
    done = {}

    def get(name: str, task="sst2", **ensemble):
        if name not in done:
            recipe = tiny_recipe(tiny_bert_dir, task=task, **ensemble)
            base = tmp_path_factory.getbasetemp() / f"base-{task}"
            out = tmp_path_factory.mktemp(f"ensemble-{name}")
            done[name] = recipe, out, run_ensemble(recipe, out, glue_dir=glue_dir, base_dir=base, log=quiet)
        return done[name]

    return get


def dev_split(recipe, glue_dir):
    """(the rows trained on, dev)"""
    tokenizer = load_tokenizer(recipe.backbone)
    return load_training(recipe, tokenizer, glue_dir).fit, load_dev(recipe, tokenizer, glue_dir)


def test_adaboost_members_follow_the_samme_rounds(runs, glue_dir):
    recipe, out, results = runs("adaboost")
    train, _ = dev_split(recipe, glue_dir)
    base = load_model_checkpoint(out.parent / "base-sst2" / "student" / "model.pt")
    weights = uniform_weights(SUBSET)
    for r, record in enumerate(results["members"]):
        member = load_model_checkpoint(out / "members" / str(r) / "model.pt")
        # Every member was trained away from the distilled student it started from.
        assert not np.array_equal(predict_logits(member, train), predict_logits(base, train))
        step = samme_round(weights, predict_logits(member, train).argmax(-1) == train.labels, 2)
        assert record["error"] == pytest.approx(step.error, abs=1e-12)
        assert record["alpha"] == pytest.approx(step.alpha if step.alpha > 0 else 1.0, abs=1e-12)
        assert np.allclose(np.load(out / "members" / str(r) / "next_weights.npy"), step.weights, rtol=0, atol=1e-15)
        weights = step.weights
        assert record["distinct_rows"] < SUBSET  # resampled with replacement
    assert results["ensemble"] == {"method": "adaboost", "mode": "none", "combine": "vote",
                                   "members": sum(r["kept"] for r in results["members"])}
    stages = json.loads((out / "members" / "0" / "stages.json").read_text())
    assert [s["objective"] for s in stages] == ["task"] and stages[0]["steps"] == SUBSET // BATCH


def test_exported_ensemble_reproduces_the_trained_members(runs, glue_dir):
    recipe, out, results = runs("adaboost")
    members, manifest = load_ensemble(out / "artifact")
    kept = [r for r in results["members"] if r["kept"]]
    assert [w for _, w in members] == [r["alpha"] for r in kept]
    assert manifest["ensemble"]["combine"] == "vote" and manifest["recipe"] == recipe.to_dict()
    _, dev = dev_split(recipe, glue_dir)
    predictions, logits = artifact_predictions(members, dev, "vote", regression=False)
    for r, member_logits in zip(kept, logits):
        trained = load_model_checkpoint(out / "members" / str(r["round"]) / "model.pt")
        assert np.array_equal(member_logits, predict_logits(trained, dev))
    assert np.array_equal(predictions, combine_members(np.stack(logits), [w for _, w in members], "vote", False))
    accuracy = 100.0 * float((predictions == dev.labels).mean())
    assert manifest["dev_metrics"]["accuracy"] == pytest.approx(accuracy, abs=1e-9)
    assert results["dev"] == results["dev_by_rule"]["vote"] == manifest["dev_metrics"]
    joined = results["dev_by_members"][len(members)]
    assert {rule: {k: v for k, v in joined[rule].items() if k != "answers"} for rule in joined} == results["dev_by_rule"]
    assert all(joined[rule]["answers"] == len(set(predictions.tolist())) for rule in ("vote",))
    assert json.loads((out / "results.json").read_text())["dev"] == results["dev"]


def test_resumed_ensemble_trains_nothing_and_repeats_the_result(runs, glue_dir, monkeypatch):
    recipe, out, results = runs("adaboost")

    def no_training(*_args, **_kwargs):
        raise AssertionError("a finished member was trained again")

    monkeypatch.setattr(bebert.ensemble, "train_model", no_training)
    monkeypatch.setattr(bebert.pipeline, "train_stage", no_training)
    again = run_ensemble(recipe, out, glue_dir=glue_dir, resume=True, base_dir=out.parent / "base-sst2", log=quiet)
    assert again["dev"] == results["dev"] and again["members"] == results["members"]


def test_killed_ensemble_resumes_to_the_uninterrupted_artifact(runs, glue_dir, tmp_path, monkeypatch):
    recipe, reference_out, _ = runs("adaboost")
    base = reference_out.parent / "base-sst2"
    real_train = bebert.ensemble.train_model
    calls = []

    def die_on_second_member(*args, **kwargs):
        calls.append(kwargs["label"])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_train(*args, **kwargs)

    monkeypatch.setattr(bebert.ensemble, "train_model", die_on_second_member)
    with pytest.raises(KeyboardInterrupt):
        run_ensemble(recipe, tmp_path / "killed", glue_dir=glue_dir, base_dir=base, log=quiet)
    assert (tmp_path / "killed" / "members" / "0" / "round.json").exists()
    assert not (tmp_path / "killed" / "artifact").exists()
    monkeypatch.setattr(bebert.ensemble, "train_model", real_train)
    run_ensemble(recipe, tmp_path / "killed", glue_dir=glue_dir, resume=True, base_dir=base, log=quiet)
    resumed = yaml.safe_load((tmp_path / "killed" / "artifact" / "manifest.yaml").read_text())
    reference = yaml.safe_load((reference_out / "artifact" / "manifest.yaml").read_text())
    assert resumed["tensors"] == reference["tensors"] and resumed["members"] == reference["members"]


def test_bagging_gives_equal_votes_and_keeps_weights_uniform(runs):
    _, out, results = runs("bagging", method="bagging", combine="logits")
    assert [r["alpha"] for r in results["members"]] == [1.0, 1.0]
    for r in range(2):
        assert np.allclose(np.load(out / "members" / str(r) / "next_weights.npy"), 1.0 / SUBSET)
    members, manifest = load_ensemble(out / "artifact")
    assert [w for _, w in members] == [1.0, 1.0] and manifest["ensemble"]["method"] == "bagging"


def test_regression_ensemble_uses_adaboost_r2(runs, glue_dir):
    recipe, out, results = runs("stsb", task="stsb")
    assert results["metric"] == "pearson" and set(results["dev"]) == {"pearson", "spearman"}
    members, manifest = load_ensemble(out / "artifact")
    _, dev = dev_split(recipe, glue_dir)
    predictions, logits = artifact_predictions(members, dev, "vote", regression=True)
    assert predictions.dtype == np.float64 and predictions.shape == (len(dev),)
    # the weighted median is always one of the members' scores
    assert all(any(np.isclose(p, l[i, 0]) for l in logits) for i, p in enumerate(predictions))
    assert 0.0 < results["members"][0]["error"] < 1.0


@pytest.mark.parametrize("mode,objectives", [("pred", ["kd_pred"]), ("two_stage", ["kd_hidden", "kd_pred"])])
def test_kd_modes_train_members_against_the_teacher(runs, mode, objectives):
    _, out, results = runs(f"mode-{mode}", mode=mode, members=1)
    stages = json.loads((out / "members" / "0" / "stages.json").read_text())
    assert [s["objective"] for s in stages] == objectives
    assert results["ensemble"]["mode"] == mode and len(results["members"]) == 1


# ------------------------------------------------------------------------------------------------
# bad inputs


@pytest.mark.parametrize("changes,fragment", [
    ({"members": 0}, "positive whole number of members"),
    ({"mode": "distill"}, "member mode must be one of"),
    ({"method": "stacking"}, "method must be one of"),
    ({"combine": "max"}, "combine rule must be one of"),
    ({"epochs": 0}, "epochs"),
])
def test_bad_ensemble_settings(changes, fragment):
    with pytest.raises(BebertError, match=fragment):
        Ensemble(**changes)


def test_recipe_file_with_a_bad_ensemble_section(tmp_path, tiny_bert_dir):
    data = tiny_recipe(tiny_bert_dir).to_dict()
    data["ensemble"]["rounds"] = 3
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(BebertError, match=r"ensemble has unknown setting\(s\) \['rounds'\]"):
        load_recipe(path)
    data["ensemble"] = {"members": 0}
    path.write_text(yaml.safe_dump(data))
    proc = subprocess.run([sys.executable, "-m", "bebert.cli", "train", "--recipe", path, "--out", tmp_path / "o"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip() == (
        "bebert: error: An ensemble needs a positive whole number of members, not 0.")
    assert not (tmp_path / "o").exists()


def test_recipes_are_routed_to_their_runner(tiny_bert_dir, tmp_path):
    with pytest.raises(BebertError, match="run_ensemble"):
        run_recipe(tiny_recipe(tiny_bert_dir), tmp_path / "a", log=quiet)
    with pytest.raises(BebertError, match="no ensemble section"):
        run_ensemble(tiny_recipe(tiny_bert_dir).base, tmp_path / "b", log=quiet)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_artifact_whose_members_disagree_in_shape(runs, tmp_path):
    _, out, _ = runs("adaboost")
    source = read_artifact(out / "artifact")
    tensors = {name: source.tensor(name) for name in source.names()}
    binary = {name for name, entry in source.manifest["tensors"].items() if entry["kind"] == "binary"}
    # member 1 claims a 3-way classifier while the manifest (and member 0) say 2 labels
    tensors["m1.classifier.weight_signs"] = np.ones((3, tensors["m1.classifier.weight_signs"].shape[1]), np.int8)
    tensors["m1.classifier.bias"] = np.zeros(3, np.float32)
    manifest = {k: v for k, v in source.manifest.items() if k not in RESERVED_KEYS}
    bad = write_artifact(tmp_path / "bad", manifest, tensors, binary=binary)
    with pytest.raises(ArtifactError) as info:
        load_ensemble(bad)
    message = str(info.value)
    assert str(bad) in message and "m1.classifier" in message and "(3, " in message, message


def test_an_ensemble_needs_members(tmp_path):
    with pytest.raises(ValueError, match="at least one member"):
        export_ensemble([], tmp_path / "none")
    assert not (tmp_path / "none").exists()


def test_eval_command_reports_members_and_ensemble(runs, glue_dir, tmp_path):
    recipe, out, results = runs("adaboost")
    proc = subprocess.run([sys.executable, "-m", "bebert.cli", "eval", "--artifact", out / "artifact",
                           "--glue-dir", glue_dir], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert results["ensemble"]["members"] == 2 and len(lines) == 3
    for line, record in zip(lines, results["members"]):
        assert f"alpha {record['alpha']:.4f}): accuracy {record['dev']['accuracy']:.2f}" in line
    assert lines[-1].startswith("sst2 dev (872 rows, ") and "ensemble of 2 (vote)" in lines[-1]
    assert f"accuracy {results['dev']['accuracy']:.2f}" in lines[-1]
