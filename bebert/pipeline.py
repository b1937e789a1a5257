"""One recipe, end to end: fine-tune the teacher, distill the binary student, evaluate, export.

Run directory layout (every stage resumable; a finished stage is never run twice):

    <out>/recipe.yaml                 the recipe as run
    <out>/teacher/stage<i>-<obj>/     checkpoint.pt while running
    <out>/teacher/model.pt            the fine-tuned full-precision teacher
    <out>/ternary/..., <out>/student/...   the same for the (optional) ternary model and the student
    <out>/results.json                metrics, wall times, the recipe
    <out>/artifact/                   the exported student (manifest.yaml + tensors.safetensors)
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from . import glue
from .backbone import load_backbone
from .data import EncodedSplit, encode
from .errors import BebertError
from .export import export_model
from .model import BertDims, QuantBert, load_hf_weights
from .qconfig import QuantConfig, load_quant_config
from .recipe import Recipe
from .train import World, atomic_save, barrier, device_for, predict_logits, train_stage
from .tws import split_ternary_model


def predictions_from_logits(logits: np.ndarray, regression: bool) -> np.ndarray:
    return logits[:, 0] if regression else logits.argmax(-1)


def evaluate(model: QuantBert, split: EncodedSplit, task: str) -> dict[str, float]:
    spec = glue.task_spec(task)
    preds = predictions_from_logits(predict_logits(model, split), spec.is_regression)
    return glue.compute_metrics(task, preds, split.labels)


def save_model(model: QuantBert, path: Path) -> None:
    atomic_save({"dims": model.dims.to_dict(), "quant": model.qc.to_dict(), "state": model.state_dict()}, path)


def load_model_checkpoint(path: Path, device="cpu") -> QuantBert:
    saved = torch.load(path, map_location=device, weights_only=False)
    model = QuantBert(BertDims(**saved["dims"]), QuantConfig.from_dict(saved["quant"]))
    model.load_state_dict(saved["state"])
    return model.to(device)


def load_data(recipe: Recipe, tokenizer, glue_dir=None) -> tuple[EncodedSplit, EncodedSplit]:
    """(training rows, dev rows), the training rows cut to a seeded random subset if the recipe says so."""
    spec = glue.task_spec(recipe.task)
    train_rows = glue.load_split(recipe.task, "train", glue_dir)
    if recipe.train_subset is not None and recipe.train_subset < len(train_rows):
        keep = np.sort(np.random.default_rng(recipe.seed).permutation(len(train_rows))[:recipe.train_subset])
        train_rows = [train_rows[i] for i in keep]
    train = encode(train_rows, tokenizer, recipe.max_length, spec.is_regression)
    dev = encode(glue.load_split(recipe.task, "dev", glue_dir), tokenizer, recipe.max_length, spec.is_regression)
    return train, dev


def train_model(model: QuantBert, stages, directory: Path, *, train: EncodedSplit, batch_size: int, seed: int,
                checkpoint_every: int, world: World, teacher: QuantBert | None, regression: bool,
                label: str) -> tuple[QuantBert, list[dict]]:
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
                                 desc=f"{label} {i + 1}/{len(stages)} {stage.objective}"))
    if world.is_main:
        save_model(model, final)
        stats_path.write_text(json.dumps(stats, indent=2))
    barrier(world)
    return model, stats


def _train_role(model: QuantBert, stages, role: str, out: Path, recipe: Recipe, train: EncodedSplit,
                world: World, teacher: QuantBert | None, regression: bool) -> tuple[QuantBert, list[dict]]:
    return train_model(model, stages, out / role, train=train, batch_size=recipe.batch_size, seed=recipe.seed,
                       checkpoint_every=recipe.checkpoint_every, world=world, teacher=teacher,
                       regression=regression, label=role)


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


def record_run(out: Path, recipe: Recipe, world: World) -> None:
    """Create the run directory with its recipe, once the inputs (backbone, data) have loaded."""
    if world.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "recipe.yaml").write_text(yaml.safe_dump(recipe.to_dict(), sort_keys=False))


def run_recipe(recipe: Recipe, out: str | Path, *, glue_dir=None, resume: bool = False,
               world: World = World(), log=print) -> dict:
    """Train teacher and student as ``recipe`` says, evaluate both on dev, export the student."""
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
    train, dev = load_data(recipe, tokenizer, glue_dir)
    record_run(out, recipe, world)
    if world.is_main:
        log(f"{spec.name}: {len(train)} training rows, {len(dev)} dev rows; student {student_qc.bits_label} "
            f"({student_qc.name}); {world.size} process(es) on {device_for(world)}")
    device = device_for(world)
    dims = BertDims.from_hf_config(hf.config, spec.num_labels)
    started = time.perf_counter()

    teacher = QuantBert(dims, load_quant_config("fp32"))
    load_hf_weights(teacher, hf.state_dict())
    teacher, teacher_stats = _train_role(teacher.to(device), recipe.teacher, "teacher", out, recipe, train, world,
                                          None, spec.is_regression)
    teacher.eval()
    teacher_metrics = evaluate(teacher, dev, spec.name)
    if world.is_main:
        log(f"teacher (fp32) dev: {_fmt(teacher_metrics)}")

    if recipe.ternary:
        ternary = QuantBert(dims, student_qc.replace(weight_bits=2))
        ternary.load_state_dict(teacher.state_dict(), strict=False)
        ternary, ternary_stats = _train_role(ternary.to(device), recipe.ternary, "ternary", out, recipe, train,
                                              world, teacher, spec.is_regression)
        student = split_ternary_model(ternary, student_qc)
        student_qc = student.qc
    else:
        ternary_stats = []
        student = QuantBert(dims, student_qc)
        student.load_state_dict(teacher.state_dict(), strict=False)  # quantizer steps start from the data
    student, student_stats = _train_role(student.to(device), recipe.student, "student", out, recipe, train,
                                          world, teacher, spec.is_regression)
    student.eval()
    student_metrics = evaluate(student, dev, spec.name)
    results = {
        "task": spec.name, "metric": spec.primary_metric, "bits": student_qc.bits_label,
        "train_rows": len(train), "dev_rows": len(dev),
        "teacher": {"dev": teacher_metrics, "stages": teacher_stats},
        "ternary": {"stages": ternary_stats} if recipe.ternary else None,
        "student": {"dev": student_metrics, "stages": student_stats},
        "wall_s_this_session": round(time.perf_counter() - started, 1),
        "train_wall_s": round(sum(s["wall_s"] for s in teacher_stats + ternary_stats + student_stats), 1),
        "recipe": recipe.to_dict(),
    }
    if world.is_main:
        log(f"student ({student_qc.bits_label}) dev: {_fmt(student_metrics)}")
        export_model(student.cpu(), out / "artifact", {
            "task": {"name": spec.name, "num_labels": spec.num_labels, "metric": spec.primary_metric},
            "dev_metrics": student_metrics, "recipe": recipe.to_dict(),
        })
        (out / "results.json").write_text(json.dumps(results, indent=2))
        log(f"artifact written to {out / 'artifact'}")
    barrier(world)
    return results


def _fmt(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.2f}" for k, v in metrics.items())
