"""Foundation table: fp32 MiniLM and single binary 1-1-4 / 1-1-1 models on SST-2, MRPC and RTE (dev).

Runs the built-in recipes (bebert/recipes/<task>.yaml, and <task>-w1e1a1.yaml for 1-1-1) for each task and each binary setting,
resumably (rerun the same command after an interruption), reusing one fp32 teacher per task for
both binary settings. Then, for every student, reloads its exported artifact and checks that the
dev predictions are identical, and compares artifact and fp32 checkpoint sizes. Writes
results/foundation.md and prints the table.

    python scripts/foundation_results.py [--tasks sst2 mrpc rte] [--runs runs/foundation]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from bebert import glue
from bebert.backbone import load_tokenizer
from bebert.export import load_model
from bebert.pipeline import load_dev, load_model_checkpoint, predictions_from_logits, run_recipe
from bebert.recipe import task_recipe
from bebert.train import predict_logits

SETTINGS = ("w1e1a4", "w1e1a1")
REPO = Path(__file__).resolve().parents[1]


def dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.iterdir() if f.is_file())


def run_task(task: str, runs: Path, glue_dir) -> list[dict]:
    rows = []
    for setting in SETTINGS:
        recipe = task_recipe(task, setting)
        out = runs / f"{task}-{setting}"
        first = runs / f"{task}-{SETTINGS[0]}" / "teacher"
        if setting != SETTINGS[0] and (first / "model.pt").exists() and not (out / "teacher").exists():
            # The same teacher and held-out rows in both recipes: train the teacher once per task.
            shutil.copytree(first, out / "teacher", ignore=shutil.ignore_patterns("checkpoint.pt"))
        results = run_recipe(recipe, out, glue_dir=glue_dir, resume=True)

        # Export -> load must reproduce the student's dev predictions exactly.
        spec = glue.task_spec(task)
        dev = load_dev(recipe, load_tokenizer(recipe.backbone), glue_dir)
        trained = load_model_checkpoint(out / "student" / "model.pt").eval()
        reloaded, _ = load_model(out / "artifact")
        a = predict_logits(trained, dev)
        b = predict_logits(reloaded, dev)
        same_preds = bool(np.array_equal(predictions_from_logits(a, spec.is_regression),
                                         predictions_from_logits(b, spec.is_regression)))
        majority = np.full(len(dev), np.bincount(dev.labels).argmax())
        rows.append({"task": task, "setting": setting, "results": results, "identical_predictions": same_preds,
                     "majority": glue.score(task, majority, dev.labels),
                     "identical_logits": bool(np.array_equal(a, b)),
                     "artifact_bytes": dir_size(out / "artifact"),
                     "teacher_bytes": (out / "teacher" / "model.pt").stat().st_size})
        (out / "reload_check.json").write_text(json.dumps(rows[-1], indent=2, default=str))
    return rows


def stage_text(stages) -> str:
    return "; ".join(f"{s['objective']} {s['epochs']} ep @ {s['lr']:g}" for s in stages)


def render(rows: list[dict], total_s: float) -> str:
    lines = ["# Foundation results: fp32 MiniLM vs single binary BERTs (GLUE dev)", "",
             "Written by `scripts/foundation_results.py` on 2 CPU cores (no GPU). Backbone: all-MiniLM-L6-v2",
             "(6 layers, hidden 384, 12 heads, FFN 1536). Metric: accuracy (SST-2, RTE), F1 (MRPC), in percent.",
             "The fp32 column is the fine-tuned teacher each binary student was distilled from; \"majority class\"",
             "is the metric of always predicting the most frequent dev label (the floor a model must beat).", "",
             "| task | metric | majority class | fp32 | binary 1-1-4 | binary 1-1-1 | train rows | dev rows |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    by_task = {}
    for r in rows:
        by_task.setdefault(r["task"], {})[r["setting"]] = r
    for task, settings in by_task.items():
        first = next(iter(settings.values()))["results"]
        metric = first["metric"]
        cells = [f"{next(iter(settings.values()))['majority']:.2f}", f"{first['teacher']['dev'][metric]:.2f}"]
        cells += [f"{settings[s]['results']['student']['dev'][metric]:.2f}" if s in settings else "-" for s in SETTINGS]
        lines.append(f"| {task} | {metric} | " + " | ".join(cells) + f" | {first['train_rows']} | {first['dev_rows']} |")
    lines += ["", "All metrics per run:", ""]
    for r in rows:
        res = r["results"]
        lines.append(f"- {r['task']} {res['bits']}: teacher {res['teacher']['dev']}, student {res['student']['dev']}")
    lines += ["", "## Recipes (bebert/recipes/<task>.yaml; seed, subset and stages as run)", "",
              "| task | setting | seed | train subset | max len | batch | teacher stages | student stages | train wall s |",
              "| --- | --- | ---: | ---: | ---: | ---: | --- | --- | ---: |"]
    for r in rows:
        rec = r["results"]["recipe"]
        lines.append(f"| {r['task']} | {r['results']['bits']} | {rec['seed']} | {rec['train_subset'] or 'all'} | "
                     f"{rec['max_length']} | {rec['batch_size']} | {stage_text(rec['teacher'])} | "
                     f"{stage_text(rec['student'])} | {r['results']['train_wall_s']} |")
    lines += ["", "Train wall time is the sum of the stages' own timers (teacher included; a teacher reused by the",
              "1-1-1 run counts its original time). Optimizer AdamW, linear warm-up (10%) and decay, gradient clip 1.0.",
              "", "## Export -> load", "",
              "| task | setting | identical dev predictions | identical logits | artifact MB | fp32 checkpoint MB | ratio |",
              "| --- | --- | --- | --- | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['task']} | {r['results']['bits']} | {r['identical_predictions']} | {r['identical_logits']} | "
                     f"{r['artifact_bytes'] / 1e6:.2f} | {r['teacher_bytes'] / 1e6:.2f} | "
                     f"1/{r['teacher_bytes'] / r['artifact_bytes']:.1f} |")
    lines += ["", f"Whole script wall time this invocation: {total_s:.0f} s (runs already finished in runs/ are",
              "loaded and re-checked, not retrained; the train wall times above are those of the training itself).", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["sst2", "mrpc", "rte"])
    parser.add_argument("--runs", default=str(REPO / "runs" / "foundation"))
    parser.add_argument("--glue-dir")
    parser.add_argument("--out", default=str(REPO / "results" / "foundation.md"))
    args = parser.parse_args(argv)
    started = time.perf_counter()
    rows = []
    for task in args.tasks:
        rows += run_task(task, Path(args.runs), args.glue_dir)
    text = render(rows, time.perf_counter() - started)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
