"""BEBERT experiments on our backbone: the GLUE table with its control, members, seeds, size and FLOPs.

    python scripts/bebert_results.py [--parts glue members seeds perturb size] [--tasks sst2 mrpc rte cola stsb]
                                     [--report-only] [--runs runs] [--out results/bebert.md]
                                     [--archive results/bebert-runs] [--no-report] [--machine TEXT]

Every run is resumable and shared: rerunning the command continues where it stopped, and finished
runs are only re-read. ``--parts`` chooses what to run; the report always holds every table. Runs
are done in a fixed priority order (per task: the single 1-1-4 student, BEBERT 1-1-4 x2, the single
1-1-1 student, BEBERT 1-1-1 x2, bagging, BEBERT x4; then the member ablation, then the extra seeds),
and results/bebert.md is rewritten after each one, so a partial run already gives partial tables
(cells not run yet show "-") and the targets measured so far. Several processes may share one --runs
folder when no two of them train the same run: each with --no-report, and one --report-only at the end.

Protocol: every recipe holds 10% of its training rows out (stratified, seeded); every stage, member
included, keeps its best checkpoint on those rows (step 0 included): the first member by its own
metric there, each later member by the metric of the ensemble it joins (bebert.ensemble.MemberSelector);
dev is scored once, at the end.

    runs/foundation/<task>-<quant>/              single binary models, seed 42 (shared with foundation_results.py)
    runs/bebert/<task>-<ensemble>/               ensembles trained from them
    runs/bebert/seeds/<task>-<quant>[-<ensemble>]-s<seed>/   the robustness seeds 43 and 44

Parts:
  glue     fp32, single 1-1-4 and 1-1-1, BEBERT 1-1-4 (AdaBoost, 2 and 4 members), member 1 alone (the
           control: the student given the members' extra training), bagging 1-1-4 (2 members), BEBERT
           1-1-1 (2 members), on SST-2, MRPC, RTE, CoLA, STS-B with the official metric, and the average.
  members  2-member BEBERT 1-1-4 on the ablation task with members trained on the short schedule, on
           the long one, and with prediction KD: chosen on the held-out rows.
  kdtime   seconds per training step of each member mode, timed on an idle machine (30 steps per
           stage; not in the default parts: run it alone, while nothing else uses the CPU).
  seeds    single 1-1-4 vs BEBERT 1-1-4 (2 members) over seeds 42, 43, 44 on SST-2, MRPC and RTE.
  perturb  dev metric with 10% of the (non-special) tokens dropped, seeded, on SST-2 and RTE.
  size     stored size and FLOPs per sentence (sim/counts.py), MiniLM and BERT-base dimensions.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from bebert import glue
from bebert.backbone import load_tokenizer
from bebert.data import drop_tokens
from bebert.ensemble import ensemble_metrics, run_ensemble
from bebert.pipeline import load_dev, load_model_checkpoint, load_training, predictions_from_logits, run_recipe
from bebert.recipe import Ensemble, task_recipe
from bebert.sim.counts import FP32, Bits, inference_counts, stored_bytes, total
from bebert.train import predict_logits

REPO = Path(__file__).resolve().parents[1]
TASKS = ("sst2", "mrpc", "rte", "cola", "stsb")
SEEDS = (42, 43, 44)
SEED_TASKS = ("sst2", "mrpc", "rte")
PERTURB_TASKS = ("sst2", "rte")
DROP_RATE, DROP_SEED = 0.10, 1234
BOOTSTRAP_DRAWS, BOOTSTRAP_SEED = 1000, 0

# How a member trains from the distilled student, (epochs, peak rate): "short" is the first protocol's;
# "long" follows the authors' no-KD script (6 epochs at 5e-5), cut to 3 epochs to fit 2 CPU cores.
MEMBER_SCHEDULES = {"short": (1, 1.0e-4), "long": (3, 5.0e-5)}
TABLE_SCHEDULE = "long"
ABLATION_TASK = "sst2"


def member_ensemble(method: str, members: int, mode: str = "none", schedule: str = TABLE_SCHEDULE) -> Ensemble:
    """Members joined by their alpha-weighted logits: a 2-member alpha-weighted vote is only its heavier member."""
    return Ensemble(method, members, mode, *MEMBER_SCHEDULES[schedule], "logits")


# name -> (base quantization, ensemble). The 4-member run starts from the 2-member run's members
# (AdaBoost is sequential: its first two rounds are the 2-member ensemble).
GLUE_ENSEMBLES = {
    "w1e1a4-adaboost2": ("w1e1a4", member_ensemble("adaboost", 2)),
    "w1e1a1-adaboost2": ("w1e1a1", member_ensemble("adaboost", 2)),
    "w1e1a4-bagging2": ("w1e1a4", member_ensemble("bagging", 2)),
    "w1e1a4-adaboost4": ("w1e1a4", member_ensemble("adaboost", 4)),
}
PREFIX_OF = {"w1e1a4-adaboost4": "w1e1a4-adaboost2"}
# The member ablation: the GLUE table's members (long schedule, no KD) against these.
MEMBER_VARIANTS = {
    "long, no KD": "w1e1a4-adaboost2",
    "short, no KD": "w1e1a4-adaboost2-short",
    "long, prediction KD": "w1e1a4-adaboost2-pred",
}
VARIANT_ENSEMBLES = {
    "w1e1a4-adaboost2-short": ("w1e1a4", member_ensemble("adaboost", 2, "none", "short")),
    "w1e1a4-adaboost2-pred": ("w1e1a4", member_ensemble("adaboost", 2, "pred", "long")),
}
KD_MODES = ("none", "pred", "two_stage")
REPORT_PARTS = ("glue", "members", "seeds", "perturb", "size")

# The paper's GLUE dev averages on BERT-base, without data augmentation (DESIGN.md's reference numbers).
PAPER = {"fp32": 82.84, "single 1-1-4": 78.76, "BEBERT 1-1-4 x2": 80.96}


class Runs:
    """Where each run lives, and running it (resumably) when asked.

    The runs themselves (checkpoints, models) stay in ``root`` (runs/, not in git). What the report
    reads of a finished run (results.json, the members' stages.json and round.json, the student's dev predictions,
    cached perturbation and timing figures: a few kB each) is also copied into ``archive``
    (results/bebert-runs/, in git), and read from there when ``root`` lacks it: the table grows over
    sessions whose run folders do not survive them.
    """

    ARCHIVED = ("results.json", "stages.json", "round.json", "dev_predictions.npy", "perturbation.json",
                "kd-step-times.json")

    def __init__(self, root: Path, glue_dir, archive: Path | None = None):
        self.root, self.glue_dir, self.archive = root, glue_dir, archive

    def find(self, path: Path) -> Path | None:
        """``path`` (under root) where it exists, else its archived copy, else None."""
        if path.exists():
            return path
        if self.archive is not None:
            copy = self.archive / path.relative_to(self.root)
            if copy.exists():
                return copy
        return None

    def save_archive(self) -> None:
        """Copy every finished run's small records into the archive (only files that changed)."""
        if self.archive is None:
            return
        for path in sorted(p for part in ("foundation", "bebert") for p in (self.root / part).rglob("*")):
            if path.is_file() and path.name.endswith(self.ARCHIVED) and "artifact" not in path.parts:
                if path.name == "stages.json" and "members" not in path.parts:
                    continue  # single models' stages are inside their results.json
                copy = self.archive / path.relative_to(self.root)
                if not copy.exists() or copy.read_bytes() != path.read_bytes():
                    copy.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(path, copy)

    def base_dir(self, task: str, quant: str, seed: int = 42) -> Path:
        if seed == 42:
            return self.root / "foundation" / f"{task}-{quant}"
        return self.root / "bebert" / "seeds" / f"{task}-{quant}-s{seed}"

    def ensemble_dir(self, task: str, name: str, seed: int = 42) -> Path:
        if seed == 42:
            return self.root / "bebert" / f"{task}-{name}"
        return self.root / "bebert" / "seeds" / f"{task}-{name}-s{seed}"

    def run_base(self, task: str, quant: str, seed: int = 42, need_model: bool = False) -> dict:
        """The single model's results; trained (or resumed) unless finished, here or, when its model is
        not needed, in the archive (retraining an archived run repeats it: every run is seeded)."""
        out = self.base_dir(task, quant, seed)
        done = self.result(out)
        if done is not None and (not need_model or (out / "student" / "model.pt").exists()):
            return done
        other = self.base_dir(task, "w1e1a1" if quant == "w1e1a4" else "w1e1a4", seed) / "teacher"
        if (other / "model.pt").exists() and not (out / "teacher").exists():
            # The same teacher and held-out rows in both recipes: train the teacher once per task and seed.
            shutil.copytree(other, out / "teacher", ignore=shutil.ignore_patterns("checkpoint.pt"))
        return run_recipe(task_recipe(task, quant, seed), out, glue_dir=self.glue_dir, resume=True)

    def run_ensemble(self, task: str, name: str, quant: str, ensemble: Ensemble, seed: int = 42) -> dict:
        out = self.ensemble_dir(task, name, seed)
        done = self.result(out)
        if done is not None:
            return done
        self.run_base(task, quant, seed, need_model=True)
        prefix = self.ensemble_dir(task, PREFIX_OF.get(name, name), seed) / "members"
        if name in PREFIX_OF and prefix.is_dir() and not (out / "members").exists():
            # Rounds already trained by the shorter run of the same recipe are the same rounds here.
            shutil.copytree(prefix, out / "members", ignore=shutil.ignore_patterns("checkpoint.pt"))
        recipe = task_recipe(task, quant, seed).replace(ensemble=ensemble)
        return run_ensemble(recipe, out, glue_dir=self.glue_dir, resume=True, base_dir=self.base_dir(task, quant, seed))

    def result(self, path: Path) -> dict | None:
        return self.result_json(path / "results.json")

    def result_json(self, path: Path) -> dict | None:
        found = self.find(path)
        return json.loads(found.read_text()) if found else None


