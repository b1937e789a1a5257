"""The built-in model shipped in bebert/builtin_model: a 2-member BEBERT 1-1-4 for SST-2 whose
manifest records the dev accuracy measured when it was trained. Loading it and running SST-2 dev
must reproduce that accuracy, member by member joined as the manifest says."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from bebert import glue
from bebert.backbone import load_tokenizer
from bebert.builtin import BUILTIN_DIR, BUILTIN_RECIPE
from bebert.data import encode
from bebert.ensemble import artifact_predictions
from bebert.export import load_ensemble
from bebert.recipe import load_recipe


@pytest.fixture(scope="module")
def builtin():
    return load_ensemble(BUILTIN_DIR)


def test_builtin_is_the_recipes_two_member_ensemble(builtin):
    members, manifest = builtin
    recipe = load_recipe(BUILTIN_RECIPE)
    assert manifest["recipe"] == recipe.to_dict()
    assert len(members) == recipe.ensemble.members == 2
    assert manifest["bits"]["label"] == "1-1-4" and manifest["task"]["name"] == "sst2"
    assert manifest["ensemble"] == {"method": "adaboost", "mode": "none", "combine": recipe.ensemble.combine,
                                    "members": 2}
    assert all(alpha > 0 for _, alpha in members)


def test_builtin_reproduces_its_recorded_dev_accuracy(builtin, glue_dir):
    members, manifest = builtin
    recipe = manifest["recipe"]
    rows = glue.load_split("sst2", "dev", glue_dir)
    dev = encode(rows, load_tokenizer(recipe["backbone"]), recipe["max_length"])
    predictions, logits = artifact_predictions(members, dev, manifest["ensemble"]["combine"], regression=False)
    accuracy = glue.compute_metrics("sst2", predictions, dev.labels)["accuracy"]
    assert len(rows) == 872
    assert accuracy == pytest.approx(manifest["dev_metrics"]["accuracy"], abs=1e-9)
    assert accuracy > 80.0  # and it is a real classifier, far above the 50.9 of the majority class
    # the two members are different models that disagree on some sentences
    assert 0 < int((logits[0].argmax(-1) != logits[1].argmax(-1)).sum()) < len(rows)


def test_main_flow_runs_on_the_builtin_model(glue_dir):
    proc = subprocess.run([sys.executable, "-m", "bebert.cli", "demo", "--glue-dir", glue_dir],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "built-in model" in proc.stdout and "member 2 (alpha" in proc.stdout
    found = re.search(r"ensemble +accuracy ([0-9.]+) \(recorded at training: ([0-9.]+)\)", proc.stdout)
    assert found and found.group(1) == found.group(2), proc.stdout
