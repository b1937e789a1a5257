"""One recipe, end to end: fine-tune the teacher, distill the binary student, evaluate, export.

Dev is read once, after every stage has trained (``load_dev`` in ``finish_recipe``): checkpoints are
chosen on the recipe's selection rows, held out of the training set, never on dev.

Run directory layout (every stage resumable; a finished stage is never run twice):

    <out>/recipe.yaml                 the recipe as run
    <out>/selection_rows.json         the training rows held out for checkpoint selection (if any)
    <out>/teacher/stage<i>-<obj>/     checkpoint.pt while running
    <out>/teacher/model.pt            the fine-tuned full-precision teacher
    <out>/ternary/..., <out>/student/...   the same for the (optional) ternary model and the student
    <out>/results.json                metrics, wall times, the recipe (written last: it marks the run done)
    <out>/dev_predictions.npy         the student's dev predictions, in dev order
    <out>/artifact/                   the exported student (manifest.yaml + tensors.safetensors)
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml

from . import glue
from .backbone import load_backbone, load_tokenizer
from .data import EncodedSplit, encode
from .errors import BebertError
from .export import export_model
from .model import BertDims, QuantBert, load_hf_weights
from .qconfig import QuantConfig, load_quant_config
from .recipe import Recipe
from .selection import Selector, rows_digest, selection_split
from .train import (World, atomic_save, barrier, device_for, predict, predict_logits, predictions_from_logits,
                    train_stage)
from .tws import split_ternary_model


def evaluate(model: QuantBert, split: EncodedSplit, task: str) -> dict[str, float]:
    return glue.compute_metrics(task, predict(model, split, task), split.labels)


def save_model(model: QuantBert, path: Path) -> None:
    atomic_save({"dims": model.dims.to_dict(), "quant": model.qc.to_dict(), "state": model.state_dict()}, path)


def load_model_checkpoint(path: Path, device="cpu") -> QuantBert:
    saved = torch.load(path, map_location=device, weights_only=True)
    model = QuantBert(BertDims(**saved["dims"]), QuantConfig.from_dict(saved["quant"]))
    model.load_state_dict(saved["state"])
    return model.to(device)


@dataclass(frozen=True)
class TrainingData:
    """The training rows a recipe trains on (``fit``) and the ones it holds out to choose checkpoints."""

    fit: EncodedSplit
    selection: EncodedSplit | None
    selection_rows: np.ndarray | None  # indices into the (subset) training set, sorted
    recipe: Recipe

    def selector(self) -> Selector | None:
        if self.selection is None:
            return None
        return Selector(self.selection, self.recipe.task, self.recipe.selection.every)

    def record(self) -> dict | None:
        """What a run and its artifact record of the held-out rows."""
        if self.selection is None:
            return None
        return {"fraction": self.recipe.selection.fraction, "every": self.recipe.selection.every,
                "seed": self.recipe.seed, "rows": int(len(self.selection_rows)),
                "rows_sha256": rows_digest(self.selection_rows)}


def load_training(recipe: Recipe, tokenizer, glue_dir=None) -> TrainingData:
    """The training rows, cut to a seeded random subset if the recipe says so, then split into the rows
    trained on and the rows held out for checkpoint selection."""
    spec = glue.task_spec(recipe.task)
    train_rows = glue.load_split(recipe.task, "train", glue_dir)
    if recipe.train_subset is not None and recipe.train_subset < len(train_rows):
        keep = np.sort(np.random.default_rng(recipe.seed).permutation(len(train_rows))[:recipe.train_subset])
        train_rows = [train_rows[i] for i in keep]
    train = encode(train_rows, tokenizer, recipe.max_length, spec.is_regression)
    if recipe.selection is None:
        return TrainingData(train, None, None, recipe)
    fit_rows, held_rows = selection_split(train.labels, spec.is_regression, recipe.selection.fraction, recipe.seed)
    return TrainingData(train.take(fit_rows), train.take(held_rows), held_rows, recipe)


def load_dev(recipe: Recipe, tokenizer, glue_dir=None) -> EncodedSplit:
    """The dev rows, for a run's final scoring only."""
    spec = glue.task_spec(recipe.task)
    return encode(glue.load_split(recipe.task, "dev", glue_dir), tokenizer, recipe.max_length, spec.is_regression)