def jobs(parts: list[str], tasks: list[str], runs: Runs, only: list[str] | None = None):
    """(description, callable) in priority order; with ``only``, just the jobs whose description
    holds one of those strings."""
    for description, job in _all_jobs(parts, tasks, runs):
        if not only or any(cell in description for cell in only):
            yield description, job


def _all_jobs(parts: list[str], tasks: list[str], runs: Runs):
    for task in tasks:
        if "glue" in parts:
            yield f"{task} 1-1-4 single", lambda t=task: runs.run_base(t, "w1e1a4")
            yield f"{task} BEBERT 1-1-4 x2", lambda t=task: runs.run_ensemble(t, "w1e1a4-adaboost2",
                                                                              *GLUE_ENSEMBLES["w1e1a4-adaboost2"])
            yield f"{task} 1-1-1 single", lambda t=task: runs.run_base(t, "w1e1a1")
            for name in ("w1e1a1-adaboost2", "w1e1a4-bagging2", "w1e1a4-adaboost4"):
                yield f"{task} {name}", lambda t=task, n=name: runs.run_ensemble(t, n, *GLUE_ENSEMBLES[n])
    if "members" in parts and ABLATION_TASK in tasks:
        for name, (quant, ens) in VARIANT_ENSEMBLES.items():
            yield f"{ABLATION_TASK} members {name}", lambda n=name, q=quant, e=ens: runs.run_ensemble(
                ABLATION_TASK, n, q, e)
    if "seeds" in parts:
        for task in (t for t in SEED_TASKS if t in tasks):
            for seed in SEEDS[1:]:
                yield f"{task} seed {seed}", lambda t=task, s=seed: runs.run_ensemble(
                    t, "w1e1a4-adaboost2", *GLUE_ENSEMBLES["w1e1a4-adaboost2"], seed=s)


# ------------------------------------------------------------------------------------------------
# tables


