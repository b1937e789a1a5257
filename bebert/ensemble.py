"""BEBERT: binary members boosted (or bagged) from the distilled student, joined by their vote.

As BEBERT does it, every member starts from the KD-trained binary model (the recipe's single
student, trained first by ``run_recipe``) and is trained on the training set resampled by the
current sample weights; then it is scored on the whole, un-resampled training set, which gives
its weighted error, its vote weight alpha and the next round's sample weights (boosting.py).
Bagging draws a uniform bootstrap sample instead and gives every member weight 1.

Run directory (every step resumable; a finished member is never trained twice):

    <out>/recipe.yaml                the ensemble recipe as run
    <base>/                          the single-model run the members start from (default <out>/base;
                                     any finished run of the same base recipe can be reused)
    <out>/members/<r>/stage<i>-<objective>/checkpoint.pt    while member r trains
    <out>/members/<r>/model.pt, stages.json, round.json, next_weights.npy
    <out>/results.json               dev metrics of every member and of the ensemble, rounds, wall times
    <out>/artifact/                  every kept member with its alpha (the contract downstream)
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from . import glue
from .backbone import load_tokenizer
from .boosting import combine_members, r2_round, resample, samme_round, uniform_weights
from .data import EncodedSplit, encode
from .errors import BebertError
from .export import export_ensemble
from .model import QuantBert
from .objectives import NEEDS_TEACHER
from .pipeline import (TrainingData, claim_run_dir, finish_recipe, load_dev, load_model_checkpoint, load_training,
                       predictions_from_logits, record_run, train_model, train_recipe)
from .recipe import COMBINE_RULES, Recipe
from .selection import Selector
from .train import World, barrier, device_for, predict_logits

ROUND_SEED_SALT = 104729  # keeps the resampling stream apart from the recipe's other seeded draws


def ensemble_metrics(member_logits: list[np.ndarray], alphas, task: str, labels: np.ndarray,
                     combine: str) -> dict[str, float]:
    """The task's metrics of the members' joint prediction (logits: one (rows, labels) array each)."""
    spec = glue.task_spec(task)
    predictions = combine_members(np.stack(member_logits), alphas, combine, spec.is_regression)
    return glue.compute_metrics(task, predictions, labels)


def _round_rows(method: str, weights: np.ndarray, seed: int, r: int) -> np.ndarray:
    rng = np.random.default_rng([seed, ROUND_SEED_SALT, r])
    if method == "adaboost":
        return resample(weights, rng)
    return rng.integers(0, len(weights), size=len(weights))  # bagging: a uniform bootstrap sample


def _score_round(method: str, weights: np.ndarray, train_logits: np.ndarray, labels: np.ndarray,
                 num_labels: int, regression: bool):
    """(error, alpha, next weights, stop) of a freshly trained member, from its training-set logits."""
    if regression:
        boosted = r2_round(weights, train_logits[:, 0] - labels)
    else:
        boosted = samme_round(weights, train_logits.argmax(-1) == labels, num_labels)
    if method == "bagging":
        return boosted.error, 1.0, weights, False  # error reported for comparison, weights untouched
    return boosted.error, boosted.alpha, boosted.weights, boosted.stop


def _write_json(path: Path, data) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


class MemberSelector(Selector):
    """Scores a later member by what it adds to the ensemble: the held-out metric of the members kept
    so far joined with the candidate at the vote weight boosting would give it now (from its weighted
    error on the rows trained on). A candidate no better than chance joins with weight 0, so the
    ensemble so far is its score: the first checkpoint that adds something beats it."""

    def __init__(self, base: Selector, fit: EncodedSplit, weights: np.ndarray, earlier_logits: list[np.ndarray],
                 earlier_alphas: list[float], method: str, combine: str):
        super().__init__(base.rows, base.task, base.every)
        self.fit, self.weights, self.method, self.combine = fit, weights, method, combine
        self.earlier_logits, self.earlier_alphas = earlier_logits, earlier_alphas
        self.spec = glue.task_spec(base.task)

    def score(self, model, objective: str, teacher=None) -> float:
        if objective == "kd_hidden":  # the head is frozen there: the stage's own loss judges it
            return super().score(model, objective, teacher)
        _, alpha, _, _ = _score_round(self.method, self.weights, predict_logits(model, self.fit), self.fit.labels,
                                      self.spec.num_labels, self.spec.is_regression)
        logits = np.stack(self.earlier_logits + [predict_logits(model, self.rows)])
        predictions = combine_members(logits, self.earlier_alphas + [max(alpha, 0.0)], self.combine,
                                      self.spec.is_regression)
        with warnings.catch_warnings():  # a constant prediction has no correlation: scored as the worst
            warnings.simplefilter("ignore")
            value = glue.score(self.task, predictions, self.rows.labels)
        return -math.inf if math.isnan(value) else value


def train_members(recipe: Recipe, out: Path, base_dir: Path, data: TrainingData, world: World,
                  log=print) -> tuple[list[QuantBert], list[dict]]:
    """Train (or reload) every member; returns the kept members and one record per round. The boosting
    weights live on the rows trained on. The first member picks its checkpoint on its own held-out
    score, every later one on the ensemble's with it (MemberSelector)."""
    ens = recipe.ensemble
    train = data.fit
    spec = glue.task_spec(recipe.task)
    device = device_for(world)
    base_student = load_model_checkpoint(base_dir / "student" / "model.pt", device)
    needs_teacher = any(stage.objective in NEEDS_TEACHER for stage in ens.stages)
    teacher = load_model_checkpoint(base_dir / "teacher" / "model.pt", device).eval() if needs_teacher else None
    weights = uniform_weights(len(train))
    members, rounds = [], []
    held_out_logits, alphas = [], []  # of the kept members, for the later members' selection
    for r in range(ens.members):
        member_dir = out / "members" / str(r)
        round_path = member_dir / "round.json"
        if round_path.exists():
            record = json.loads(round_path.read_text())
        else:
            rows = _round_rows(ens.method, weights, recipe.seed, r)
            selector = data.selector()
            if selector is not None and members:
                selector = MemberSelector(selector, train, weights, held_out_logits, alphas, ens.method, ens.combine)
            member, stats = train_model(
                copy.deepcopy(base_student), ens.stages, member_dir, train=train.take(rows),
                batch_size=recipe.batch_size, seed=recipe.seed + 1000 * (r + 1),
                checkpoint_every=recipe.checkpoint_every, world=world, teacher=teacher,
                regression=spec.is_regression, label=f"member {r + 1}/{ens.members}", selector=selector)
            started = time.perf_counter()
            train_logits = predict_logits(member, train)
            error, alpha, next_weights, stop = _score_round(ens.method, weights, train_logits, train.labels,
                                                            spec.num_labels, spec.is_regression)
            # A member no better than chance gets no vote and is dropped, unless it is the only one:
            # an ensemble of one member is that member.
            kept = alpha > 0 or r == 0
            weight = alpha if alpha > 0 else (1.0 if kept else 0.0)
            record = {"round": r, "error": error, "alpha": weight, "kept": kept, "stop": stop,
                      "selected_by": "ensemble" if isinstance(selector, MemberSelector) else "own",
                      "distinct_rows": int(np.unique(rows).size), "stages": stats,
                      "train_wall_s": round(sum(s["wall_s"] for s in stats), 1),
                      "score_wall_s": round(time.perf_counter() - started, 1)}
            if world.is_main:
                np.save(member_dir / "next_weights.npy", next_weights)
                _write_json(round_path, record)  # last: its presence marks the round finished
                log(f"member {r + 1}: weighted training error {error:.4f}, alpha {record['alpha']:.4f}"
                    + ("" if kept else " (no better than chance: dropped)"))
            barrier(world)
        weights = np.load(member_dir / "next_weights.npy")
        rounds.append(record)
        if record["kept"]:
            members.append(load_model_checkpoint(member_dir / "model.pt", device).eval())
            if data.selection is not None:
                held_out_logits.append(predict_logits(members[-1], data.selection))
                alphas.append(record["alpha"])
        if record["stop"]:
            break
    return members, rounds


