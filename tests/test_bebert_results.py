"""scripts/bebert_results.py keeps what its report reads of every finished run in an archive in git, and
reads it back when the run folders are gone (a later session), without retraining a finished run."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bebert_results.py"


@pytest.fixture(scope="module")
def results_script():
    spec = importlib.util.spec_from_file_location("bebert_results", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_archive_keeps_the_small_records_and_serves_them_back(results_script, tmp_path, glue_dir):
    root, archive = tmp_path / "runs", tmp_path / "archive"
    runs = results_script.Runs(root, glue_dir, archive)
    base = runs.base_dir("rte", "w1e1a4")
    member = runs.ensemble_dir("rte", "w1e1a4-adaboost2") / "members" / "0"
    for path, text in ((base / "results.json", '{"run": "base"}'), (base / "student" / "stages.json", "[]"),
                       (base / "student" / "model.pt", "weights"), (member / "stages.json", '[{"selected_step": 0}]'),
                       (member.parent.parent / "results.json", '{"run": "ensemble"}')):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    runs.save_archive()
    kept = sorted(str(p.relative_to(archive)) for p in archive.rglob("*") if p.is_file())
    assert kept == ["bebert/rte-w1e1a4-adaboost2/members/0/stages.json", "bebert/rte-w1e1a4-adaboost2/results.json",
                    "foundation/rte-w1e1a4/results.json"]  # no model, no single model's own stages file

    later = results_script.Runs(tmp_path / "fresh-runs", glue_dir, archive)  # the run folders are gone
    assert later.result(later.base_dir("rte", "w1e1a4")) == {"run": "base"}
    assert later.result_json(later.ensemble_dir("rte", "w1e1a4-adaboost2") / "members" / "0" / "stages.json") \
        == [{"selected_step": 0}]
    assert later.result(later.base_dir("mrpc", "w1e1a4")) is None
    # A finished run is not trained again when only its results are needed ...
    assert later.run_base("rte", "w1e1a4") == {"run": "base"}
    assert later.run_ensemble("rte", "w1e1a4-adaboost2", "w1e1a4", None) == {"run": "ensemble"}


def test_report_renders_from_nothing(results_script, tmp_path, glue_dir):
    runs = results_script.Runs(tmp_path / "runs", glue_dir, tmp_path / "archive")
    text = results_script.render(runs, results_script.REPORT_PARTS, results_script.TASKS, glue_dir, 0.0)
    assert "| stsb | pearson | - |" in text and "member 1 alone" in text
    assert "| BEBERT 1-1-4 x2 over the single 1-1-4 model | - | 2.20 |" in text  # ours not run, the paper's


def test_only_chooses_the_jobs_a_session_runs(results_script, tmp_path, glue_dir):
    """--only keeps the jobs whose description holds one of its strings, in their order; nothing runs."""
    runs = results_script.Runs(tmp_path / "runs", glue_dir, tmp_path / "archive")
    every = [d for d, _ in results_script.jobs(["glue"], ["mrpc", "cola"], runs)]
    chosen = [d for d, _ in results_script.jobs(["glue"], ["mrpc", "cola"], runs, ["1-1-4 single", "BEBERT 1-1-4 x2"])]
    assert chosen == ["mrpc 1-1-4 single", "mrpc BEBERT 1-1-4 x2", "cola 1-1-4 single", "cola BEBERT 1-1-4 x2"]
    assert len(every) == 12 and set(chosen) < set(every)
    assert not list(results_script.jobs(["glue"], ["mrpc"], runs, ["no such cell"]))
    assert not (tmp_path / "runs").exists()