def cell(value, digits=2) -> str:
    if value is None:
        return "-"
    return "undefined" if is_undefined(value) else f"{value:.{digits}f}"


def is_undefined(value: float | None) -> bool:
    """A metric that has no value: a model that gives one value on every STS-B dev pair has no Pearson
    correlation (NaN)."""
    return value is not None and math.isnan(value)


def undefined_as_zero(value: float | None) -> float | None:
    """An undefined correlation scores 0, as scikit-learn's Matthews correlation scores a single-class
    prediction on CoLA."""
    return 0.0 if is_undefined(value) else value


def majority_class(task: str, glue_dir) -> float | None:
    """Dev metric of always answering the training set's most common class: the floor a classifier
    must clear (none for STS-B's regression: a constant has no Pearson correlation)."""
    spec = glue.task_spec(task)
    if spec.is_regression:
        return None
    train_labels = [e.label for e in glue.load_split(task, "train", glue_dir)]
    dev_labels = np.array([e.label for e in glue.load_split(task, "dev", glue_dir)])
    return glue.score(task, np.full(len(dev_labels), np.bincount(train_labels).argmax()), dev_labels)


HEADER = ["majority class", "fp32", "1-1-4", "1-1-1", "BEBERT 1-1-4 x2", "member 1 alone", "BEBERT 1-1-4 x4",
          "bagging 1-1-4 x2", "BEBERT 1-1-1 x2"]


def _stage_s(result: dict | None, role: str) -> float | None:
    return None if result is None else sum(s["wall_s"] for s in result[role]["stages"])


def glue_rows(runs: Runs, tasks) -> dict:
    """task -> column -> (metric, distinct dev answers, wall s on 2 cores), None where not run yet."""
    table = {}
    for task in tasks:
        metric = glue.task_spec(task).primary_metric
        b4, b1 = runs.result(runs.base_dir(task, "w1e1a4")), runs.result(runs.base_dir(task, "w1e1a1"))
        ens = {name: runs.result(runs.ensemble_dir(task, name)) for name in GLUE_ENSEMBLES}
        teacher_run = b4 or b1
        teacher_s = _stage_s(teacher_run, "teacher")
        single_s = {q: (teacher_s + _stage_s(b, "student") if b else None) for q, b in (("w1e1a4", b4), ("w1e1a1", b1))}

        def single(result, role, spent):
            return result and (result[role]["dev"][metric], result[role].get("dev_answers"), spent)

        def joined(name, m):
            """The ensemble of the first m rounds joined by logits (a dropped member leaves fewer)."""
            result = ens[name]
            if not result or len(result["members"]) < m:
                return None
            kept = sum(1 for r in result["members"][:m] if r["kept"])
            entry = result["dev_by_members"].get(str(kept), {}).get("logits")
            base_s = single_s[GLUE_ENSEMBLES[name][0]]
            spent = None if base_s is None else base_s + sum(r["train_wall_s"] for r in result["members"][:m])
            return entry and (entry[metric], entry.get("answers"), spent)

        def first_member():
            result = ens["w1e1a4-adaboost2"]
            if not result:
                return None
            first = result["members"][0]
            spent = None if single_s["w1e1a4"] is None else single_s["w1e1a4"] + first["train_wall_s"]
            return first["dev"][metric], first.get("dev_answers"), spent

        row = {
            "majority class": (majority_class(task, runs.glue_dir), None, None),
            "fp32": single(teacher_run, "teacher", teacher_s),
            "1-1-4": single(b4, "student", single_s["w1e1a4"]),
            "1-1-1": single(b1, "student", single_s["w1e1a1"]),
            "BEBERT 1-1-4 x2": joined("w1e1a4-adaboost2", 2),
            "member 1 alone": first_member(),
            "BEBERT 1-1-4 x4": joined("w1e1a4-adaboost4", 4),
            "bagging 1-1-4 x2": joined("w1e1a4-bagging2", 2),
            "BEBERT 1-1-1 x2": joined("w1e1a1-adaboost2", 2),
        }
        table[task] = row
    return table


def value(table, task, column) -> float | None:
    entry = table[task][column]
    return None if entry is None else undefined_as_zero(entry[0])


def constant_cells(table, tasks) -> list[str]:
    return [f"{task} {column}" for task in tasks for column in HEADER[1:]
            if table[task][column] is not None and (table[task][column][1] == 1 or is_undefined(table[task][column][0]))]


def averages(table, tasks, columns) -> dict:
    return {c: (statistics.fmean(value(table, t, c) for t in tasks)
                if all(value(table, t, c) is not None for t in tasks) else None) for c in columns}


