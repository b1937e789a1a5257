"""Tests for bebert.glue: the shared GLUE files read as SOURCES.md describes them, bad input is
refused with the file and line, and scores match values worked out by hand."""

import functools
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from bebert import glue
from bebert.errors import BebertError
from bebert.glue import (
    ENV_VAR,
    TASKS,
    GlueExample,
    compute_metrics,
    load_split,
    resolve_glue_dir,
    score,
    task_spec,
)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared GLUE folder, found the way the project finds it (no argument, no setup)."""
    return resolve_glue_dir()


@functools.cache
def _load(task: str, split: str, data_dir: Path) -> list[GlueExample]:
    return load_split(task, split, data_dir)


# Row and label counts from shared/data/glue/SOURCES.md (RTE/QNLI: entailment=0, not_entailment=1).
EXPECTED = [
    ("sst2", "train", 67_349, {1: 37_569, 0: 29_780}),
    ("sst2", "dev", 872, {1: 444, 0: 428}),
    ("mrpc", "train", 3_668, {1: 2_474, 0: 1_194}),
    ("mrpc", "dev", 408, {1: 279, 0: 129}),
    ("rte", "train", 2_490, {0: 1_249, 1: 1_241}),
    ("rte", "dev", 277, {0: 146, 1: 131}),
    ("cola", "train", 8_551, {1: 6_023, 0: 2_528}),
    ("cola", "dev", 1_043, {1: 721, 0: 322}),
    ("stsb", "train", 5_749, None),
    ("stsb", "dev", 1_500, None),
    ("qnli", "dev", 5_463, {0: 2_702, 1: 2_761}),
    ("wnli", "train", 635, {1: 312, 0: 323}),
    ("wnli", "dev", 71, {1: 31, 0: 40}),
]


def test_expected_table_covers_every_task_split():
    all_splits = {(name, split) for name, spec in TASKS.items() for split in spec.splits}
    assert {(task, split) for task, split, _, _ in EXPECTED} == all_splits


@pytest.mark.parametrize(
    "task,split,rows,label_counts", EXPECTED, ids=[f"{t}-{s}" for t, s, _, _ in EXPECTED]
)
def test_split_matches_sources(data_dir, task, split, rows, label_counts):
    examples = _load(task, split, data_dir)
    spec = task_spec(task)
    assert len(examples) == rows
    if label_counts is not None:
        assert dict(Counter(e.label for e in examples)) == label_counts
        assert all(type(e.label) is int for e in examples)
    assert all(e.text_a.strip() for e in examples)
    if spec.is_pair:
        assert all(e.text_b is not None and e.text_b.strip() for e in examples)
    else:
        assert all(e.text_b is None for e in examples)


@pytest.mark.parametrize("split", ["train", "dev"])
def test_stsb_scores_are_floats_from_0_to_5(data_dir, split):
    labels = [e.label for e in _load("stsb", split, data_dir)]
    assert all(type(x) is float and 0.0 <= x <= 5.0 for x in labels)
    assert min(labels) == 0.0 and max(labels) == 5.0


def test_first_examples_read_by_column_name(data_dir):
    mrpc = _load("mrpc", "train", data_dir)[0]
    assert mrpc.text_a.startswith("Amrozi accused his brother")
    assert "\ufeff" not in mrpc.text_a and mrpc.label == 1
    stsb = _load("stsb", "dev", data_dir)[0]
    assert stsb == GlueExample(
        "A man with a hard hat is dancing.", "A man wearing a hard hat is dancing.", 5.0
    )
    rte = _load("rte", "dev", data_dir)[0]
    assert rte.text_b == "Christopher Reeve had an accident." and rte.label == 1
    qnli = _load("qnli", "dev", data_dir)[0]
    assert qnli.text_a == "What came into force after the new constitution was herald?" and qnli.label == 0


def test_cola_dev_last_line_without_newline_is_read(data_dir):
    assert _load("cola", "dev", data_dir)[-1] == GlueExample("John talked to Bill about himself.", None, 1)


# --- task names -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,canonical",
    [
        ("SST-2", "sst2"), ("sst-2", "sst2"), ("sst2", "sst2"),
        ("STS-B", "stsb"), ("CoLA", "cola"), ("QNLI", "qnli"),
    ],
)
def test_task_spec_accepts_folder_and_canonical_spellings(name, canonical):
    assert task_spec(name).name == canonical


def test_task_specs():
    assert task_spec("stsb").num_labels == 1 and task_spec("stsb").is_regression
    assert task_spec("qnli").splits == ("dev",)
    assert {n: s.primary_metric for n, s in TASKS.items()} == {
        "sst2": "accuracy", "mrpc": "f1", "rte": "accuracy", "cola": "matthews",
        "stsb": "pearson", "wnli": "accuracy", "qnli": "accuracy",
    }


def test_unknown_task_lists_known_names():
    with pytest.raises(BebertError, match="'mnli'") as err:
        task_spec("mnli")
    assert all(name in str(err.value) for name in TASKS)


# --- finding the folder -----------------------------------------------------------------------


def test_explicit_argument_wins_over_env_var(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "b"))
    assert resolve_glue_dir(tmp_path / "a") == tmp_path / "a"
    assert resolve_glue_dir(str(tmp_path / "a")) == tmp_path / "a"


def test_env_var_is_used_without_argument(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    assert resolve_glue_dir() == tmp_path


def test_default_finds_shared_folder_beside_repository(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    found = resolve_glue_dir()
    assert found.parts[-3:] == ("shared", "data", "glue")
    assert (found / "SST-2" / "dev.tsv").is_file()


def test_default_walks_up_to_shared_beside_a_clone(tmp_path, monkeypatch):
    (tmp_path / "shared" / "data" / "glue").mkdir(parents=True)
    (tmp_path / "clone" / "bebert").mkdir(parents=True)
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setattr(glue, "__file__", str(tmp_path / "clone" / "bebert" / "glue.py"))
    assert resolve_glue_dir() == (tmp_path / "shared" / "data" / "glue").resolve()


def test_missing_folder_from_argument_or_env_var(tmp_path, monkeypatch):
    missing = tmp_path / "nowhere"
    with pytest.raises(BebertError, match="--glue-dir") as err:
        resolve_glue_dir(missing)
    assert str(missing) in str(err.value) and ENV_VAR in str(err.value)
    monkeypatch.setenv(ENV_VAR, str(missing))
    with pytest.raises(BebertError, match=f"\\${ENV_VAR}") as err:
        load_split("sst2", "dev")
    assert str(missing) in str(err.value)


def test_a_file_is_not_a_folder(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(BebertError, match="not a directory"):
        resolve_glue_dir(tmp_path / "f")


# --- bad files --------------------------------------------------------------------------------


def _write(root: Path, folder: str, split: str, text: str, encoding: str = "utf-8") -> Path:
    path = root / folder / f"{split}.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


def test_missing_split_file_is_named(tmp_path):
    _write(tmp_path, "SST-2", "train", "sentence\tlabel\ngood\t1\n")
    with pytest.raises(BebertError, match="does not exist") as err:
        load_split("sst2", "dev", tmp_path)
    assert str(tmp_path / "SST-2" / "dev.tsv") in str(err.value)


def test_qnli_has_no_train_split(data_dir):
    with pytest.raises(BebertError, match="qnli has no 'train' split"):
        load_split("qnli", "train", data_dir)


@pytest.mark.parametrize(
    "folder,task,text,lineno,problem",
    [
        ("SST-2", "sst2", "sentence\tlabel\ngood\t1\nbad\t0\textra\n", 3, "expected 2 tab-separated fields"),
        ("SST-2", "sst2", "sentence\tlabel\ngood\t1\n\nbad\t0\n", 3, "found 1"),
        ("SST-2", "sst2", "text\tlabel\ngood\t1\n", 1, "lacks the column(s) 'sentence'"),
        ("SST-2", "sst2", "good\t1\n", 1, "lacks the column(s) 'sentence', 'label'"),
        ("SST-2", "sst2", "", 1, "file is empty"),
        ("SST-2", "sst2", "sentence\tlabel\ngood\t1\n  \t0\n", 3, "'sentence' text is empty"),
        ("SST-2", "sst2", "sentence\tlabel\ngood\t2\n", 2, "'label' value '2' is not one of '0', '1'"),
        ("RTE", "rte", "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tcontradiction\n", 2, "'contradiction'"),
        ("RTE", "rte", "index\tsentence1\tsentence2\tlabel\n0\ta\t\tentailment\n", 2, "'sentence2' text is empty"),
        ("CoLA", "cola", "gj04\t1\t\tFine.\ngj04\t1\tFine.\n", 2, "expected 4 tab-separated fields"),
        ("CoLA", "cola", "source\tlabel\tmark\tsentence\ngj04\t1\t\tFine.\n", 1, "'label' value 'label'"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path, folder, task, text, lineno, problem):
    path = _write(tmp_path, folder, "train", text)
    with pytest.raises(BebertError) as err:
        load_split(task, "train", tmp_path)
    assert str(err.value).startswith(f"{path}:{lineno}: ")
    assert problem in str(err.value)


STSB_HEADER = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"


@pytest.mark.parametrize("bad", ["5.5", "-0.1", "nan", "high", ""])
def test_stsb_score_outside_0_to_5_is_refused(tmp_path, bad):
    path = _write(tmp_path, "STS-B", "dev", STSB_HEADER + f"0\tg\tf\ty\t0\tn\tn\tA.\tB.\t{bad}\n")
    with pytest.raises(BebertError, match="is not a number from 0 to 5") as err:
        load_split("stsb", "dev", tmp_path)
    assert str(err.value).startswith(f"{path}:2: ")


def test_header_only_file_holds_no_examples(tmp_path):
    path = _write(tmp_path, "SST-2", "train", "sentence\tlabel\n")
    with pytest.raises(BebertError, match="holds no examples") as err:
        load_split("sst2", "train", tmp_path)
    assert str(path) in str(err.value)


def test_non_utf8_file_is_refused(tmp_path):
    path = _write(tmp_path, "SST-2", "train", "sentence\tlabel\nna\xefve\t1\n", encoding="latin-1")
    with pytest.raises(BebertError, match="not UTF-8") as err:
        load_split("sst2", "train", tmp_path)
    assert str(path) in str(err.value)


def test_bom_crlf_quotes_and_reordered_columns_are_read(tmp_path):
    text = (
        "\ufeff#2 String\tQuality\t#1 ID\t#2 ID\t#1 String\r\n"
        'He said " hi .\t1\t1\t2\t" Hi , he said .\r\n'
    )
    _write(tmp_path, "MRPC", "train", text)
    assert load_split("mrpc", "train", tmp_path) == [GlueExample('" Hi , he said .', 'He said " hi .', 1)]


# --- metrics ----------------------------------------------------------------------------------

# labels  1 0 0 1 1
# preds   1 1 0 0 1  -> TP=2 (0,4), FP=1 (1), TN=1 (2), FN=1 (3)
LABELS = [1, 0, 0, 1, 1]
PREDS = [1, 1, 0, 0, 1]


def test_accuracy_tasks():
    for task in ("sst2", "rte", "qnli", "wnli"):
        assert compute_metrics(task, PREDS, LABELS) == {"accuracy": 60.0}


def test_mrpc_f1_and_accuracy():
    # precision = recall = 2/3, so F1 = 2/3
    metrics = compute_metrics("mrpc", PREDS, LABELS)
    assert metrics.keys() == {"f1", "accuracy"}
    assert metrics["f1"] == pytest.approx(200 / 3) and metrics["accuracy"] == pytest.approx(60.0)
    assert score("MRPC", PREDS, LABELS) == metrics["f1"]


def test_cola_matthews():
    # (TP*TN - FP*FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)) = (2 - 1) / sqrt(3*3*2*2) = 1/6
    assert compute_metrics("cola", PREDS, LABELS) == {"matthews": pytest.approx(100 / 6)}
    assert score("cola", [0, 1, 1, 0], [1, 0, 0, 1]) == pytest.approx(-100.0)


def test_stsb_pearson_and_spearman():
    # x - mean = (-1, 0, 1), y - mean = (-4/3, -1/3, 5/3): r = 3 / sqrt(2 * 14/3) = sqrt(27/28);
    # the ranks agree, so Spearman is 1.
    metrics = compute_metrics("stsb", [1.0, 2.0, 3.0], [1.0, 2.0, 4.0])
    assert metrics == {
        "pearson": pytest.approx(100 * math.sqrt(27 / 28)),
        "spearman": pytest.approx(100.0),
    }
    assert score("STS-B", [1.0, 2.0, 3.0], [1.0, 2.0, 4.0]) == metrics["pearson"]


def test_metric_values_are_plain_floats():
    for task in TASKS:
        values = compute_metrics(task, np.array(PREDS), np.array(LABELS)).values()
        assert all(type(v) is float for v in values)


@pytest.mark.parametrize("preds,labels", [([1, 0], [1, 0, 1]), ([], []), ([[0.1, 0.9]], [1])])
def test_metric_inputs_must_be_same_length_non_empty(preds, labels):
    with pytest.raises(BebertError, match="Cannot score sst2"):
        compute_metrics("sst2", preds, labels)
