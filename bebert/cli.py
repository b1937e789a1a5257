"""``bebert``: the model side's command line (train, evaluate, export, and the built-in demo).

Every problem with the user's input arrives as a BebertError and is printed as one sentence with
exit status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys
import time
from importlib import resources
from pathlib import Path

from .errors import BebertError, run_command

DEMO_RECIPE = "demo"


def _builtin_recipe(name: str) -> Path:
    return Path(str(resources.files("bebert.recipes").joinpath(f"{name}.yaml")))


def _recipe_from_args(args):
    from .recipe import load_recipe

    path = Path(args.recipe)
    if not path.exists() and _builtin_recipe(args.recipe).is_file():
        path = _builtin_recipe(args.recipe)
    recipe = load_recipe(path)
    changes = {k: v for k, v in (("train_subset", args.subset), ("seed", args.seed), ("quant", args.quant)) if v is not None}
    return recipe.replace(**changes) if changes else recipe


def cmd_train(args) -> int:
    from .ensemble import run_ensemble
    from .pipeline import run_recipe
    from .train import init_world

    recipe = _recipe_from_args(args)
    if args.members is not None:
        if recipe.ensemble is None:
            raise BebertError(f"--members needs a recipe with an ensemble section; {args.recipe} has none.")
        recipe = recipe.replace(ensemble=recipe.ensemble.replace(members=args.members))
    if args.base is not None and recipe.ensemble is None:
        raise BebertError("--base names the single-model run an ensemble starts from; this recipe has no ensemble.")
    world = init_world()
    if recipe.ensemble is not None:
        run_ensemble(recipe, args.out, glue_dir=args.glue_dir, resume=args.resume, base_dir=args.base, world=world)
    else:
        run_recipe(recipe, args.out, glue_dir=args.glue_dir, resume=args.resume, world=world)
    return 0


def cmd_eval(args) -> int:
    from . import glue
    from .ensemble import artifact_predictions, encode_for_artifact
    from .export import load_ensemble
    from .pipeline import predictions_from_logits

    members, manifest = load_ensemble(args.artifact)
    task = args.task or manifest.get("task", {}).get("name")
    if task is None:
        raise BebertError(f"Artifact {args.artifact} names no task; pass --task.")
    spec = glue.task_spec(task)
    rows = glue.load_split(spec.name, args.split, args.glue_dir)
    split = encode_for_artifact(manifest, rows, spec.is_regression, args.backbone)
    combine = manifest.get("ensemble", {}).get("combine", "vote")
    started = time.perf_counter()
    predictions, logits = artifact_predictions(members, split, combine, spec.is_regression)
    took = time.perf_counter() - started

    def shown(preds):
        return ", ".join(f"{k} {v:.2f}" for k, v in glue.compute_metrics(spec.name, preds, split.labels).items())

    if len(members) > 1:
        for i, ((_, alpha), member_logits) in enumerate(zip(members, logits)):
            print(f"  member {i + 1} (alpha {alpha:.4f}): {shown(predictions_from_logits(member_logits, spec.is_regression))}")
    what = f"ensemble of {len(members)} ({combine})" if len(members) > 1 else "model"
    print(f"{spec.name} {args.split} ({len(rows)} rows, {took:.1f} s), {what}: {shown(predictions)}")
    return 0


def cmd_demo(args) -> int:
    """The main flow on the built-in model: load the shipped BEBERT ensemble, check it on SST-2 dev."""
    if args.train:
        return _demo_training(args)
    import numpy as np

    from . import glue
    from .builtin import BUILTIN_DIR
    from .ensemble import artifact_predictions, encode_for_artifact
    from .export import load_ensemble
    from .pipeline import predictions_from_logits
    from .sim.counts import FP32, Bits, stored_bytes

    started = time.perf_counter()
    members, manifest = load_ensemble(BUILTIN_DIR)
    spec = glue.task_spec(manifest["task"]["name"])
    recipe, combine = manifest["recipe"], manifest["ensemble"]["combine"]
    rows = glue.load_split(spec.name, "dev", args.glue_dir)
    dev = encode_for_artifact(manifest, rows, spec.is_regression)
    predictions, logits = artifact_predictions(members, dev, combine, spec.is_regression)
    metric = spec.primary_metric

    def measured(preds) -> float:
        return glue.compute_metrics(spec.name, preds, dev.labels)[metric]

    recorded = manifest["dev_metrics"][metric]
    print(f"built-in model ({BUILTIN_DIR}): BEBERT {manifest['bits']['label']}, {len(members)} members "
          f"({manifest['ensemble']['method']}, joined by {combine}), {spec.name} dev, {len(rows)} rows:")
    for i, ((_, alpha), member_logits) in enumerate(zip(members, logits)):
        print(f"  member {i + 1} (alpha {alpha:.3f}) {metric} "
              f"{measured(predictions_from_logits(member_logits, spec.is_regression)):.2f}")
    ensemble_value = measured(predictions)
    print(f"  ensemble              {metric} {ensemble_value:.2f} (recorded at training: {recorded:.2f})")
    size = sum(f.stat().st_size for f in BUILTIN_DIR.iterdir())
    fp32 = stored_bytes(manifest["model"], FP32)
    print(f"  artifact {size / 1e6:.2f} MB for {len(members)} members vs one fp32 MiniLM {fp32 / 1e6:.2f} MB "
          f"({fp32 / size:.1f}x smaller; counted 1-bit size per member "
          f"{stored_bytes(manifest['model'], Bits.from_manifest(manifest)) / 1e6:.2f} MB)")
    if not np.isclose(ensemble_value, recorded, rtol=0, atol=1e-9):
        raise BebertError(f"The built-in model scored {ensemble_value:.2f} on {spec.name} dev, not the "
                          f"{recorded:.2f} recorded in its manifest.")

    # The same sentences through the integer datapath (bebert.sim), as the accelerator will compute them.
    from .sim.ensemble import load_simulation
    from .sim.tokens import SentenceTokenizer

    simulated_at = time.perf_counter()
    simulation = load_simulation(BUILTIN_DIR)
    ids, types = SentenceTokenizer(recipe["backbone"], recipe["max_length"]).encode_examples(rows)
    integer_answers = simulation.join(simulation.member_logits(ids, types))
    same = int((integer_answers == predictions).sum())
    print(f"  integer datapath (bebert-hw sim) {metric} {measured(integer_answers):.2f}; agrees with the "
          f"PyTorch model on {same}/{len(rows)} sentences ({100.0 * same / len(rows):.2f}%), "
          f"{time.perf_counter() - simulated_at:.0f} s")
    print(f"  wall time {time.perf_counter() - started:.0f} s")
    return 0


def _demo_training(args) -> int:
    """Training from scratch on the built-in default: short fine-tune, distil, export, reload, check."""
    import torch

    from . import glue
    from .export import load_model
    from .pipeline import load_dev, predict_logits, run_recipe
    from .backbone import load_tokenizer
    from .recipe import load_recipe

    recipe = load_recipe(_builtin_recipe(DEMO_RECIPE))
    started = time.perf_counter()
    results = run_recipe(recipe, args.out, glue_dir=args.glue_dir, resume=True)
    model, manifest = load_model(Path(args.out) / "artifact")
    dev = load_dev(recipe, load_tokenizer(recipe.backbone), args.glue_dir)
    reloaded = glue.score(recipe.task, predict_logits(model, dev).argmax(-1), dev.labels)
    size = sum(f.stat().st_size for f in (Path(args.out) / "artifact").iterdir())
    teacher_size = (Path(args.out) / "teacher" / "model.pt").stat().st_size
    print()
    print(f"demo ({recipe.task}, {results['train_rows']} training rows, {results['dev_rows']} dev rows):")
    metric = results["metric"]
    print(f"  {'fp32 teacher':<20} {metric} {results['teacher']['dev'][metric]:.2f}")
    print(f"  {'binary ' + results['bits'] + ' student':<20} {metric} {results['student']['dev'][metric]:.2f}")
    print(f"  {'reloaded artifact':<20} {metric} {reloaded:.2f} (equals the student: export -> load is exact)")
    print(f"  artifact {size / 1e6:.2f} MB vs fp32 checkpoint {teacher_size / 1e6:.2f} MB "
          f"({teacher_size / size:.1f}x smaller)")
    print(f"  wall time {time.perf_counter() - started:.0f} s, torch threads {torch.get_num_threads()}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bebert", description="Train, evaluate and export binary BERTs (BEBERT).")
    sub = parser.add_subparsers(dest="command", required=True)

    def data_option(p):
        p.add_argument("--glue-dir", help="GLUE data folder (default: $BEBERT_GLUE_DIR, else shared/data/glue "
                                          "beside the repository)")

    p = sub.add_parser("train", help="fine-tune the fp32 teacher, distill the binary student, export it")
    p.add_argument("--recipe", required=True, help="recipe YAML file, or a built-in name (demo, sst2-w1e1a4, ...)")
    p.add_argument("--out", required=True, help="run directory (checkpoints, results.json, artifact/)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out where it stopped")
    p.add_argument("--subset", type=int, help="train on this many seeded-random training rows (recorded)")
    p.add_argument("--seed", type=int, help="override the recipe's seed")
    p.add_argument("--quant", help="override the student's quantization (w1e1a4, w1e1a1, or a YAML file)")
    p.add_argument("--members", type=int, help="ensemble recipes: override the number of members")
    p.add_argument("--base", help="ensemble recipes: a finished single-model run of the same base recipe to "
                                  "start the members from (default: trained in OUT/base)")
    data_option(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="evaluate an exported artifact on a GLUE split")
    p.add_argument("--artifact", required=True)
    p.add_argument("--task", help="GLUE task (default: the one in the artifact)")
    p.add_argument("--split", default="dev")
    p.add_argument("--backbone", help="tokenizer directory (default: the recipe's backbone)")
    data_option(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("demo", help="the main flow on the built-in model (with --train: train a small model)")
    p.add_argument("--train", action="store_true", help="instead, fine-tune and distil a binary model on 2,000 "
                                                        "SST-2 sentences (about 4 minutes on 2 cores)")
    p.add_argument("--out", default="runs/demo", help="with --train: run directory (resumed if it exists)")
    data_option(p)
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return run_command("bebert", args.func, args, "interrupted; rerun with --resume to continue from the last checkpoint")


if __name__ == "__main__":
    sys.exit(main())
