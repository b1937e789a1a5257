"""BEBERT experiments on our backbone: the GLUE table, the KD ablation, robustness, size and FLOPs.

    python scripts/bebert_results.py [--parts glue kd seeds perturb size] [--tasks sst2 mrpc rte cola stsb]
                                     [--report-only] [--runs runs] [--out results/bebert.md]

Every run is resumable and shared: rerunning the command continues where it stopped, and finished
runs are only re-read. ``--parts`` chooses what to run; the report always holds every table. Runs
are done in a fixed priority order (SST-2 first, then the other tasks, then the extra seeds), and
results/bebert.md is rewritten after each one, so a partial run already gives partial tables (cells
not run yet show "-") and the targets measured so far.

    runs/foundation/<task>-<quant>/              single binary models, seed 42 (shared with foundation_results.py)
    runs/bebert/<task>-<quant>-<ensemble>/       ensembles trained from them
    runs/bebert/seeds/<task>-<quant>[-<ensemble>]-s<seed>/   the robustness seeds 43 and 44

Parts:
  glue     fp32, single 1-1-4 and 1-1-1, BEBERT 1-1-4 (AdaBoost, 2 and 4 members: one 4-member run,
           whose first 2 members are the 2-member ensemble), bagging 1-1-4 (2 members), BEBERT 1-1-1
           (2 members), on SST-2, MRPC, RTE, CoLA, STS-B with the official metric, and the average.
  kd       2-member BEBERT 1-1-4 on SST-2 with members trained without KD, with prediction KD, and
           with two-stage KD: metric and member training wall time.
  kdtime   seconds per training step of each of those modes, timed on an idle machine (30 steps per
           stage; not in the default parts: run it alone, while nothing else uses the CPU).
  seeds    single 1-1-4 vs BEBERT 1-1-4 (2 members) over seeds 42, 43, 44 on SST-2 and RTE.
  perturb  dev accuracy with 10% of the (non-special) tokens dropped, seeded, on SST-2 and RTE.
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
from bebert.cli import _builtin_recipe
from bebert.data import drop_tokens
from bebert.ensemble import ensemble_metrics, run_ensemble
from bebert.pipeline import load_dev, load_model_checkpoint, load_training, predictions_from_logits, run_recipe
from bebert.recipe import Ensemble, load_recipe
from bebert.sim.counts import FP32, Bits, inference_counts, stored_bytes, total
from bebert.train import predict_logits

REPO = Path(__file__).resolve().parents[1]
TASKS = ("sst2", "mrpc", "rte", "cola", "stsb")
SEEDS = (42, 43, 44)
SEED_TASKS = ("sst2", "rte")
DROP_RATE, DROP_SEED = 0.10, 1234
MEMBER_EPOCHS, MEMBER_LR = 1, 1.0e-4

# name -> (base quantization, ensemble). AdaBoost members are joined by BEBERT's alpha-weighted vote;
# bagging's members all weigh 1, where a 2-member vote would only break ties, so they join by logits.
GLUE_ENSEMBLES = {
    "w1e1a4-adaboost4": ("w1e1a4", Ensemble("adaboost", 4, "none", MEMBER_EPOCHS, MEMBER_LR, "vote")),
    "w1e1a4-bagging2": ("w1e1a4", Ensemble("bagging", 2, "none", MEMBER_EPOCHS, MEMBER_LR, "logits")),
    "w1e1a1-adaboost2": ("w1e1a1", Ensemble("adaboost", 2, "none", MEMBER_EPOCHS, MEMBER_LR, "vote")),
}
KD_MODES = ("none", "pred", "two_stage")
REPORT_PARTS = ("glue", "kd", "seeds", "perturb", "size")
KD_TASK = "sst2"


def base_recipe(task: str, quant: str, seed: int = 42):
    """The task's single-model recipe for ``quant``: bebert/recipes/<task>-<quant>.yaml where a setting has
    its own schedule (the 1-1-1 students' BiT schedule under a float head), else <task>.yaml."""
    own = _builtin_recipe(f"{task}-{quant}")
    if own.is_file():
        return load_recipe(own).replace(seed=seed)
    return load_recipe(_builtin_recipe(task)).replace(quant=quant, seed=seed)


class Runs:
    """Where each run lives, and running it (resumably) when asked."""

    def __init__(self, root: Path, glue_dir):
        self.root, self.glue_dir = root, glue_dir

    def base_dir(self, task: str, quant: str, seed: int = 42) -> Path:
        if seed == 42:
            return self.root / "foundation" / f"{task}-{quant}"
        return self.root / "bebert" / "seeds" / f"{task}-{quant}-s{seed}"

    def ensemble_dir(self, task: str, name: str, seed: int = 42) -> Path:
        if seed == 42:
            return self.root / "bebert" / f"{task}-{name}"
        return self.root / "bebert" / "seeds" / f"{task}-{name}-s{seed}"

    def run_base(self, task: str, quant: str, seed: int = 42) -> dict:
        out = self.base_dir(task, quant, seed)
        if (out / "results.json").exists():
            return json.loads((out / "results.json").read_text())
        other = self.base_dir(task, "w1e1a1" if quant == "w1e1a4" else "w1e1a4", seed) / "teacher"
        if (other / "model.pt").exists() and not (out / "teacher").exists():
            shutil.copytree(other, out / "teacher")  # the same teacher recipe: train it once per task and seed
        return run_recipe(base_recipe(task, quant, seed), out, glue_dir=self.glue_dir, resume=True)

    def run_ensemble(self, task: str, name: str, quant: str, ensemble: Ensemble, seed: int = 42) -> dict:
        out = self.ensemble_dir(task, name, seed)
        if (out / "results.json").exists():
            return json.loads((out / "results.json").read_text())
        self.run_base(task, quant, seed)
        recipe = base_recipe(task, quant, seed).replace(ensemble=ensemble)
        return run_ensemble(recipe, out, glue_dir=self.glue_dir, resume=True, base_dir=self.base_dir(task, quant, seed))

    def result(self, path: Path) -> dict | None:
        return self.result_json(path / "results.json")

    @staticmethod
    def result_json(path: Path) -> dict | None:
        return json.loads(path.read_text()) if path.exists() else None


def seed_ensemble(seed: int) -> tuple:
    """(name, base quantization, ensemble) of the 2-member BEBERT 1-1-4 of one seed. Seed 42's is the
    GLUE table's 4-member run, whose first two members are the 2-member ensemble (AdaBoost is sequential)."""
    if seed == 42:
        return ("w1e1a4-adaboost4", *GLUE_ENSEMBLES["w1e1a4-adaboost4"])
    return "w1e1a4-adaboost2", "w1e1a4", Ensemble("adaboost", 2, "none", MEMBER_EPOCHS, MEMBER_LR, "vote")


def jobs(parts: list[str], tasks: list[str], runs: Runs):
    """(description, callable) in priority order."""
    order = [KD_TASK] + [t for t in tasks if t != KD_TASK] if KD_TASK in tasks else list(tasks)
    for task in order:
        if "glue" in parts or ("kd" in parts and task == KD_TASK):
            yield f"{task} 1-1-4 single", lambda t=task: runs.run_base(t, "w1e1a4")
            yield f"{task} BEBERT 1-1-4 adaboost x4", lambda t=task: runs.run_ensemble(t, "w1e1a4-adaboost4",
                                                                                      *GLUE_ENSEMBLES["w1e1a4-adaboost4"])
        if "kd" in parts and task == KD_TASK:
            for mode in KD_MODES[1:]:
                ens = Ensemble("adaboost", 2, mode, MEMBER_EPOCHS, MEMBER_LR, "vote")
                yield f"{task} KD ablation {mode}", lambda t=task, e=ens, m=mode: runs.run_ensemble(
                    t, f"w1e1a4-kd-{m}2", "w1e1a4", e)
        if "glue" in parts:
            yield f"{task} 1-1-1 single", lambda t=task: runs.run_base(t, "w1e1a1")
            for name in ("w1e1a4-bagging2", "w1e1a1-adaboost2"):
                yield f"{task} {name}", lambda t=task, n=name: runs.run_ensemble(t, n, *GLUE_ENSEMBLES[n])
    if "seeds" in parts:
        for task in (t for t in SEED_TASKS if t in tasks):
            for seed in SEEDS:
                yield f"{task} seed {seed}", lambda t=task, s=seed: runs.run_ensemble(t, *seed_ensemble(s), seed=s)


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


def glue_rows(runs: Runs, tasks) -> tuple[list[str], dict]:
    header = ["majority class", "fp32", "1-1-4", "1-1-1", "BEBERT 1-1-4 x2", "BEBERT 1-1-4 x4", "bagging 1-1-4 x2", "BEBERT 1-1-1 x2"]
    table = {}
    for task in tasks:
        metric = glue.task_spec(task).primary_metric
        b4, b1 = runs.result(runs.base_dir(task, "w1e1a4")), runs.result(runs.base_dir(task, "w1e1a1"))
        ada4 = runs.result(runs.ensemble_dir(task, "w1e1a4-adaboost4"))
        bag = runs.result(runs.ensemble_dir(task, "w1e1a4-bagging2"))
        ada1 = runs.result(runs.ensemble_dir(task, "w1e1a1-adaboost2"))
        teacher = (b4 or b1 or {}).get("teacher", {}).get("dev", {}).get(metric)

        def prefix(result, m, rule="vote"):
            """The ensemble of the first m rounds: its kept members (a member no better than chance is
            dropped, so m rounds may keep fewer than m members)."""
            if not result or len(result["members"]) < m:
                return None
            kept = sum(1 for r in result["members"][:m] if r["dev"])
            entry = result["dev_by_members"].get(str(kept))
            return entry[rule][metric] if entry else None

        values = dict(zip(header, [
            majority_class(task, runs.glue_dir), teacher, b4 and b4["student"]["dev"][metric], b1 and b1["student"]["dev"][metric],
            prefix(ada4, 2), prefix(ada4, 4), bag and bag["dev"][metric], prefix(ada1, 2)]))
        table[task] = {h: undefined_as_zero(v) for h, v in values.items()}
        table[task]["constant"] = [h for h, v in values.items() if is_undefined(v)]
        logits = {"BEBERT 1-1-4 x2": prefix(ada4, 2, "logits"), "BEBERT 1-1-4 x4": prefix(ada4, 4, "logits"),
                  "BEBERT 1-1-1 x2": prefix(ada1, 2, "logits"), "bagging 1-1-4 x2 (vote)": prefix(bag, 2)}
        table[task]["logits"] = {h: undefined_as_zero(v) for h, v in logits.items()}
    return header, table


def render_glue(runs: Runs, tasks, header: list[str], table: dict) -> list[str]:
    lines = ["## GLUE dev (official metric per task, percent)", "",
             "| task | metric | train rows | " + " | ".join(header) + " |",
             "| --- | --- | ---: | " + " | ".join("---:" for _ in header) + " |"]
    for task in tasks:
        spec = glue.task_spec(task)
        base = runs.result(runs.base_dir(task, "w1e1a4"))
        rows = base["train_rows"] if base else None
        subset = base and base["recipe"]["train_subset"]
        rows_text = "-" if rows is None else f"{rows:,}" + (" (subset)" if subset else "")
        lines.append(f"| {spec.name} | {spec.primary_metric} | {rows_text} | "
                     + " | ".join(cell(table[task][h]) for h in header) + " |")
    averages = {h: (statistics.fmean(table[t][h] for t in tasks) if all(table[t][h] is not None for t in tasks) else None)
                for h in header}
    lines.append("| **average** | | | " + " | ".join(cell(averages[h]) for h in header) + " |")
    floor = [f"{task} {h}" for task in tasks for h in header[1:]
             if None not in (table[task][h], table[task]["majority class"])
             and table[task][h] <= table[task]["majority class"] + 1e-9]
    lines += ["", "Majority class: always the training set's most common class. Cells at or below it: "
              + (", ".join(floor) or "none") + " (a cell equal to it is most likely a model that answers one "
              "class on every dev row)."]
    constant = [f"{task} {h}" for task in tasks for h in table[task]["constant"]]
    if constant:
        lines += ["", "Scored 0 because the model gives one value on every dev pair, which has no Pearson "
                  "correlation (as a single-class prediction has Matthews 0): " + ", ".join(constant) + "."]
    lines += ["", dev_noise(runs, tasks, table), "", two_member_vote(runs, tasks), "",
              "Against the paper: every member here is taken at the end of its training, and no dev row is",
              "seen before the final scoring. The authors' public code (github.com/TTTTTTris/BEBERT, binarybert/)",
              "does otherwise. Its no-KD script (scripts/benn_glue_A.sh runs benn_glue_train_A.py) trains 6",
              "epochs at 5e-5 per member, and the learner (benn_kd_glue.py) scores the member on dev every 100",
              "steps, step 0 included, so before any update, and keeps the best-scoring checkpoint: the distilled",
              "model it starts from is itself a candidate, and its dev figures include a choice made on dev.",
              "With 2 members (every task but MNLI and QQP) its scoring loop, `for num_boost in range(1,",
              "boosting)`, scores only num_boost = 1: the first member alone, as the mean of per-batch metrics",
              "over the full dev batches."]
    lines += ["", "The same ensembles joined the other way (AdaBoost by alpha-weighted logits; bagging by vote):", "",
              "| task | BEBERT 1-1-4 x2 | BEBERT 1-1-4 x4 | BEBERT 1-1-1 x2 | bagging 1-1-4 x2 (vote) |",
              "| --- | ---: | ---: | ---: | ---: |"]
    for task in tasks:
        other = table[task]["logits"]
        lines.append(f"| {task} | " + " | ".join(cell(other[k]) for k in other) + " |")
    lines += ["", "Members per run (weighted training error, alpha, own dev metric, member training wall s). A member",
              "no better than chance on its weighted rows (error >= 1 - 1/classes) gets alpha 0 and is dropped;",
              "the GLUE table's cell is then the ensemble of the members kept.", ""]
    for task in tasks:
        for name in GLUE_ENSEMBLES:
            result = runs.result(runs.ensemble_dir(task, name))
            if result:
                metric = result["metric"]
                members = "; ".join(f"{m['error']:.3f} / {m['alpha']:.3f} / "
                                    f"{cell(m['dev'][metric]) if m['dev'] else 'dropped'} / {m['train_wall_s']:.0f}"
                                    for m in result["members"])
                lines.append(f"- {task} {name}: {members}")
    return lines + [""]


def dev_noise(runs: Runs, tasks, table) -> str:
    """How far a dev metric moves by chance: the dev sets are small (277 rows for RTE), so there a
    difference of a point or two between single models and ensembles is within one standard error."""
    parts = []
    for task in tasks:
        base = runs.result(runs.base_dir(task, "w1e1a4"))
        if base is None:
            continue
        rows, accuracy = base["dev_rows"], table[task]["1-1-4"]
        text = f"{task} {rows:,}"
        if glue.task_spec(task).primary_metric == "accuracy":
            p = accuracy / 100
            text += f" (standard error {100 * (p * (1 - p) / rows) ** 0.5:.1f} points at {accuracy:.0f}%)"
        parts.append(text)
    return ("Dev rows: " + "; ".join(parts) + ". One row moves accuracy by 100/rows points; the standard error is "
            "that of a binomial proportion, sqrt(p (1 - p) / rows).")


def two_member_vote(runs: Runs, tasks) -> str:
    """Why a 2-member ensemble joined by vote is no ensemble at all, checked on the runs themselves."""
    heavier = []
    for task in tasks:
        for name in GLUE_ENSEMBLES:
            result = runs.result(runs.ensemble_dir(task, name))
            first_two = result and [m for m in result["members"][:2] if m["dev"]]
            if not first_two or len(first_two) < 2 or "2" not in result["dev_by_members"]:
                continue
            metric = result["metric"]
            heavy = max(first_two, key=lambda m: m["alpha"])
            if first_two[0]["alpha"] != first_two[1]["alpha"]:
                # Equal up to float rounding: a member's own score comes from its float32 outputs, the
                # ensemble's from the same values joined in float64 (STS-B's Pearson differs at 1e-6); an
                # undefined correlation (a constant prediction) on both sides is the same score.
                own = undefined_as_zero(heavy["dev"][metric])
                joint = undefined_as_zero(result["dev_by_members"]["2"]["vote"][metric])
                same = abs(own - joint) < 1e-4
                heavier.append(f"{task} {name}: member {first_two.index(heavy) + 1}" + ("" if same else " (differs!)"))
    return ("A 2-member alpha-weighted vote is its heavier member: where the two disagree, the larger alpha wins "
            "(and the weighted median of two regressors is the heavier one's value). So a 2-member ensemble joined "
            "by vote scores exactly its heavier member's own dev metric (listed below; heavier: "
            + ("; ".join(heavier) or "no run yet") + "), and differs from the single model only by that member's "
            "extra epoch. Joining by logits is what combines two members.")


TARGETS = {"ensemble_gain": 1.5, "fp32_gap": 2.0, "kd_speedup": 1.8, "kd_loss": 0.5}


def render_targets(runs: Runs, tasks, table: dict) -> list[str]:
    """The issue's targets, measured from the tables below over the runs finished so far."""
    lines = ["## Targets (measured from the tables below)", "", "| target | measured | met |", "| --- | --- | --- |"]
    done = [t for t in tasks if all(table[t][h] is not None for h in ("fp32", "1-1-4", "BEBERT 1-1-4 x2"))]

    def verdict(ok: bool, complete: bool) -> str:
        return ("yes" if ok else "no") if complete else f"so far {'yes' if ok else 'no'} (not every run has finished)"

    if done:
        mean = {h: statistics.fmean(table[t][h] for t in done) for h in ("fp32", "1-1-4", "BEBERT 1-1-4 x2")}
        over = f"over {', '.join(done)}" + ("" if len(done) == len(tasks) else f" ({len(done)} of {len(tasks)} tasks)")
        gain, gap = mean["BEBERT 1-1-4 x2"] - mean["1-1-4"], mean["fp32"] - mean["BEBERT 1-1-4 x2"]
        # Per task too: one task's large move can carry the average alone.
        per_task = ", ".join(f"{table[t]['BEBERT 1-1-4 x2'] - table[t]['1-1-4']:+.2f}" for t in done)
        lines.append(f"| BEBERT 1-1-4 x2 average at least {TARGETS['ensemble_gain']} above single 1-1-4 | "
                     f"{gain:+.2f} {over} (per task {per_task}) | "
                     f"{verdict(gain >= TARGETS['ensemble_gain'], len(done) == len(tasks))} |")
        lines.append(f"| BEBERT 1-1-4 x2 average within {TARGETS['fp32_gap']} of fp32 | "
                     f"{gap:.2f} below fp32 {over} | {verdict(gap <= TARGETS['fp32_gap'], len(done) == len(tasks))} |")
    kd, timing = kd_ablation(runs), runs.result_json(runs.root / "bebert" / f"{KD_TASK}-kd-step-times.json")
    if timing:
        speedup = timing["two_stage"]["member_s"] / timing["none"]["member_s"]
        lines.append(f"| members without KD at least {TARGETS['kd_speedup']}x faster than two-stage KD | "
                     f"{speedup:.2f}x (step timing on an idle machine) | {verdict(speedup >= TARGETS['kd_speedup'], True)} |")
    if "none" in kd and "two_stage" in kd:
        loss = kd["two_stage"][0] - kd["none"][0]
        lines.append(f"| ... and at most {TARGETS['kd_loss']} points lower | {loss:.2f} points lower (SST-2, vote) | "
                     f"{verdict(loss <= TARGETS['kd_loss'], True)} |")
    spread = seed_spread(runs)
    stds = {task: (models["single 1-1-4"][2], models["BEBERT 1-1-4 x2"][2]) for task, models in spread.items()}
    measured = {task: (s, b) for task, (s, b) in stds.items() if None not in (s, b)}
    text = "; ".join(f"{task} {b:.2f} vs {s:.2f}" for task, (s, b) in measured.items()) or "-"
    lines.append(f"| BEBERT's seed-to-seed std below the single model's | {text} (BEBERT vs single) | "
                 + (verdict(all(b < s for s, b in measured.values()), len(measured) == len(stds))
                    if measured else "not yet measured") + " |")
    return lines + [""]


def kd_step_times(runs: Runs, glue_dir, steps: int = 30) -> dict | None:
    """Seconds per training step of each member mode, timed on an idle machine (run with --parts kdtime
    while nothing else runs). The full runs' own wall times also hold whatever else shared the CPU."""
    cache = runs.root / "bebert" / f"{KD_TASK}-kd-step-times.json"
    if cache.exists():
        return json.loads(cache.read_text())
    base_dir = runs.base_dir(KD_TASK, "w1e1a4")
    if not (base_dir / "student" / "model.pt").exists():
        return None
    import tempfile

    import torch

    from bebert.data import epoch_order
    from bebert.objectives import NEEDS_TEACHER
    from bebert.train import World, train_stage

    recipe = base_recipe(KD_TASK, "w1e1a4")
    train = load_training(recipe, load_tokenizer(recipe.backbone), glue_dir).fit
    sample = train.take(epoch_order(len(train), recipe.seed, 0)[:steps * recipe.batch_size])
    teacher = load_model_checkpoint(base_dir / "teacher" / "model.pt").eval()
    full_steps = len(train) // recipe.batch_size
    found = {"steps_timed": steps, "threads": torch.get_num_threads(), "full_epoch_steps": full_steps}
    for mode in KD_MODES:
        per_stage = []
        for stage in Ensemble("adaboost", 1, mode, MEMBER_EPOCHS, MEMBER_LR, "vote").stages:
            member = load_model_checkpoint(base_dir / "student" / "model.pt")
            with tempfile.TemporaryDirectory() as stage_dir:
                stats = train_stage(member, stage, sample, batch_size=recipe.batch_size, seed=recipe.seed,
                                    stage_dir=Path(stage_dir), world=World(),
                                    teacher=teacher if stage.objective in NEEDS_TEACHER else None,
                                    checkpoint_every=10**9, desc=f"timing {mode} {stage.objective}")
            per_stage.append(stats["wall_s"] / steps)
        found[mode] = {"s_per_step": per_stage, "member_s": sum(per_stage) * full_steps * MEMBER_EPOCHS}
    cache.write_text(json.dumps(found, indent=2))
    return found


def kd_ablation(runs: Runs) -> dict:
    """mode -> (2-member dev accuracy by vote, by logits, the two members' training wall s), for the
    modes that have run. The no-KD ensemble is the first two members of the GLUE table's 4-member run."""
    found = {}
    for mode in KD_MODES:
        name = "w1e1a4-adaboost4" if mode == "none" else f"w1e1a4-kd-{mode}2"
        result = runs.result(runs.ensemble_dir(KD_TASK, name))
        if result is not None and len(result["members"]) >= 2:
            dev = result["dev_by_members"].get("2", {})
            found[mode] = (dev.get("vote", {}).get("accuracy"), dev.get("logits", {}).get("accuracy"),
                           sum(m["train_wall_s"] for m in result["members"][:2]))
    return found


def render_kd(runs: Runs) -> list[str]:
    lines = ["## KD ablation: how the members are trained (SST-2, BEBERT 1-1-4, 2 members, AdaBoost)", "",
             "| member training | dev acc (vote) | dev acc (logits) | member training wall s | vs no KD |",
             "| --- | ---: | ---: | ---: | ---: |"]
    found = kd_ablation(runs)
    for mode in KD_MODES:
        if mode not in found:
            lines.append(f"| {mode} | - | - | - | - |")
            continue
        vote, logits, wall = found[mode]
        ratio = f"{wall / found['none'][2]:.2f}x" if "none" in found else "-"
        lines.append(f"| {mode.replace('_', '-')} | {cell(vote)} | {cell(logits)} | {wall:.0f} | {ratio} |")
    lines += ["", "Wall time is the two members' own training (the stages' timers, teacher forward passes included",
              "for the KD modes); every mode starts from the same distilled student. The no-KD row is the first two",
              "members of the GLUE table's 4-member run. These runs shared the 2 cores with other work, so their",
              "wall times are not comparable with each other; the step timing below is.", ""]
    timing = runs.result_json(runs.root / "bebert" / f"{KD_TASK}-kd-step-times.json")
    if timing:
        lines += [f"Step timing on an idle machine ({timing['steps_timed']} steps per stage, batch 32, "
                  f"{timing['threads']} threads; one member = {timing['full_epoch_steps']} steps per stage):", "",
                  "| member training | s per step (per stage) | one member, s | vs no KD |", "| --- | --- | ---: | ---: |"]
        for mode in KD_MODES:
            t = timing[mode]
            lines.append(f"| {mode.replace('_', '-')} | {' + '.join(f'{x:.2f}' for x in t['s_per_step'])} | "
                         f"{t['member_s']:.0f} | {t['member_s'] / timing['none']['member_s']:.2f}x |")
        lines.append("")
    return lines


def seed_spread(runs: Runs) -> dict:
    """task -> model -> (metric per seed, mean, sample std); mean and std only once every seed has run."""
    found = {}
    for task in SEED_TASKS:
        metric = glue.task_spec(task).primary_metric
        single, bebert = [], []
        for seed in SEEDS:
            base = runs.result(runs.base_dir(task, "w1e1a4", seed))
            ens = runs.result(runs.ensemble_dir(task, seed_ensemble(seed)[0], seed))
            single.append(base["student"]["dev"][metric] if base else None)
            bebert.append(ens["dev_by_members"]["2"]["vote"][metric] if ens and "2" in ens["dev_by_members"] else None)
        for label, values in (("single 1-1-4", single), ("BEBERT 1-1-4 x2", bebert)):
            complete = all(v is not None for v in values)
            found.setdefault(task, {})[label] = (values, statistics.fmean(values) if complete else None,
                                                 statistics.stdev(values) if complete else None)
    return found


def render_seeds(runs: Runs) -> list[str]:
    lines = ["## Robustness: seeds 42, 43, 44 (BEBERT 1-1-4, 2 members, AdaBoost, vote)", "",
             "| task | model | seed 42 | seed 43 | seed 44 | mean | std |", "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for task, models in seed_spread(runs).items():
        for label, (values, mean, std) in models.items():
            lines.append(f"| {task} | {label} | " + " | ".join(cell(v) for v in values) + f" | {cell(mean)} | {cell(std)} |")
    lines += ["", "std is the sample standard deviation over the three seeds. A seed sets the training subset",
              "(SST-2), the data order, dropout and the resampling; seed 42 of BEBERT is the GLUE table's run.", ""]
    return lines


def perturbation(runs: Runs, glue_dir) -> dict:
    """Clean and perturbed dev metric of fp32, single 1-1-4 and BEBERT 1-1-4 x2 (seed 42), per task."""
    found = {}
    for task in SEED_TASKS:
        base_dir, ens_dir = runs.base_dir(task, "w1e1a4"), runs.ensemble_dir(task, "w1e1a4-adaboost4")
        ens = runs.result(ens_dir)
        if ens is None or len(ens["members"]) < 2:
            continue
        cache = ens_dir / "perturbation.json"
        if cache.exists():
            found[task] = json.loads(cache.read_text())
            continue
        recipe = base_recipe(task, "w1e1a4")
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
                    value = ensemble_metrics(logits, alphas, task, split.labels, "vote")[spec.primary_metric]
                row.setdefault(label, {})[split_name] = value
        cache.write_text(json.dumps(row, indent=2))
        found[task] = row
    return found


def render_perturb(found: dict) -> list[str]:
    lines = [f"## Input perturbation: {DROP_RATE:.0%} of the tokens dropped (seed {DROP_SEED}), dev", "",
             "| task | model | clean | perturbed | drop |", "| --- | --- | ---: | ---: | ---: |"]
    for task, row in found.items():
        for label, values in row.items():
            lines.append(f"| {task} | {label} | {values['clean']:.2f} | {values['perturbed']:.2f} | "
                         f"{values['clean'] - values['perturbed']:.2f} |")
    lines += ["", "Each non-special token of every dev sentence is dropped with probability 0.1 by a draw seeded",
              "per row (bebert.data.drop_tokens), so every model sees the same perturbed sentences.", ""]
    return lines


def render_size(runs: Runs) -> list[str]:
    dims = {"MiniLM-L6 (ours)": dict(vocab_size=30522, hidden_size=384, num_layers=6, num_heads=12,
                                    intermediate_size=1536, max_position=512, type_vocab_size=2, num_labels=2),
            "BERT-base (paper)": dict(vocab_size=30522, hidden_size=768, num_layers=12, num_heads=12,
                                      intermediate_size=3072, max_position=512, type_vocab_size=2, num_labels=2)}
    models = [("fp32", FP32, 1), ("single 1-1-4", Bits(), 1), ("single 1-1-1", Bits(activations=1, per_row_weight_scales=True), 1),
              ("BEBERT 1-1-4 x2", Bits(), 2), ("BEBERT 1-1-4 x4", Bits(), 4),
              ("BEBERT 1-1-1 x2", Bits(activations=1, per_row_weight_scales=True), 2)]
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


def render(runs: Runs, parts, tasks, glue_dir, wall_s: float) -> str:
    lines = ["# BEBERT results: binary ensembles on MiniLM (GLUE dev)", "",
             "Written by `scripts/bebert_results.py` on 2 CPU cores (no GPU). Backbone all-MiniLM-L6-v2. Single",
             "models: the recipes bebert/recipes/<task>.yaml (seed 42; fp32 teacher, then the binary student",
             "distilled in two stages; see results/foundation.md). Ensembles: every member starts from that",
             f"distilled student and trains {MEMBER_EPOCHS} epoch at peak rate {MEMBER_LR:g} on the resampled training set",
             "(AdaBoost: SAMME, AdaBoost.R2 for STS-B; bagging: bootstrap), without KD unless stated. The GLUE",
             "table joins AdaBoost's members by alpha-weighted vote (weighted median for STS-B) and bagging's by",
             "their mean logits; the other rule's figures follow it.", ""]
    header, table = glue_rows(runs, tasks)
    lines += render_targets(runs, tasks, table)
    if "glue" in parts:
        lines += render_glue(runs, tasks, header, table)
    if "kd" in parts:
        lines += render_kd(runs)
    if "seeds" in parts:
        lines += render_seeds(runs)
    if "perturb" in parts:
        lines += render_perturb(perturbation(runs, glue_dir))
    if "size" in parts:
        lines += render_size(runs)
    lines += [f"Script wall time this invocation: {wall_s:.0f} s (finished runs are re-read, not retrained).", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=["glue", "kd", "seeds", "perturb", "size"],
                        choices=["glue", "kd", "kdtime", "seeds", "perturb", "size"],
                        help="kdtime (not in the default): time each member mode's steps; run it on an idle machine")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS),
                        help="run only these tasks' jobs (of every part chosen); the report always holds every task")
    parser.add_argument("--report-only", action="store_true", help="write the tables from finished runs only")
    parser.add_argument("--runs", default=str(REPO / "runs"))
    parser.add_argument("--glue-dir")
    parser.add_argument("--out", default=str(REPO / "results" / "bebert.md"))
    args = parser.parse_args(argv)
    runs = Runs(Path(args.runs), args.glue_dir)
    started = time.perf_counter()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    def report():  # every table, from whatever runs have finished; --parts and --tasks only choose what to run
        text = render(runs, REPORT_PARTS, TASKS, args.glue_dir, time.perf_counter() - started)
        out.write_text(text)
        return text

    if "kdtime" in args.parts and not args.report_only:
        kd_step_times(runs, args.glue_dir)
    if not args.report_only:
        for description, job in jobs(args.parts, args.tasks, runs):
            print(f"== {description}", flush=True)
            job()
            report()
    print(report())
    return 0


if __name__ == "__main__":
    sys.exit(main())
