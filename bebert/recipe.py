"""A training recipe: everything that decides a run's result, in one YAML file that the run records.

A recipe names the GLUE task, the backbone, the data (sequence length, optional training subset),
the seed, the full-precision teacher's stages and the binary student's stages. Each stage is an
objective (``task``, ``kd_hidden``, ``kd_pred``; see objectives.py), a number of epochs and a
peak learning rate. ``ternary`` stages, when given, train a ternary model first and split it
into the binary student (BinaryBERT's ternary weight splitting). An ``ensemble`` section, when
given, turns the run into BEBERT: members boosted (or bagged) from the distilled student.
A ``selection`` section, when given, holds a seeded, stratified part of the training rows out of
training, and every stage ends on the checkpoint that scores best on it (selection.py).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .errors import BebertError
from .glue import task_spec
from .objectives import OBJECTIVES
from .settings import check_settings, parse_yaml


@dataclass(frozen=True)
class Stage:
    objective: str
    epochs: int
    lr: float
    warmup: float = 0.1  # fraction of the stage's steps spent warming the learning rate up

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise BebertError(f"Stage objective must be one of {list(OBJECTIVES)}, not {self.objective!r}.")
        if not (_is_int(self.epochs) and self.epochs >= 1):
            raise BebertError(f"Stage epochs must be a positive integer, not {self.epochs!r}.")
        if not (_is_real(self.lr) and self.lr > 0):
            raise BebertError(f"Stage learning rate must be a positive number (write 1.0e-4, not 1e-4, "
                              f"in YAML), not {self.lr!r}.")
        if not (_is_real(self.warmup) and 0 <= self.warmup <= 1):
            raise BebertError(f"Stage warmup must be a fraction between 0 and 1, not {self.warmup!r}.")


def _is_int(value) -> bool:
    return type(value) is int  # bool is an int to isinstance, but `epochs: true` is a mistake


def _is_real(value) -> bool:
    return type(value) in (int, float)


ENSEMBLE_METHODS = ("adaboost", "bagging")
# How a member is trained from the distilled student: BEBERT's choice is "none" (task loss only).
MEMBER_MODES = {
    "none": ("task",),
    "pred": ("kd_pred",),
    "two_stage": ("kd_hidden", "kd_pred"),
}
COMBINE_RULES = ("vote", "logits")


@dataclass(frozen=True)
class Selection:
    """Checkpoint choice on held-out training rows, never on dev.

    ``fraction`` of the training rows (stratified by class, by score bin for regression, drawn with
    the recipe's seed) is held out of every stage's training and of the boosting weights. Each stage
    scores its model on those rows before its first update and every ``every`` steps after, its last
    step included, and ends on the best-scoring checkpoint (the earliest of equal scores).
    """

    fraction: float = 0.1
    every: int = 50

    def __post_init__(self):
        if not (_is_real(self.fraction) and 0 < self.fraction < 1):
            raise BebertError(f"Selection fraction must be a fraction between 0 and 1, not {self.fraction!r}.")
        if not (_is_int(self.every) and self.every >= 1):
            raise BebertError(f"Selection interval every must be a positive number of steps, not {self.every!r}.")


@dataclass(frozen=True)
class Ensemble:
    """BEBERT's ensemble: ``members`` binary models, each trained from the distilled student.

    ``adaboost`` trains member r on the training set resampled by the boosting weights of round r
    (SAMME for classes, AdaBoost.R2 for regression); ``bagging`` on a uniform bootstrap sample,
    every member with vote weight 1. ``mode`` picks the member's training (see MEMBER_MODES), each
    stage ``epochs`` long at peak rate ``lr``. ``combine`` is how the members' outputs are joined:
    ``vote`` (alpha-weighted class vote; weighted median for regression) or ``logits``
    (argmax of the alpha-weighted sum of logits; weighted mean for regression).
    """

    method: str = "adaboost"
    members: int = 2
    mode: str = "none"
    epochs: int = 1
    lr: float = 1e-4
    combine: str = "vote"

    def __post_init__(self):
        if self.method not in ENSEMBLE_METHODS:
            raise BebertError(f"Ensemble method must be one of {list(ENSEMBLE_METHODS)}, not {self.method!r}.")
        if not (_is_int(self.members) and self.members >= 1):
            raise BebertError(f"An ensemble needs a positive whole number of members, not {self.members!r}.")
        if self.mode not in MEMBER_MODES:
            raise BebertError(f"Ensemble member mode must be one of {list(MEMBER_MODES)}, not {self.mode!r}.")
        if self.combine not in COMBINE_RULES:
            raise BebertError(f"Ensemble combine rule must be one of {list(COMBINE_RULES)}, not {self.combine!r}.")
        Stage("task", self.epochs, self.lr)  # the same checks as any stage's epochs and rate

    @property
    def stages(self) -> tuple[Stage, ...]:
        return tuple(Stage(objective, self.epochs, self.lr) for objective in MEMBER_MODES[self.mode])

    def replace(self, **changes) -> "Ensemble":
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class Recipe:
    task: str
    quant: str = "w1e1a4"
    backbone: str = "minilm"
    max_length: int = 128
    batch_size: int = 32
    seed: int = 42
    train_subset: int | None = None  # train on this many seeded-random training rows (None: all)
    checkpoint_every: int = 200  # optimizer steps between checkpoints, besides one per epoch
    teacher: tuple[Stage, ...] = (Stage("task", 3, 1e-4),)
    ternary: tuple[Stage, ...] = ()
    student: tuple[Stage, ...] = (Stage("kd_hidden", 1, 5e-4), Stage("kd_pred", 1, 1e-4))
    ensemble: Ensemble | None = None
    selection: Selection | None = None  # None: every stage ends on its last step

    def __post_init__(self):
        for name in ("task", "quant", "backbone"):
            if not isinstance(getattr(self, name), str):
                raise BebertError(f"Recipe setting {name} must be a name, not {getattr(self, name)!r}.")
        task_spec(self.task)  # raises for an unknown task
        for name in ("max_length", "batch_size", "checkpoint_every"):
            value = getattr(self, name)
            if not (_is_int(value) and value >= 1):
                raise BebertError(f"Recipe setting {name} must be a positive integer, not {value!r}.")
        if not (_is_int(self.seed) and 0 <= self.seed < 2**32):
            raise BebertError(f"Recipe setting seed must be an integer from 0 to 2^32 - 1, not {self.seed!r}.")
        if self.train_subset is not None and not (_is_int(self.train_subset) and self.train_subset >= 1):
            raise BebertError(f"Recipe setting train_subset must be a positive integer or null, not {self.train_subset!r}.")
        if self.ensemble is not None and not isinstance(self.ensemble, Ensemble):
            raise BebertError(f"Recipe setting ensemble must be an ensemble section, not {self.ensemble!r}.")
        if self.selection is not None and not isinstance(self.selection, Selection):
            raise BebertError(f"Recipe setting selection must be a selection section, not {self.selection!r}.")
        if not self.teacher or not self.student:
            raise BebertError("A recipe needs at least one teacher stage and one student stage.")

    def replace(self, **changes) -> "Recipe":
        return dataclasses.replace(self, **changes)

    @property
    def base(self) -> "Recipe":
        """The single binary model that an ensemble's members start from."""
        return self.replace(ensemble=None)

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self) | {k: [dataclasses.asdict(s) for s in getattr(self, k)]
                                           for k in ("teacher", "ternary", "student")}
        for optional in ("ensemble", "selection"):
            if data[optional] is None:
                del data[optional]  # a recipe without the section reads (and records) as it always did
        return data

    @classmethod
    def from_dict(cls, data, source: str = "the recipe") -> "Recipe":
        data = check_settings(cls, data, source)
        for key in ("teacher", "ternary", "student"):
            if key in data:
                stages = data[key] or []
                try:
                    data[key] = tuple(Stage(**s) for s in stages)
                except TypeError as exc:
                    raise BebertError(f"{source}: a {key} stage is malformed ({exc}).") from None
        if data.get("ensemble") is not None:
            data["ensemble"] = Ensemble(**check_settings(Ensemble, data["ensemble"], f"{source}, ensemble"))
        if data.get("selection") is not None:
            data["selection"] = Selection(**check_settings(Selection, data["selection"], f"{source}, selection"))
        return cls(**data)


def task_recipe(task: str, quant: str, seed: int = 42) -> Recipe:
    """The shipped recipe of a GLUE task for one setting: bebert/recipes/<task>-<quant>.yaml where the
    setting has its own schedule (the 1-1-1 students' BiT stage under a float head), else <task>.yaml
    with its quantization replaced."""
    recipes = resources.files("bebert.recipes")
    own = recipes.joinpath(f"{task}-{quant}.yaml")
    if own.is_file():
        return load_recipe(Path(str(own))).replace(seed=seed)
    return load_recipe(Path(str(recipes.joinpath(f"{task}.yaml")))).replace(quant=quant, seed=seed)


def load_recipe(path: str | Path) -> Recipe:
    path = Path(path)
    if not path.is_file():
        raise BebertError(f"Recipe {path} does not exist.")
    source = f"Recipe {path}"
    return Recipe.from_dict(parse_yaml(path.read_text(), source), source)
