"""Train the built-in model and ship it: BEBERT 1-1-4, 2 AdaBoost members, SST-2 (recipe `builtin`).

    python scripts/train_builtin.py [--out runs/builtin] [--base runs/foundation/sst2-w1e1a4]

Runs (or resumes) the recipe bebert/recipes/builtin.yaml, then copies the exported artifact into
bebert/builtin_model/, where `bebert` finds it as the default model. Its manifest carries the measured
dev accuracy; tests/test_builtin.py checks that loading it reproduces that accuracy. With --base,
the members start from an existing single-model run of the same base recipe (for example the
foundation sst2 run) instead of training the teacher and student again (about 25 minutes on 2 CPU
cores); the members themselves take about 10 minutes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from bebert.builtin import BUILTIN_DIR, BUILTIN_RECIPE
from bebert.ensemble import run_ensemble
from bebert.errors import BebertError
from bebert.recipe import load_recipe


def ship(artifact: Path, target: Path) -> None:
    """Replace ``target`` with a copy of ``artifact``; never leaves a half-copied model behind."""
    staging = target.with_name(target.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    for name in ("manifest.yaml", "tensors.safetensors"):
        shutil.copyfile(artifact / name, staging / name)
    old = target.with_name(target.name + ".old")
    if target.exists():
        os.replace(target, old)
    os.replace(staging, target)
    shutil.rmtree(old, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/builtin")
    parser.add_argument("--base", help="finished run of the base recipe (sst2) to start the members from")
    parser.add_argument("--glue-dir")
    args = parser.parse_args()
    try:
        results = run_ensemble(load_recipe(BUILTIN_RECIPE), args.out, glue_dir=args.glue_dir, resume=True,
                               base_dir=args.base)
    except BebertError as exc:
        print(f"train_builtin: error: {exc}", file=sys.stderr)
        return 2
    ship(Path(args.out) / "artifact", BUILTIN_DIR)
    metric = results["metric"]
    print(f"built-in model: {results['ensemble']['members']} members, dev {metric} {results['dev'][metric]:.2f} "
          f"(single binary {results['base']['student_dev'][metric]:.2f}); shipped to {BUILTIN_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