def train_model(model: QuantBert, stages, directory: Path, *, train: EncodedSplit, batch_size: int, seed: int,
                checkpoint_every: int, world: World, teacher: QuantBert | None, regression: bool,
                label: str, selector: Selector | None = None) -> tuple[QuantBert, list[dict]]:
    """Run ``stages`` on ``model`` unless ``directory/model.pt`` shows they already ran."""
    final = directory / "model.pt"
    stats_path = directory / "stages.json"
    if final.exists():
        return load_model_checkpoint(final, device_for(world)), json.loads(stats_path.read_text())
    stats = []
    for i, stage in enumerate(stages):
        stats.append(train_stage(model, stage, train, batch_size=batch_size, seed=seed + i,
                                 stage_dir=directory / f"stage{i}-{stage.objective}", world=world, teacher=teacher,
                                 regression=regression, checkpoint_every=checkpoint_every,
                                 desc=f"{label} {i + 1}/{len(stages)} {stage.objective}", selector=selector))
    if world.is_main:
        save_model(model, final)
        stats_path.write_text(json.dumps(stats, indent=2))
    barrier(world)
    return model, stats


def _train_role(model: QuantBert, stages, role: str, out: Path, recipe: Recipe, data: TrainingData,
                world: World, teacher: QuantBert | None, regression: bool) -> tuple[QuantBert, list[dict]]:
    return train_model(model, stages, out / role, train=data.fit, batch_size=recipe.batch_size, seed=recipe.seed,
                       checkpoint_every=recipe.checkpoint_every, world=world, teacher=teacher,
                       regression=regression, label=role, selector=data.selector())


def claim_run_dir(out: Path, recipe: Recipe, resume: bool, world: World) -> None:
    """Refuse to mix runs: ``out`` must be new, or hold a run of this very recipe being resumed."""
    recorded = out / "recipe.yaml"
    if recorded.exists():
        if not resume:
            raise BebertError(f"Run directory {out} already holds a run; pass --resume to continue it "
                              "or choose another --out.")
        if yaml.safe_load(recorded.read_text()) != recipe.to_dict():
            raise BebertError(f"Run directory {out} was started with a different recipe ({recorded}); "
                              "resume it with the same settings or choose another --out.")
    barrier(world)  # every process has looked at the run directory before rank 0 writes into it


def record_run(out: Path, recipe: Recipe, world: World, data: TrainingData | None = None) -> None:
    """Create the run directory with its recipe (and its held-out rows), once the inputs have loaded."""
    if world.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "recipe.yaml").write_text(yaml.safe_dump(recipe.to_dict(), sort_keys=False))
        if data is not None and data.selection_rows is not None:
            (out / "selection_rows.json").write_text(json.dumps(
                {**data.record(), "indices": data.selection_rows.tolist()}))


@dataclass
class TrainedRun:
    """A single-model run whose stages have all trained, before its final scoring on dev."""

    recipe: Recipe
    out: Path
    data: TrainingData
    teacher: QuantBert
    student: QuantBert
    stats: dict  # role -> the stages' stats
    started: float  # perf_counter at the start of this session's part of the run