def render_glue(runs: Runs, tasks, table: dict, machine: str | None = None) -> list[str]:
    lines = ["## GLUE dev (official metric per task, percent)", "",
             "| task | metric | rows trained on | " + " | ".join(HEADER) + " |",
             "| --- | --- | ---: | " + " | ".join("---:" for _ in HEADER) + " |"]
    for task in tasks:
        spec = glue.task_spec(task)
        base = runs.result(runs.base_dir(task, "w1e1a4"))
        rows = base["train_rows"] if base else None
        subset = base and base["recipe"]["train_subset"]
        rows_text = "-" if rows is None else f"{rows:,}" + (" (subset)" if subset else "")
        lines.append(f"| {spec.name} | {spec.primary_metric} | {rows_text} | "
                     + " | ".join(cell(value(table, task, h)) for h in HEADER) + " |")
    mean = averages(table, tasks, HEADER[1:])
    lines.append("| **average** | | | - | " + " | ".join(cell(mean[h]) for h in HEADER[1:]) + " |")
    if machine is None:
        lines += ["", "Hours of wall time on the 2 CPU cores that each cell cost, everything it needs included (the",
                  "teacher, counted in every column; the student, in every ensemble's; runs that shared the cores",
                  "with other work took longer than they would alone):", ""]
        unit_s, digits = 3600, 2
    else:
        lines += ["", f"Seconds of wall time on {machine} that each cell cost, everything it needs included (the",
                  "teacher, counted in every column; the student, in every ensemble's; runs that shared the machine",
                  "with other work took longer than they would alone):", ""]
        unit_s, digits = 1, 0
    lines += ["| task | " + " | ".join(HEADER[1:]) + " |", "| --- | " + " | ".join("---:" for _ in HEADER[1:]) + " |"]
    for task in tasks:
        spent = [table[task][h] and table[task][h][2] for h in HEADER[1:]]
        lines.append(f"| {task} | " + " | ".join("-" if s is None else f"{s / unit_s:.{digits}f}" for s in spent) + " |")
    floor = [f"{task} {h}" for task in tasks for h in HEADER[1:]
             if None not in (value(table, task, h), value(table, task, "majority class"))
             and value(table, task, h) <= value(table, task, "majority class") + 1e-9]
    constant = constant_cells(table, tasks)
    lines += ["", "Majority class: always the training set's most common class. Cells at or below it: "
              + (", ".join(floor) or "none") + ".",
              "", "Models that give one answer on every dev row (one class, or one STS-B score; a failed run, not a "
              "result): " + (", ".join(constant) or "none") + ".",
              "", dev_noise(runs, tasks, table), "",
              "Columns: every ensemble joins its members by alpha-weighted logits (weighted mean for STS-B):",
              "an alpha-weighted vote of two members is always the heavier member alone. *Member 1 alone* is",
              "the control: the distilled student given exactly the first member's extra training (the same",
              "epochs on a bootstrap of the training rows), so BEBERT x2 minus it is what the second member adds.",
              "", "Members per run (weighted training error, alpha, step chosen on the held-out rows by the member's own",
              "score or the ensemble's, own dev metric,",
              "member training wall s). A member no better than chance (error >= 1 - 1/classes) gets alpha 0 and",
              "is dropped.", ""]
    for task in tasks:
        for name in GLUE_ENSEMBLES:
            result = runs.result(runs.ensemble_dir(task, name))
            if result:
                metric = result["metric"]
                folders = [runs.ensemble_dir(task, name) / "members" / str(m["round"]) for m in result["members"]]
                stages = [runs.result_json(folder / "stages.json") or [] for folder in folders]
                # rounds trained before later members were chosen by the ensemble's score have no "selected_by"
                chosen_by = [(runs.result_json(folder / "round.json") or {}).get("selected_by", "own") for folder in folders]
                members = "; ".join(f"{m['error']:.3f} / {m['alpha']:.3f} / step "
                                    f"{'+'.join(str(st.get('selected_step', '-')) for st in s)} "
                                    f"(by {by} score) / "
                                    f"{cell(m['dev'][metric]) if m['dev'] else 'dropped'} / {m['train_wall_s']:.0f}"
                                    for m, s, by in zip(result["members"], stages, chosen_by))
                lines.append(f"- {task} {name}: {members}")
    return lines + [""]


def dev_noise(runs: Runs, tasks, table) -> str:
    """How far a dev metric moves by chance: the dev sets are small (277 rows for RTE)."""
    parts = []
    for task in tasks:
        se = student_standard_error(runs, task)
        if se is not None:
            parts.append(f"{task} {se:.2f}")
    return ("Standard error of the single 1-1-4 student's dev metric (bootstrap over dev rows, "
            f"{BOOTSTRAP_DRAWS} draws): " + ("; ".join(parts) or "-") + " points.")


def student_standard_error(runs: Runs, task: str) -> float | None:
    """The bootstrap standard error of the single 1-1-4 student's dev metric, from its saved dev predictions."""
    base = runs.base_dir(task, "w1e1a4")
    path = base / "dev_predictions.npy"
    if runs.find(path) is None:
        if not (base / "student" / "model.pt").exists():
            return None
        # A run finished before its pipeline saved the predictions: compute them once from its student.
        recipe = task_recipe(task, "w1e1a4")
        dev = load_dev(recipe, load_tokenizer(recipe.backbone), runs.glue_dir)
        logits = predict_logits(load_model_checkpoint(base / "student" / "model.pt"), dev)
        np.save(path, predictions_from_logits(logits, glue.task_spec(task).is_regression))
    predictions = np.load(runs.find(path))
    labels = np.array([e.label for e in glue.load_split(task, "dev", runs.glue_dir)])
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    draws = []
    for _ in range(BOOTSTRAP_DRAWS):
        rows = rng.integers(0, len(labels), len(labels))
        with np.errstate(all="ignore"):
            draws.append(undefined_as_zero(glue.score(task, predictions[rows], labels[rows])))
    return float(np.std(draws, ddof=1))


TARGETS = {"fp32_gap": 10.0, "stsb_pearson": 70.0, "ensemble_gain": 1.0}


