"""Checkpoint selection on held-out training rows: the split is disjoint from the rows trained on,
seeded and stratified; every stage's choice is reproducible, includes step 0, and is the best score
it saw; dev is read only for the final scoring; checkpoints load without pickle; and a run killed
mid-stage resumes to the uninterrupted run's result bit for bit."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

import bebert.glue
import bebert.pipeline
from bebert.backbone import load_tokenizer
from bebert.ensemble import run_ensemble
from bebert.errors import BebertError
from bebert.glue import load_split
from bebert.pipeline import load_model_checkpoint, load_training, run_recipe
from bebert.recipe import Ensemble, Recipe, Selection, Stage
from bebert.selection import Selector, rows_digest, selection_split

SUBSET, BATCH, EVERY = 80, 8, 3


def selection_recipe(backbone, **changes) -> Recipe:
    return Recipe(task="sst2", quant="w1e1a4", backbone=str(backbone), max_length=32, batch_size=BATCH,
                  train_subset=SUBSET, checkpoint_every=2, teacher=(Stage("task", 1, 1e-3),),
                  student=(Stage("kd_hidden", 1, 1e-3), Stage("kd_pred", 1, 1e-3)),
                  selection=Selection(0.1, EVERY)).replace(**changes)


def quiet(*_args, **_kwargs):
    pass


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_bert_dir, glue_dir):
    recipe = selection_recipe(tiny_bert_dir)
    out = tmp_path_factory.mktemp("selection-run")
    return recipe, out, run_recipe(recipe, out, glue_dir=glue_dir, log=quiet)


# ------------------------------------------------------------------------------------------------
# the split


def test_split_is_disjoint_complete_seeded_and_stratified():
    labels = np.array([0] * 700 + [1] * 300)
    fit, held = selection_split(labels, False, 0.1, seed=42)
    assert len(held) == 100 and len(fit) == 900
    assert np.intersect1d(fit, held).size == 0
    assert np.array_equal(np.sort(np.concatenate([fit, held])), np.arange(1000))
    assert np.bincount(labels[held]).tolist() == [70, 30]  # the classes in their training proportions
    again_fit, again_held = selection_split(labels, False, 0.1, seed=42)
    assert np.array_equal(held, again_held) and np.array_equal(fit, again_fit)
    _, other = selection_split(labels, False, 0.1, seed=43)
    assert not np.array_equal(held, other)


def test_regression_split_is_stratified_by_score_bin():
    scores = np.concatenate([np.full(500, 0.4), np.full(300, 2.5), np.full(200, 5.0)])  # 5.0 joins bin 4
    _, held = selection_split(scores, True, 0.1, seed=0)
    assert sorted(np.unique(scores[held], return_counts=True)[1].tolist()) == [20, 30, 50]


def test_real_task_split_holds_out_training_rows_only(tiny_bert_dir, glue_dir):
    recipe = selection_recipe(tiny_bert_dir, train_subset=None, task="rte")
    data = load_training(recipe, load_tokenizer(recipe.backbone), glue_dir)
    rows = load_split("rte", "train", glue_dir)
    assert len(data.fit) + len(data.selection) == len(rows)
    assert len(data.selection) == round(0.1 * len(rows))
    held_texts = {rows[i].text_a + rows[i].text_b for i in data.selection_rows}
    dev_texts = {e.text_a + e.text_b for e in load_split("rte", "dev", glue_dir)}
    assert not held_texts & dev_texts
    assert data.record() == {"fraction": 0.1, "every": EVERY, "seed": 42, "rows": len(data.selection),
                             "rows_sha256": rows_digest(data.selection_rows)}


def test_selection_settings_are_checked():
    for bad in (dict(fraction=0), dict(fraction=1.0), dict(fraction="0.1"), dict(every=0), dict(every=2.5)):
        with pytest.raises(BebertError, match="Selection"):
            Selection(**bad)
    with pytest.raises(BebertError, match="unknown setting"):
        Recipe.from_dict({"task": "sst2", "selection": {"fraction": 0.1, "rows": 5}})
    recipe = Recipe.from_dict({"task": "sst2", "selection": {"fraction": 0.2, "every": 7}})
    assert recipe.selection == Selection(0.2, 7)
    assert Recipe.from_dict(recipe.to_dict()) == recipe
    assert "selection" not in Recipe(task="sst2").to_dict()  # recipes without it record as before


# ------------------------------------------------------------------------------------------------
# the choice


def test_every_stage_chose_its_best_scoring_checkpoint(reference, tiny_bert_dir, glue_dir):
    recipe, out, results = reference
    steps_per_epoch = (SUBSET - SUBSET // 10) // BATCH
    data = load_training(recipe, load_tokenizer(recipe.backbone), glue_dir)
    selector = Selector(data.selection, recipe.task, EVERY)
    teacher = load_model_checkpoint(out / "teacher" / "model.pt")
    for role in ("teacher", "student"):
        stages = results[role]["stages"]
        for stage in stages:
            steps = [s for s, _ in stage["selection_history"]]
            assert steps == sorted({0, steps_per_epoch, *range(0, steps_per_epoch, EVERY)})
            scores = [v for _, v in stage["selection_history"]]
            best = int(np.argmax(scores))  # the first of equal scores
            assert stage["selected_step"] == steps[best] and stage["selection_score"] == scores[best]
        # The saved model is the last stage's chosen checkpoint: it scores what the choice recorded.
        model = load_model_checkpoint(out / role / "model.pt")
        objective = stages[-1]["objective"]
        assert selector.score(model, objective, teacher) == stages[-1]["selection_score"]
    assert results["selection"] == data.record()
    manifest = yaml.safe_load((out / "artifact" / "manifest.yaml").read_text())
    assert manifest["selection"] == data.record()
    recorded = json.loads((out / "selection_rows.json").read_text())
    assert recorded["indices"] == data.selection_rows.tolist()


def test_choice_is_reproducible(reference, tmp_path, glue_dir):
    recipe, out, results = reference
    again = run_recipe(recipe, tmp_path / "again", glue_dir=glue_dir, log=quiet)
    for role in ("teacher", "student"):
        assert [s["selection_history"] for s in again[role]["stages"]] == \
            [s["selection_history"] for s in results[role]["stages"]]
    first = yaml.safe_load((out / "artifact" / "manifest.yaml").read_text())
    second = yaml.safe_load((tmp_path / "again" / "artifact" / "manifest.yaml").read_text())
    assert second["tensors"] == first["tensors"]


def test_a_later_worse_checkpoint_is_not_kept(reference, tmp_path, glue_dir, monkeypatch):
    """Scores that fall after step 0 leave every stage on the model it received."""
    recipe, _, _ = reference
    falling = iter(range(10**6))
    monkeypatch.setattr(Selector, "score", lambda self, model, objective, teacher=None: -float(next(falling)))
    results = run_recipe(recipe, tmp_path / "falling", glue_dir=glue_dir, log=quiet)
    for role in ("teacher", "student"):
        assert all(stage["selected_step"] == 0 for stage in results[role]["stages"])
    student = load_model_checkpoint(tmp_path / "falling" / "student" / "model.pt")
    teacher = load_model_checkpoint(tmp_path / "falling" / "teacher" / "model.pt")
    # The student started from the teacher's weights and kept none of its updates: they are still the teacher's.
    own, shared = student.state_dict(), [k for k in teacher.state_dict() if k in student.state_dict()]
    assert len(shared) == len(teacher.state_dict()) and all(torch.equal(own[k], teacher.state_dict()[k]) for k in shared)


# ------------------------------------------------------------------------------------------------
# dev stays out of every choice


def _record_reads_and_training(monkeypatch) -> list[str]:
    events = []
    real_load, real_stage = bebert.glue.load_split, bebert.pipeline.train_stage

    def load(task, split, data_dir=None):
        events.append(f"read {split}")
        return real_load(task, split, data_dir)

    def stage(*args, **kwargs):
        events.append("train")
        return real_stage(*args, **kwargs)

    monkeypatch.setattr(bebert.glue, "load_split", load)
    monkeypatch.setattr(bebert.pipeline, "train_stage", stage)
    return events


def test_single_run_reads_dev_only_after_all_training(tiny_bert_dir, tmp_path, glue_dir, monkeypatch):
    events = _record_reads_and_training(monkeypatch)
    run_recipe(selection_recipe(tiny_bert_dir), tmp_path / "run", glue_dir=glue_dir, log=quiet)
    assert events.count("train") == 3 and events.count("read dev") == 1
    assert events.index("read dev") > max(i for i, e in enumerate(events) if e == "train")


def test_ensemble_run_reads_dev_only_after_all_training(tiny_bert_dir, tmp_path, glue_dir, monkeypatch):
    events = _record_reads_and_training(monkeypatch)
    recipe = selection_recipe(tiny_bert_dir, ensemble=Ensemble("adaboost", 2, "none", 1, 1e-3, "logits"))
    results = run_ensemble(recipe, tmp_path / "ensemble", glue_dir=glue_dir, log=quiet)
    assert events.count("train") == 3 + 2  # teacher, two student stages, then one stage per member
    assert events.index("read dev") > max(i for i, e in enumerate(events) if e == "train")
    assert (tmp_path / "ensemble" / "base" / "results.json").is_file()
    assert results["selection"]["rows"] == SUBSET // 10
    for member in range(2):
        stages = json.loads((tmp_path / "ensemble" / "members" / str(member) / "stages.json").read_text())
        assert stages[0]["selection_history"][0][0] == 0  # the distilled student is a candidate
    # The first member is chosen by its own held-out score, the second by the ensemble's with it: the
    # score its choice recorded is the held-out metric of both members joined at their alphas (of
    # the first alone when the second got no vote).
    rounds = [json.loads((tmp_path / "ensemble" / "members" / str(r) / "round.json").read_text()) for r in range(2)]
    assert [r["selected_by"] for r in rounds] == ["own", "ensemble"]
    chosen = [json.loads((tmp_path / "ensemble" / "members" / str(r) / "stages.json").read_text())[-1]["selection_score"]
              for r in range(2)]
    joined = results["selection_by_members"]
    assert chosen[0] == joined[1]["logits"]["accuracy"]
    assert chosen[1] == joined[2 if rounds[1]["kept"] else 1]["logits"]["accuracy"]


# ------------------------------------------------------------------------------------------------
# checkpoints


def test_checkpoints_load_without_pickle(reference):
    _, out, _ = reference
    for path in [*out.rglob("checkpoint.pt"), *out.rglob("model.pt")]:
        state = torch.load(path, weights_only=True)
        assert isinstance(state, dict)
    stage = torch.load(out / "student" / "stage1-kd_pred" / "checkpoint.pt", weights_only=True)
    assert stage["selection"]["best_state"].keys() == stage["model"].keys()


@pytest.mark.parametrize("stage_dir,after", [("teacher/stage0-task", 2), ("student/stage1-kd_pred", 1)])
def test_killed_run_resumes_to_the_uninterrupted_choice(reference, tmp_path, kill_after_checkpoint, glue_dir,
                                                       stage_dir, after):
    recipe, reference_out, expected = reference
    out = tmp_path / "killed"
    state = kill_after_checkpoint(lambda: run_recipe(recipe, out, glue_dir=glue_dir, log=quiet), out / stage_dir, after)
    assert (state["epoch"], state["step_in_epoch"]) == (0, 2 * after)  # really stopped mid-stage
    assert state["selection"]["history"]  # with choices already made

    resumed = run_recipe(recipe, out, glue_dir=glue_dir, resume=True, log=quiet)
    for role in ("teacher", "student"):
        assert resumed[role]["stages"] == [{**s, "wall_s": r["wall_s"]} for s, r in
                                           zip(expected[role]["stages"], resumed[role]["stages"])]
        assert resumed[role]["dev"] == expected[role]["dev"]
    first = yaml.safe_load((reference_out / "artifact" / "manifest.yaml").read_text())
    second = yaml.safe_load((out / "artifact" / "manifest.yaml").read_text())
    assert second["tensors"] == first["tensors"] and second["tensor_file"] == first["tensor_file"]


# ------------------------------------------------------------------------------------------------
# the shipped recipes and BiT's stage


def test_task_recipes_hold_rows_out_and_their_1_1_1_recipes_share_the_teacher():
    from bebert.recipe import task_recipe

    for task in ("sst2", "mrpc", "rte", "cola", "stsb"):
        a4, a1 = task_recipe(task, "w1e1a4"), task_recipe(task, "w1e1a1")
        assert a4.selection == a1.selection == Selection(0.1, 50)
        # bebert_results.py trains the teacher once per task: both recipes must describe the same one.
        same = ("task", "backbone", "max_length", "batch_size", "seed", "train_subset", "teacher", "selection")
        assert all(getattr(a4, k) == getattr(a1, k) for k in same)
        assert a1.quant == "w1e1a1-fphead" and [s.objective for s in a1.student] == ["kd_joint"]


def test_kd_joint_is_hidden_states_without_attention_plus_prediction():
    from bebert.model import BertOutput
    from bebert.objectives import hidden_kd_loss, objective_loss, prediction_kd_loss

    torch.manual_seed(0)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])

    def output():
        return BertOutput(torch.randn(2, 3), [torch.randn(2, 4, 8) for _ in range(3)],
                          [torch.randn(2, 2, 4, 4) for _ in range(2)])

    student, teacher = output(), output()
    joint = objective_loss("kd_joint", student, teacher, {"attention_mask": mask}, False)
    hidden_only = hidden_kd_loss(student, teacher, mask, attention=False)
    assert torch.allclose(joint, hidden_only + prediction_kd_loss(student.logits, teacher.logits, False))
    assert hidden_kd_loss(student, teacher, mask) > hidden_only  # the attention term is what is left out