def train_recipe(recipe: Recipe, out: str | Path, *, glue_dir=None, resume: bool = False,
                 world: World = World(), log=print) -> TrainedRun:
    """Train teacher and student as ``recipe`` says (resuming what already ran); reads no dev row."""
    out = Path(out)
    if recipe.ensemble is not None:
        raise BebertError("This recipe describes an ensemble; run it with bebert.ensemble.run_ensemble.")
    claim_run_dir(out, recipe, resume, world)
    torch.manual_seed(recipe.seed)
    spec = glue.task_spec(recipe.task)
    student_qc = load_quant_config(recipe.quant)
    if recipe.ternary and (student_qc.weight_bits != 1 or student_qc.weight_quantizer != "bwn"):
        raise BebertError("Ternary weight splitting needs a student with 1-bit bwn weights (the w1e1a4 setting).")
    hf, tokenizer = load_backbone(recipe.backbone)
    data = load_training(recipe, tokenizer, glue_dir)
    record_run(out, recipe, world, data)
    if world.is_main:
        held = "" if data.selection is None else f" ({len(data.selection)} more held out to choose checkpoints)"
        log(f"{spec.name}: {len(data.fit)} training rows{held}; student {student_qc.bits_label} "
            f"({student_qc.name}); {world.size} process(es) on {device_for(world)}")
    device = device_for(world)
    dims = BertDims.from_hf_config(hf.config, spec.num_labels)
    started = time.perf_counter()

    teacher = QuantBert(dims, load_quant_config("fp32"))
    load_hf_weights(teacher, hf.state_dict())
    teacher, teacher_stats = _train_role(teacher.to(device), recipe.teacher, "teacher", out, recipe, data, world,
                                          None, spec.is_regression)
    teacher.eval()
    if recipe.ternary:
        ternary = QuantBert(dims, student_qc.replace(weight_bits=2))
        ternary.load_state_dict(teacher.state_dict(), strict=False)
        ternary, ternary_stats = _train_role(ternary.to(device), recipe.ternary, "ternary", out, recipe, data,
                                              world, teacher, spec.is_regression)
        student = split_ternary_model(ternary, student_qc)
    else:
        ternary_stats = []
        student = QuantBert(dims, student_qc)
        student.load_state_dict(teacher.state_dict(), strict=False)  # quantizer steps start from the data
    student, student_stats = _train_role(student.to(device), recipe.student, "student", out, recipe, data,
                                          world, teacher, spec.is_regression)
    student.eval()
    return TrainedRun(recipe, out, data, teacher, student,
                      {"teacher": teacher_stats, "ternary": ternary_stats, "student": student_stats}, started)


def finish_recipe(run: TrainedRun, dev: EncodedSplit, *, world: World = World(), log=print) -> dict:
    """The run's final scoring: teacher and student on dev; exports the student, writes results.json."""
    recipe, out, spec = run.recipe, run.out, glue.task_spec(run.recipe.task)
    answers = {role: predict(model, dev, spec.name) for role, model in (("teacher", run.teacher), ("student", run.student))}
    metrics = {role: glue.compute_metrics(spec.name, values, dev.labels) for role, values in answers.items()}
    distinct = {role: glue.distinct_answers(spec.name, values) for role, values in answers.items()}
    teacher_metrics, student_metrics = metrics["teacher"], metrics["student"]
    stats = run.stats
    results = {
        "task": spec.name, "metric": spec.primary_metric, "bits": run.student.qc.bits_label,
        "train_rows": len(run.data.fit), "dev_rows": len(dev), "selection": run.data.record(),
        "teacher": {"dev": teacher_metrics, "dev_answers": distinct["teacher"], "stages": stats["teacher"]},
        "ternary": {"stages": stats["ternary"]} if recipe.ternary else None,
        "student": {"dev": student_metrics, "dev_answers": distinct["student"], "stages": stats["student"]},
        "wall_s_this_session": round(time.perf_counter() - run.started, 1),
        "train_wall_s": round(sum(s["wall_s"] for role in stats.values() for s in role), 1),
        "recipe": recipe.to_dict(),
    }
    if world.is_main:
        log(f"teacher (fp32) dev: {_fmt(teacher_metrics)}")
        log(f"student ({run.student.qc.bits_label}) dev: {_fmt(student_metrics)}")
        export_model(run.student.cpu(), out / "artifact", {
            "task": {"name": spec.name, "num_labels": spec.num_labels, "metric": spec.primary_metric},
            "dev_metrics": student_metrics, "recipe": recipe.to_dict(),
            **({"selection": run.data.record()} if run.data.selection is not None else {}),
        })
        np.save(out / "dev_predictions.npy", answers["student"])  # for the report's bootstrap errors
        (out / "results.json").write_text(json.dumps(results, indent=2))
        log(f"artifact written to {out / 'artifact'}")
    barrier(world)
    return results


def run_recipe(recipe: Recipe, out: str | Path, *, glue_dir=None, resume: bool = False,
               world: World = World(), log=print) -> dict:
    """Train teacher and student as ``recipe`` says, then score both on dev and export the student."""
    run = train_recipe(recipe, out, glue_dir=glue_dir, resume=resume, world=world, log=log)
    return finish_recipe(run, load_dev(recipe, load_tokenizer(recipe.backbone), glue_dir), world=world, log=log)


def _fmt(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.2f}" for k, v in metrics.items())