def render_targets(runs: Runs, tasks, table: dict) -> list[str]:
    """The issue's targets, measured from the tables below over the runs finished so far."""
    lines = ["## Targets (measured from the tables below)", "", "| target | measured | met |", "| --- | --- | --- |"]

    def verdict(ok: bool, complete: bool) -> str:
        return ("yes" if ok else "no") if complete else f"so far {'yes' if ok else 'no'} (not every run has finished)"

    singles = [t for t in tasks if value(table, t, "1-1-4") is not None]
    classes = [t for t in singles if not glue.task_spec(t).is_regression]
    below = [t for t in classes if value(table, t, "1-1-4") <= value(table, t, "majority class") + 1e-9]
    lines.append(f"| every single 1-1-4 student clears its majority-class floor | "
                 f"{'below: ' + ', '.join(below) if below else 'all clear'} ({len(classes)} classification tasks run) | "
                 f"{verdict(not below, len(singles) == len(tasks))} |")
    both = [t for t in tasks if None not in (value(table, t, "1-1-4"), value(table, t, "fp32"))]
    if both:
        gap = statistics.fmean(value(table, t, "fp32") - value(table, t, "1-1-4") for t in both)
        lines.append(f"| single 1-1-4 average gap to fp32 at most {TARGETS['fp32_gap']:.0f} points | {gap:.2f} over "
                     f"{', '.join(both)} | {verdict(gap <= TARGETS['fp32_gap'], len(both) == len(tasks))} |")
    if "stsb" in tasks and value(table, "stsb", "1-1-4") is not None:
        pearson = value(table, "stsb", "1-1-4")
        lines.append(f"| STS-B 1-1-4 Pearson at least {TARGETS['stsb_pearson']:.0f} | {pearson:.2f} | "
                     f"{verdict(pearson >= TARGETS['stsb_pearson'], True)} |")
    done = [t for t in tasks if None not in (value(table, t, c) for c in ("1-1-4", "BEBERT 1-1-4 x2", "member 1 alone"))]
    if done:
        mean = {c: statistics.fmean(value(table, t, c) for t in done) for c in ("1-1-4", "BEBERT 1-1-4 x2", "member 1 alone")}
        gain, over_control = mean["BEBERT 1-1-4 x2"] - mean["1-1-4"], mean["BEBERT 1-1-4 x2"] - mean["member 1 alone"]
        per_task = ", ".join(f"{t} {value(table, t, 'BEBERT 1-1-4 x2') - value(table, t, '1-1-4'):+.2f}" for t in done)
        complete = len(done) == len(tasks)
        lines.append(f"| BEBERT 1-1-4 x2 at least {TARGETS['ensemble_gain']:.1f} above the single student and above "
                     f"member 1 alone (average) | {gain:+.2f} over the student, {over_control:+.2f} over member 1 alone, "
                     f"over {', '.join(done)} (per task {per_task}) | "
                     f"{verdict(gain >= TARGETS['ensemble_gain'] and over_control > 0, complete)} |")
        worse = []
        for t in done:
            se = student_standard_error(runs, t)
            if se is not None and value(table, t, "BEBERT 1-1-4 x2") < value(table, t, "1-1-4") - se:
                worse.append(f"{t} ({value(table, t, 'BEBERT 1-1-4 x2') - value(table, t, '1-1-4'):+.2f}, SE {se:.2f})")
        lines.append(f"| no task more than one standard error below the student | "
                     f"{'below: ' + ', '.join(worse) if worse else 'none below'} | {verdict(not worse, complete)} |")
    constant = constant_cells(table, tasks)
    ran = sum(table[t][c] is not None for t in tasks for c in HEADER[1:])
    lines.append(f"| no model in the table answers a constant | {', '.join(constant) or 'none'} ({ran} cells run) | "
                 f"{verdict(not constant, ran == len(tasks) * (len(HEADER) - 1))} |")
    return lines + [""]


def render_paper(tasks, table: dict) -> list[str]:
    """Our relative figures beside the paper's (averages; the backbones and task sets differ)."""
    mean = averages(table, tasks, ("fp32", "1-1-4", "BEBERT 1-1-4 x2"))
    ours = None if None in mean.values() else (mean["BEBERT 1-1-4 x2"] - mean["1-1-4"],
                                               mean["fp32"] - mean["1-1-4"], mean["fp32"] - mean["BEBERT 1-1-4 x2"])
    paper = (PAPER["BEBERT 1-1-4 x2"] - PAPER["single 1-1-4"], PAPER["fp32"] - PAPER["single 1-1-4"],
             PAPER["fp32"] - PAPER["BEBERT 1-1-4 x2"])
    rows = ("BEBERT 1-1-4 x2 over the single 1-1-4 model", "single 1-1-4 below fp32", "BEBERT 1-1-4 x2 below fp32")
    lines = ["## Against the paper (GLUE dev averages, points)", "", "| figure | ours (5 tasks, MiniLM-L6) | paper (BERT-base) |",
             "| --- | ---: | ---: |"]
    for i, label in enumerate(rows):
        lines.append(f"| {label} | {cell(ours and ours[i])} | {paper[i]:.2f} |")
    lines += ["", "The paper: BERT-base (12 layers, 768 wide), the GLUE tasks with MNLI, QQP and QNLI, no data",
              f"augmentation (fp32 {PAPER['fp32']}, BinaryBERT {PAPER['single 1-1-4']}, BEBERT {PAPER['BEBERT 1-1-4 x2']}).",
              "Ours: all-MiniLM-L6-v2 (6 layers, 384 wide), SST-2 (8,000-row subset), MRPC, RTE, CoLA and STS-B, every",
              "checkpoint chosen on held-out training rows and dev scored once. The authors' public code",
              "(github.com/TTTTTTris/BEBERT, binarybert/) chooses on dev instead, in both of its versions: each",
              "member's learner (benn_kd_glue.py) scores the member on dev every 100 steps, step 0 included (so",
              "the distilled model it starts from is itself a candidate), and keeps the best; its no-KD script",
              "(scripts/benn_glue_A.sh) trains 6 epochs at 5e-5 per member. The first release (2022-11) then",
              "scores, with 2 members (every task but MNLI and QQP), only the first member alone: its loop `for",
              "num_boost in range(1, boosting)` stops at num_boost = 1, as the mean of per-batch metrics over",
              "the full dev batches. The revision of 2023-05 (\"add bagging & stsb\") joins both members by",
              "their alpha-weighted logits, as the table above does. Each dev-chosen checkpoint is an optimistic",
              "figure: the best of many dev scores, not one.", ""]
    return lines