def run_ensemble(recipe: Recipe, out: str | Path, *, glue_dir=None, resume: bool = False, base_dir=None,
                 world: World = World(), log=print) -> dict:
    """Train the base model (unless ``base_dir`` holds it), then the members; evaluate and export."""
    if recipe.ensemble is None:
        raise BebertError("This recipe has no ensemble section; run it with bebert.pipeline.run_recipe.")
    out = Path(out)
    claim_run_dir(out, recipe, resume, world)
    base_dir = Path(base_dir) if base_dir is not None else out / "base"
    finished_base = base_dir / "results.json"
    base = json.loads(finished_base.read_text()) if finished_base.exists() else None
    base_run = None if base else train_recipe(recipe.base, base_dir, glue_dir=glue_dir, resume=True, world=world,
                                              log=log)
    spec = glue.task_spec(recipe.task)
    tokenizer = load_tokenizer(recipe.backbone)
    data = load_training(recipe, tokenizer, glue_dir)
    record_run(out, recipe, world, data)

    ens = recipe.ensemble
    if world.is_main:
        log(f"{spec.name}: BEBERT {ens.method}, {ens.members} member(s) trained with "
            f"{'no KD' if ens.mode == 'none' else ens.mode + ' KD'} from {base_dir / 'student'}")
    members, rounds = train_members(recipe, out, base_dir, data, world, log)
    dev = load_dev(recipe, tokenizer, glue_dir)  # the final scoring: every member has trained
    if base is None:
        base = finish_recipe(base_run, dev, world=world, log=log)
    alphas = [record["alpha"] for record in rounds if record["kept"]]
    dev_logits = [predict_logits(member, dev) for member in members]
    metrics = {rule: ensemble_metrics(dev_logits, alphas, spec.name, dev.labels, rule) for rule in COMBINE_RULES}
    # AdaBoost is sequential, so the first m members are the m-member ensemble: one run of 4 gives 1..4.
    prefixes = _by_prefix(dev_logits, alphas, spec.name, dev.labels)
    # The same on the held-out training rows, where a choice between ensembles may be made.
    held_out = None if data.selection is None else _by_prefix(
        [predict_logits(member, data.selection) for member in members], alphas, spec.name, data.selection.labels)
    results = {
        "task": spec.name, "metric": spec.primary_metric, "bits": base["bits"],
        "ensemble": {"method": ens.method, "mode": ens.mode, "combine": ens.combine, "members": len(members)},
        "dev": metrics[ens.combine], "dev_by_rule": metrics, "dev_by_members": prefixes,
        "selection_by_members": held_out,
        "members": [{**{k: record[k] for k in ("round", "error", "alpha", "kept", "distinct_rows",
                                               "train_wall_s", "score_wall_s")},
                     **_own_dev(spec.name, logits, dev.labels)}
                    for record, logits in zip(rounds, _align(rounds, dev_logits))],
        "base": {"dir": str(base_dir), "teacher_dev": base["teacher"]["dev"], "student_dev": base["student"]["dev"],
                 "train_wall_s": base["train_wall_s"]},
        "train_wall_s": round(sum(record["train_wall_s"] for record in rounds), 1),
        "score_wall_s": round(sum(record["score_wall_s"] for record in rounds), 1),
        "train_rows": len(data.fit), "dev_rows": len(dev), "selection": data.record(),
        "recipe": recipe.to_dict(),
    }
    if world.is_main:
        metric = spec.primary_metric
        log(f"ensemble of {len(members)} ({ens.combine}) dev {metric} {metrics[ens.combine][metric]:.2f} "
            f"(single binary {base['student']['dev'][metric]:.2f})")
        export_ensemble([(m.cpu(), a) for m, a in zip(members, alphas)], out / "artifact", {
            "task": {"name": spec.name, "num_labels": spec.num_labels, "metric": spec.primary_metric},
            "ensemble": results["ensemble"],
            "dev_metrics": metrics[ens.combine], "recipe": recipe.to_dict(),
            **({"selection": data.record()} if data.selection is not None else {}),
        })
        _write_json(out / "results.json", results)
        log(f"artifact written to {out / 'artifact'}")
    barrier(world)
    return results


