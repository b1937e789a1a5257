"""GLUE tasks: where their files are, how to read them, and how GLUE scores predictions.

The task files are the official GLUE TSVs (what GLUE's ``download_glue_data.py`` writes), kept
in a shared folder so that training and tests run offline. Each task lays its file out a little
differently (CoLA has no header, STS-B has ten columns, MRPC starts with a byte-order mark, RTE
and QNLI spell their labels out), so this module turns every one of them into the same list of
:class:`GlueExample` and refuses, with the file and line, anything that does not fit the layout:
a silently skipped or misread row would shift a reported score without anyone noticing.

Scores follow the GLUE paper: the metric per task, in percent. The module uses numpy, scipy and
scikit-learn only, so data checks and scoring work without torch installed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from bebert.errors import BebertError

ENV_VAR = "BEBERT_GLUE_DIR"


class GlueDataError(BebertError):
    """A GLUE folder or task file that is missing or does not have the layout GLUE gives it."""


@dataclass(frozen=True)
class TaskSpec:
    """What the rest of the project needs to know about a task to train on it and score it."""

    name: str
    folder: str
    num_labels: int
    is_regression: bool
    is_pair: bool
    splits: tuple[str, ...]
    primary_metric: str


@dataclass(frozen=True, slots=True)
class GlueExample:
    """One row of a task file: its text (one sentence, or a pair) and its gold label.

    ``label`` is a class index for classification tasks and the 0..5 similarity score for STS-B.
    """

    text_a: str
    text_b: str | None
    label: int | float


_TRAIN_DEV = ("train", "dev")

TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        TaskSpec("sst2", "SST-2", 2, False, False, _TRAIN_DEV, "accuracy"),
        TaskSpec("mrpc", "MRPC", 2, False, True, _TRAIN_DEV, "f1"),
        TaskSpec("rte", "RTE", 2, False, True, _TRAIN_DEV, "accuracy"),
        TaskSpec("cola", "CoLA", 2, False, False, _TRAIN_DEV, "matthews"),
        TaskSpec("stsb", "STS-B", 1, True, True, _TRAIN_DEV, "pearson"),
        TaskSpec("wnli", "WNLI", 2, False, True, _TRAIN_DEV, "accuracy"),
        # QNLI's train file (104,743 rows) is too large for the shared folder; only dev is there.
        TaskSpec("qnli", "QNLI", 2, False, True, ("dev",), "accuracy"),
    )
}


@dataclass(frozen=True)
class _Layout:
    """Where a task file keeps its text and label, and which label strings it may hold.

    ``columns`` names the columns of a file without a header line (CoLA); for every other task
    it is None and the columns are looked up by name in the file's own header, so the reader
    depends on GLUE's column names and not on their order.
    ``labels`` maps each allowed label string to its class index; None means a float score.
    """

    text_a: str
    text_b: str | None
    label: str
    labels: dict[str, int] | None
    columns: tuple[str, ...] | None = None


_BINARY = {"0": 0, "1": 1}
# GLUE and Hugging Face number entailment as class 0.
_ENTAILMENT = {"entailment": 0, "not_entailment": 1}
_STSB_MIN, _STSB_MAX = 0.0, 5.0

_LAYOUTS: dict[str, _Layout] = {
    "sst2": _Layout("sentence", None, "label", _BINARY),
    "mrpc": _Layout("#1 String", "#2 String", "Quality", _BINARY),
    "rte": _Layout("sentence1", "sentence2", "label", _ENTAILMENT),
    "cola": _Layout("sentence", None, "label", _BINARY, columns=("source", "label", "mark", "sentence")),
    "stsb": _Layout("sentence1", "sentence2", "score", None),
    "wnli": _Layout("sentence1", "sentence2", "label", _BINARY),
    "qnli": _Layout("question", "sentence", "label", _ENTAILMENT),
}


def task_spec(name: str) -> TaskSpec:
    """Look a task up by its canonical name or its GLUE folder name, in any case ("SST-2", "sst2")."""
    spec = TASKS.get(name.lower().replace("-", ""))
    if spec is None:
        raise BebertError(f"Unknown GLUE task {name!r}; the known tasks are {', '.join(TASKS)}.")
    return spec


def resolve_glue_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """Find the folder that holds the GLUE task folders (SST-2/, MRPC/, ...).

    An explicit argument wins, then ``$BEBERT_GLUE_DIR`` (an empty value counts as unset), then
    the first ``shared/data/glue`` found walking up from this file: that finds the shared folder
    both inside a workspace and beside a clone (``<clone>/../shared/data/glue``) with no setup.
    """
    if data_dir is not None:
        path, origin = Path(data_dir).expanduser(), "The given GLUE folder"
    elif os.environ.get(ENV_VAR):
        path, origin = Path(os.environ[ENV_VAR]).expanduser(), f"The GLUE folder in ${ENV_VAR}"
    else:
        here = Path(__file__).resolve().parent
        candidates = (a / "shared" / "data" / "glue" for a in (here, *here.parents))
        found = next((p for p in candidates if p.is_dir()), None)
        if found is None:
            raise GlueDataError(
                f"No GLUE data folder was given and no shared/data/glue was found above {here}; "
                f"pass --glue-dir or set {ENV_VAR} to the folder that holds SST-2/, MRPC/ and the rest."
            )
        return found
    if not path.is_dir():
        raise GlueDataError(
            f"{origin}, {path}, does not exist or is not a directory; "
            f"pass --glue-dir or set {ENV_VAR} to the folder that holds SST-2/, MRPC/ and the rest."
        )
    return path


def load_split(task: str, split: str, data_dir: str | os.PathLike | None = None) -> list[GlueExample]:
    """Read every example of one task's split ("train" or "dev"), in file order."""
    spec = task_spec(task)
    if split not in spec.splits:
        raise GlueDataError(
            f"GLUE task {spec.name} has no {split!r} split in this project; "
            f"its splits are {', '.join(spec.splits)}."
        )
    path = resolve_glue_dir(data_dir) / spec.folder / f"{split}.tsv"
    if not path.is_file():
        raise GlueDataError(f"GLUE file {path} does not exist; the {spec.name} {split} split needs it.")
    return _read_examples(path, _LAYOUTS[spec.name])