def render_members(runs: Runs) -> list[str]:
    """The member ablation: chosen on the held-out rows, dev shown beside it."""
    lines = [f"## Members: schedule and distillation ({ABLATION_TASK.upper()}, BEBERT 1-1-4, 2 members, AdaBoost, logits)",
             "", "| members trained | held-out rows | dev | the student they start from (dev) | members' training wall s |",
             "| --- | ---: | ---: | ---: | ---: |"]
    metric = glue.task_spec(ABLATION_TASK).primary_metric
    found, students = {}, {}
    for label, name in MEMBER_VARIANTS.items():
        result = runs.result(runs.ensemble_dir(ABLATION_TASK, name))
        if result is None or len(result["members"]) < 2 or not result.get("selection_by_members"):
            lines.append(f"| {label} | - | - | - | - |")
            continue
        kept = str(sum(1 for r in result["members"][:2] if r["kept"]))
        held = result["selection_by_members"][kept]["logits"][metric]
        found[label] = held
        students[label] = result["base"]["student_dev"][metric]
        lines.append(f"| {label} | {cell(held)} | {cell(result['dev_by_members'][kept]['logits'][metric])} | "
                     f"{cell(students[label])} | {sum(m['train_wall_s'] for m in result['members'][:2]):.0f} |")
    short, long_ = MEMBER_SCHEDULES["short"], MEMBER_SCHEDULES["long"]
    lines += ["", f"Short: {short[0]} epoch at {short[1]:g} (the first protocol's members); long: {long_[0]} epochs at "
              f"{long_[1]:g} (the authors' 6 epochs at 5e-5, cut to fit 2 cores); prediction KD: the long schedule "
              "with the teacher's logits as targets. Every member keeps its best checkpoint on the held-out rows.",
              ""]
    if len({round(v, 6) for v in students.values()}) > 1:
        lines += ["The variants start from different students: the same recipe and seed retrained in another session "
                  "(float noise between machines moves the student, above), so each row is to be read against its "
                  "own student, and the rows against each other only with that difference in mind.", ""]
    if len(found) == len(MEMBER_VARIANTS):
        best = max(found, key=found.get)
        agrees = best == "long, no KD"
        lines += [f"Chosen on the held-out rows: {best}. The GLUE table's members are \"long, no KD\""
                  + ("" if agrees else f"; the held-out rows prefer {best}, so the table's choice is not the measured one") + ".", ""]
    else:
        lines += ["Not every variant has run yet; the GLUE table's members are \"long, no KD\" (chosen before the ablation ran).", ""]
    timing = runs.result_json(runs.root / "bebert" / f"{ABLATION_TASK}-kd-step-times.json")  # name ends as ARCHIVED
    if timing:
        lines += [f"Step timing on an idle machine ({timing['steps_timed']} steps per stage, batch 32, "
                  f"{timing['threads']} threads):", "", "| member training | s per step (per stage) | vs no KD |",
                  "| --- | --- | ---: |"]
        for mode in KD_MODES:
            t = timing[mode]
            lines.append(f"| {mode.replace('_', '-')} | {' + '.join(f'{x:.2f}' for x in t['s_per_step'])} | "
                         f"{t['member_s'] / timing['none']['member_s']:.2f}x |")
        lines.append("")
    return lines


def kd_step_times(runs: Runs, glue_dir, steps: int = 30) -> dict | None:
    """Seconds per training step of each member mode, timed on an idle machine (run with --parts kdtime
    while nothing else runs). The full runs' own wall times also hold whatever else shared the CPU."""
    cache = runs.root / "bebert" / f"{ABLATION_TASK}-kd-step-times.json"
    if runs.find(cache):
        return runs.result_json(cache)
    base_dir = runs.base_dir(ABLATION_TASK, "w1e1a4")
    if not (base_dir / "student" / "model.pt").exists():
        return None
    import tempfile

    import torch

    from bebert.data import epoch_order
    from bebert.objectives import NEEDS_TEACHER
    from bebert.train import World, train_stage

    recipe = task_recipe(ABLATION_TASK, "w1e1a4")
    train = load_training(recipe, load_tokenizer(recipe.backbone), glue_dir).fit
    sample = train.take(epoch_order(len(train), recipe.seed, 0)[:steps * recipe.batch_size])
    teacher = load_model_checkpoint(base_dir / "teacher" / "model.pt").eval()
    full_steps = len(train) // recipe.batch_size
    found = {"steps_timed": steps, "threads": torch.get_num_threads(), "full_epoch_steps": full_steps}
    for mode in KD_MODES:
        per_stage = []
        for stage in member_ensemble("adaboost", 1, mode).stages:
            member = load_model_checkpoint(base_dir / "student" / "model.pt")
            with tempfile.TemporaryDirectory() as stage_dir:
                stats = train_stage(member, stage, sample, batch_size=recipe.batch_size, seed=recipe.seed,
                                    stage_dir=Path(stage_dir), world=World(),
                                    teacher=teacher if stage.objective in NEEDS_TEACHER else None,
                                    checkpoint_every=10**9, desc=f"timing {mode} {stage.objective}")
            per_stage.append(stats["wall_s"] / steps)
        found[mode] = {"s_per_step": per_stage, "member_s": sum(per_stage) * full_steps * MEMBER_SCHEDULES[TABLE_SCHEDULE][0]}
    cache.write_text(json.dumps(found, indent=2))
    return found


def seed_spread(runs: Runs) -> dict:
    """task -> model -> (metric per seed, mean, sample std); mean and std only once every seed has run."""
    found = {}
    for task in SEED_TASKS:
        metric = glue.task_spec(task).primary_metric
        single, bebert = [], []
        for seed in SEEDS:
            base = runs.result(runs.base_dir(task, "w1e1a4", seed))
            ens = runs.result(runs.ensemble_dir(task, "w1e1a4-adaboost2", seed))
            single.append(base["student"]["dev"][metric] if base else None)
            joined = ens and ens["dev_by_members"].get(str(sum(m["kept"] for m in ens["members"][:2])))
            bebert.append(joined["logits"][metric] if joined else None)
        for label, values in (("single 1-1-4", single), ("BEBERT 1-1-4 x2", bebert)):
            complete = all(v is not None for v in values)
            found.setdefault(task, {})[label] = (values, statistics.fmean(values) if complete else None,
                                                 statistics.stdev(values) if complete else None)
    return found