def _own_dev(task: str, logits: np.ndarray | None, labels: np.ndarray) -> dict:
    """A member's own dev metrics and distinct answers (None for a dropped member)."""
    if logits is None:
        return {"dev": None, "dev_answers": None}
    predictions = predictions_from_logits(logits, glue.task_spec(task).is_regression)
    return {"dev": glue.compute_metrics(task, predictions, labels), "dev_answers": glue.distinct_answers(task, predictions)}


def _by_prefix(member_logits: list[np.ndarray], alphas, task: str, labels: np.ndarray) -> dict:
    """m -> rule -> metrics (and distinct answers) of the first m members joined by each rule."""
    spec = glue.task_spec(task)
    found = {}
    for m in range(1, len(member_logits) + 1):
        found[m] = {}
        for rule in COMBINE_RULES:
            predictions = combine_members(np.stack(member_logits[:m]), alphas[:m], rule, spec.is_regression)
            found[m][rule] = {**glue.compute_metrics(task, predictions, labels),
                              "answers": glue.distinct_answers(task, predictions)}
    return found


def _align(rounds: list[dict], kept_logits: list[np.ndarray]) -> list[np.ndarray | None]:
    """One entry per round: the kept members' logits in order, None for a dropped member."""
    kept = iter(kept_logits)
    return [next(kept) if record["kept"] else None for record in rounds]


def encode_for_artifact(manifest: dict, examples, regression: bool, backbone=None) -> EncodedSplit:
    """GLUE examples tokenized as the artifact's recipe did in training (its backbone's tokenizer and
    max_length), unless ``backbone`` names another tokenizer."""
    recipe = manifest.get("recipe", {})
    return encode(examples, load_tokenizer(backbone or recipe.get("backbone")), recipe.get("max_length", 128), regression)


@torch.no_grad()
def artifact_predictions(members: list[tuple[QuantBert, float]], split: EncodedSplit, combine: str,
                         regression: bool) -> tuple[np.ndarray, list[np.ndarray]]:
    """(the ensemble's predictions, each member's logits) of loaded artifact members on ``split``."""
    logits = [predict_logits(model, split) for model, _ in members]
    return combine_members(np.stack(logits), [w for _, w in members], combine, regression), logits