def _read_examples(path: Path, layout: _Layout) -> list[GlueExample]:
    """Parse one task file strictly, raising on the first line that does not fit ``layout``.

    Lines are split on tabs only: some MRPC and QNLI fields hold unbalanced quotes, which a
    CSV reader would treat as the start of a quoted field and merge lines. ``utf-8-sig`` drops
    the byte-order mark MRPC starts with; reading in text mode turns Windows line ends into
    ``\\n``; the last line may lack its newline (CoLA dev does).
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise GlueDataError(f"GLUE file {path} is not UTF-8 text (bad byte at offset {exc.start}).") from exc
    except OSError as exc:
        raise GlueDataError(f"GLUE file {path} cannot be read ({exc.strerror}).") from exc
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()

    needed = [c for c in (layout.text_a, layout.text_b, layout.label) if c is not None]
    if layout.columns is None:
        if not lines:
            raise GlueDataError(f"{path}:1: the file is empty, but it should start with a header line.")
        columns, first_lineno, rows = lines[0].split("\t"), 2, lines[1:]
        missing = [c for c in needed if c not in columns]
        if missing:
            raise GlueDataError(
                f"{path}:1: the header line {lines[0]!r} lacks the column(s) "
                f"{', '.join(map(repr, missing))}."
            )
    else:
        columns, first_lineno, rows = list(layout.columns), 1, lines
    at = {name: columns.index(name) for name in needed}

    examples = []
    for lineno, line in enumerate(rows, start=first_lineno):
        fields = line.split("\t")
        if len(fields) != len(columns):
            raise GlueDataError(
                f"{path}:{lineno}: expected {len(columns)} tab-separated fields "
                f"({', '.join(columns)}) but found {len(fields)}."
            )
        text_a = fields[at[layout.text_a]]
        text_b = None if layout.text_b is None else fields[at[layout.text_b]]
        for column, value in ((layout.text_a, text_a), (layout.text_b, text_b)):
            if value is not None and not value.strip():
                raise GlueDataError(f"{path}:{lineno}: the {column!r} text is empty.")
        label = _parse_label(fields[at[layout.label]], layout, path, lineno)
        examples.append(GlueExample(text_a, text_b, label))
    if not examples:
        raise GlueDataError(f"GLUE file {path} holds no examples.")
    return examples


def _parse_label(raw: str, layout: _Layout, path: Path, lineno: int) -> int | float:
    """Turn a label field into a class index, or into an STS-B score checked to lie in 0..5."""
    if layout.labels is not None:
        if raw not in layout.labels:
            raise GlueDataError(
                f"{path}:{lineno}: the {layout.label!r} value {raw!r} is not one of "
                f"{', '.join(map(repr, layout.labels))}."
            )
        return layout.labels[raw]
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not _STSB_MIN <= value <= _STSB_MAX:  # also catches NaN and unparseable text
        raise GlueDataError(
            f"{path}:{lineno}: the {layout.label!r} value {raw!r} is not a number "
            f"from {_STSB_MIN:g} to {_STSB_MAX:g}."
        )
    return value


def compute_metrics(task: str, predictions, labels) -> dict[str, float]:
    """Score predictions (class indices, or scores for STS-B) with the task's GLUE metrics, in percent.

    MRPC reports F1 of the paraphrase class next to accuracy, and STS-B Spearman next to Pearson,
    as the GLUE leaderboard does. A constant STS-B prediction has no defined correlation and
    scores NaN (scipy warns), rather than a number that would look like a real result.
    """
    spec = task_spec(task)
    y_pred, y_true = np.asarray(predictions), np.asarray(labels)
    if y_pred.ndim != 1 or y_pred.shape != y_true.shape or y_pred.size == 0:
        raise BebertError(
            f"Cannot score {spec.name}: predictions and labels must be non-empty 1-D sequences "
            f"of the same length, but their shapes are {y_pred.shape} and {y_true.shape}."
        )
    if spec.is_regression:
        metrics = {
            "pearson": pearsonr(y_pred, y_true).statistic,
            "spearman": spearmanr(y_pred, y_true).statistic,
        }
    elif spec.primary_metric == "matthews":
        metrics = {"matthews": matthews_corrcoef(y_true, y_pred)}
    elif spec.primary_metric == "f1":
        metrics = {
            "f1": f1_score(y_true, y_pred, zero_division=0),
            "accuracy": accuracy_score(y_true, y_pred),
        }
    else:
        metrics = {"accuracy": accuracy_score(y_true, y_pred)}
    return {name: float(100 * value) for name, value in metrics.items()}


def distinct_answers(task: str, predictions) -> int:
    """How many different answers a model gave: classes predicted, or STS-B scores distinct at 1e-4.
    One answer on every row is a failed model, whatever its metric says."""
    values = np.asarray(predictions)
    if task_spec(task).is_regression:
        values = np.round(values.astype(np.float64), 4)
    return int(np.unique(values).size)


def score(task: str, predictions, labels) -> float:
    """The task's primary GLUE metric in percent: the one number used to compare runs."""
    return compute_metrics(task, predictions, labels)[task_spec(task).primary_metric]