def render_seeds(runs: Runs) -> list[str]:
    lines = ["## Robustness: seeds 42, 43, 44 (BEBERT 1-1-4, 2 members, AdaBoost, logits)", "",
             "| task | model | seed 42 | seed 43 | seed 44 | mean +- std |", "| --- | --- | ---: | ---: | ---: | ---: |"]
    for task, models in seed_spread(runs).items():
        for label, (values, mean, std) in models.items():
            spread = "-" if mean is None else f"{mean:.2f} +- {std:.2f}"
            lines.append(f"| {task} | {label} | " + " | ".join(cell(v) for v in values) + f" | {spread} |")
    lines += ["", "std is the sample standard deviation over the three seeds. A seed sets the training subset",
              "(SST-2), the held-out rows, the data order, dropout and the resampling; seed 42 is the GLUE table's run.", ""]
    return lines


def perturbation(runs: Runs, glue_dir) -> dict:
    """Clean and perturbed dev metric of fp32, single 1-1-4 and BEBERT 1-1-4 x2 (seed 42), per task."""
    found = {}
    for task in PERTURB_TASKS:
        base_dir, ens_dir = runs.base_dir(task, "w1e1a4"), runs.ensemble_dir(task, "w1e1a4-adaboost2")
        ens = runs.result(ens_dir)
        if ens is None or len(ens["members"]) < 2:
            continue
        cache = ens_dir / "perturbation.json"
        if runs.find(cache):
            found[task] = runs.result_json(cache)
            continue
        if not (ens_dir / "members" / "0" / "model.pt").exists():
            continue  # an archived run whose models are gone, measured before its perturbation was
        recipe = task_recipe(task, "w1e1a4")
        tokenizer = load_tokenizer(recipe.backbone)
        dev = load_dev(recipe, tokenizer, glue_dir)
        noisy = drop_tokens(dev, DROP_RATE, DROP_SEED, tokenizer.all_special_ids)
        spec = glue.task_spec(task)
        models = {"fp32": [load_model_checkpoint(base_dir / "teacher" / "model.pt")],
                  "single 1-1-4": [load_model_checkpoint(base_dir / "student" / "model.pt")],
                  "BEBERT 1-1-4 x2": [load_model_checkpoint(ens_dir / "members" / str(m["round"]) / "model.pt")
                                      for m in ens["members"][:2]]}
        alphas = [m["alpha"] for m in ens["members"][:2]]
        row = {}
        for label, members in models.items():
            for split_name, split in (("clean", dev), ("perturbed", noisy)):
                logits = [predict_logits(m, split) for m in members]
                if len(logits) == 1:
                    value = glue.score(task, predictions_from_logits(logits[0], spec.is_regression), split.labels)
                else:
                    value = ensemble_metrics(logits, alphas, task, split.labels, "logits")[spec.primary_metric]
                row.setdefault(label, {})[split_name] = value
        cache.write_text(json.dumps(row, indent=2))
        found[task] = row
    return found


# The perturbation table's model labels as the GLUE table's columns.
PERTURB_COLUMN = {"fp32": "fp32", "single 1-1-4": "1-1-4", "BEBERT 1-1-4 x2": "BEBERT 1-1-4 x2"}


def render_perturb(found: dict, table: dict) -> list[str]:
    lines = [f"## Input perturbation: {DROP_RATE:.0%} of the tokens dropped (seed {DROP_SEED}), dev", "",
             "| task | model | clean | perturbed | drop |", "| --- | --- | ---: | ---: | ---: |"]
    differ = []
    for task, row in found.items():
        for label, values in row.items():
            lines.append(f"| {task} | {label} | {values['clean']:.2f} | {values['perturbed']:.2f} | "
                         f"{values['clean'] - values['perturbed']:.2f} |")
            glue_cell = value(table, task, PERTURB_COLUMN[label]) if task in table else None
            if glue_cell is not None and abs(glue_cell - values["clean"]) >= 0.005:
                differ.append(f"{task} {label} {values['clean']:.2f} against {glue_cell:.2f}")
    lines += ["", "Each non-special token of every dev sentence is dropped with probability 0.1 by a draw seeded",
              "per row (bebert.data.drop_tokens), so every model sees the same perturbed sentences. The models are",
              "scored here on the CPU; the GLUE table's cells were scored by the training process on its own device."]
    if differ:
        lines += [f"Clean scores that differ from their GLUE cell: {'; '.join(differ)}. The checkpoints are the same:",
                  "on a GPU the two scorings run different float arithmetic (the GPU's kernels against the CPU's), and",
                  "a binary model's sign functions turn the last-bit differences near zero into flipped dev rows."]
    return lines + [""]


