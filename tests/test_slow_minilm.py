"""Slow: the built-in demo flow on the real MiniLM backbone and real SST-2 (`make test-slow`).

Trains the teacher and the binary 1-1-4 student of bebert/recipes/demo.yaml, then checks what a
user is promised: the student learned the task, and the exported artifact reproduces it exactly.
"""

import os

import numpy as np
import pytest
import torch

from bebert.backbone import load_tokenizer
from bebert.cli import _builtin_recipe
from bebert.export import load_model
from bebert.pipeline import load_dev, load_model_checkpoint, run_recipe
from bebert.recipe import load_recipe
from bebert.train import predict_logits

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def all_cores():
    """Real MiniLM training wants every core (conftest pins the tiny tests to one thread)."""
    before = torch.get_num_threads()
    torch.set_num_threads(os.cpu_count() or 1)
    yield
    torch.set_num_threads(before)


def test_demo_recipe_learns_sst2_and_exports_exactly(tmp_path, glue_dir):
    recipe = load_recipe(_builtin_recipe("demo"))
    results = run_recipe(recipe, tmp_path / "run", glue_dir=glue_dir)
    # 444/872 is the majority class; both models must be clearly above it.
    assert results["teacher"]["dev"]["accuracy"] > 75.0
    assert results["student"]["dev"]["accuracy"] > 60.0

    dev = load_dev(recipe, load_tokenizer(recipe.backbone), glue_dir)
    trained = load_model_checkpoint(tmp_path / "run" / "student" / "model.pt").eval()
    reloaded, manifest = load_model(tmp_path / "run" / "artifact")
    assert np.array_equal(predict_logits(trained, dev), predict_logits(reloaded, dev))
    assert manifest["dev_metrics"] == results["student"]["dev"]

    artifact_bytes = sum(f.stat().st_size for f in (tmp_path / "run" / "artifact").iterdir())
    teacher_bytes = (tmp_path / "run" / "teacher" / "model.pt").stat().st_size
    assert artifact_bytes * 10 <= teacher_bytes