def render_size(runs: Runs) -> list[str]:
    dims = {"MiniLM-L6 (ours)": dict(vocab_size=30522, hidden_size=384, num_layers=6, num_heads=12,
                                    intermediate_size=1536, max_position=512, type_vocab_size=2, num_labels=2),
            "BERT-base (paper)": dict(vocab_size=30522, hidden_size=768, num_layers=12, num_heads=12,
                                      intermediate_size=3072, max_position=512, type_vocab_size=2, num_labels=2)}
    a1 = Bits(activations=1, per_row_weight_scales=True, quantize_head=False)  # BiT's float head
    models = [("fp32", FP32, 1), ("single 1-1-4", Bits(), 1), ("single 1-1-1", a1, 1),
              ("BEBERT 1-1-4 x2", Bits(), 2), ("BEBERT 1-1-4 x4", Bits(), 4), ("BEBERT 1-1-1 x2", a1, 2)]
    lines = ["## Size and FLOPs per sentence (128 tokens)", "",
             "Counted by sim/counts.py. FLOPs: a full-precision multiply-accumulate counts 2, a w-bit x a-bit one",
             "2*w*a/64 (64 binary operations per word op), element-wise work at fixed per-element costs: the",
             "binary-BERT papers' convention, which gives BERT-base fp32 22.4 GFLOPs (they quote 22.5 G), BinaryBERT",
             "1.6 G (quoted 1.5 G) and BiBERT 0.44 G (quoted 0.4 G). Sizes in MiB (2^20 bytes, as the papers' 418 MB",
             "for BERT-base), binary tensors at 1 bit, everything else at 32. An ensemble of n members costs n times",
             "one member: every member runs on every sentence.", "",
             "| backbone | model | size MiB | size saving | GFLOPs | FLOPs saving |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]
    for backbone, d in dims.items():
        ref_size, ref_flops = stored_bytes(d, FP32), total(inference_counts(d, 128, FP32))["flops"]
        for label, bits, members in models:
            size, flops = members * stored_bytes(d, bits), members * total(inference_counts(d, 128, bits))["flops"]
            lines.append(f"| {backbone} | {label} | {size / 2**20:.1f} | {ref_size / size:.1f}x | {flops / 1e9:.2f} | "
                         f"{ref_flops / flops:.1f}x |")
    builtin = REPO / "bebert" / "builtin_model"
    if builtin.exists():
        actual = sum(f.stat().st_size for f in builtin.iterdir())
        lines += ["", f"The shipped built-in model (2 members, MiniLM, 1-1-4) takes {actual / 2**20:.2f} MiB on disk "
                      "(bebert/builtin_model: manifest + bit-packed tensors, quantizer steps included)."]
    lines += ["", "The paper's claims for BEBERT on BERT-base: 13x smaller and 15x fewer FLOPs than fp32. The size",
              "claim matches a 2-member 1-1-4 ensemble here; 15x FLOPs matches a single 1-1-4 member, not two",
              "(a 2-member ensemble does twice the work of one member).", ""]
    return lines


def render(runs: Runs, parts, tasks, glue_dir, wall_s: float, machine: str | None = None) -> str:
    """The report; ``machine`` names where the runs ran when that was not the 2 CPU cores (wall times then in s)."""
    epochs, rate = MEMBER_SCHEDULES[TABLE_SCHEDULE]
    lines = ["# BEBERT results: binary ensembles on MiniLM (GLUE dev)", "",
             f"Written by `scripts/bebert_results.py` on {machine or '2 CPU cores (no GPU)'}. Backbone all-MiniLM-L6-v2. Single",
             "models: the recipes bebert/recipes/<task>.yaml (1-1-4: fp32 teacher, then the binary student",
             "distilled in two stages) and <task>-w1e1a1.yaml where present (1-1-1: BiT's single joint stage under",
             "a float head), seed 42. Every recipe holds 10% of its training rows out, stratified and seeded; every",
             "stage, each member included, keeps its best checkpoint on those rows (step 0 included): the first",
             "member by its own metric there, each later member by the metric of the ensemble it joins (the kept",
             "members and it, at the weight boosting would give it then); dev is scored once, at the end. Runs",
             "whose members were chosen otherwise say so below. Ensembles: every member starts from the",
             f"distilled student and trains {epochs}",
             f"epochs at peak rate {rate:g} on the resampled rows (AdaBoost: SAMME, AdaBoost.R2 for STS-B, weights",
             "on the rows trained on; bagging: bootstrap), without KD unless stated, joined by alpha-weighted logits.",
             "The first protocol's table (members and students at the end of training, one epoch per stage) is kept",
             "in results/bebert-2026-11.md.", ""]
    table = glue_rows(runs, tasks)
    lines += render_targets(runs, tasks, table)
    if "glue" in parts:
        lines += render_glue(runs, tasks, table, machine)
        lines += render_paper(tasks, table)
    if "members" in parts:
        lines += render_members(runs)
    if "seeds" in parts:
        lines += render_seeds(runs)
    if "perturb" in parts:
        lines += render_perturb(perturbation(runs, glue_dir), table)
    if "size" in parts:
        lines += render_size(runs)
    lines += [f"Script wall time this invocation: {wall_s:.0f} s (finished runs are re-read, not retrained).", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=list(REPORT_PARTS),
                        choices=[*REPORT_PARTS, "kdtime"],
                        help="kdtime (not in the default): time each member mode's steps; run it on an idle machine")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS),
                        help="run only these tasks' jobs (of every part chosen); the report always holds every task")
    parser.add_argument("--only", nargs="+", metavar="CELL",
                        help="run only the jobs whose description holds one of these strings (e.g. '1-1-4 single' "
                             "'BEBERT 1-1-4 x2'), so a session can spend its hours where they are needed")
    parser.add_argument("--report-only", action="store_true", help="write the tables from finished runs only")
    parser.add_argument("--runs", default=str(REPO / "runs"))
    parser.add_argument("--archive", default=str(REPO / "results" / "bebert-runs"),
                        help="where finished runs' small records are kept (in git) and read back from")
    parser.add_argument("--glue-dir")
    parser.add_argument("--out", default=str(REPO / "results" / "bebert.md"))
    parser.add_argument("--no-report", action="store_true",
                        help="only train: write neither the report nor the archive (for several processes sharing "
                             "one --runs folder, whose reports would race; write both once at the end with --report-only)")
    parser.add_argument("--machine", metavar="TEXT",
                        help="where the runs ran, when not on the 2 CPU cores (e.g. 'one NVIDIA H200'): named in "
                             "the report, whose wall-time table then counts seconds")
    args = parser.parse_args(argv)
    runs = Runs(Path(args.runs), args.glue_dir, Path(args.archive))
    started = time.perf_counter()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    def report():  # every table, from whatever runs have finished; --parts and --tasks only choose what to run
        runs.save_archive()
        text = render(runs, REPORT_PARTS, TASKS, args.glue_dir, time.perf_counter() - started, args.machine)
        out.write_text(text)
        return text

    if "kdtime" in args.parts and not args.report_only:
        kd_step_times(runs, args.glue_dir)
    if not args.report_only:
        for description, job in jobs(args.parts, args.tasks, runs, args.only):
            print(f"== {description}", flush=True)
            job()
            if not args.no_report:
                report()
    if not args.no_report:
        print(report())
    return 0


if __name__ == "__main__":
    sys.exit(main())
