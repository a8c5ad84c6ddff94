"""The forecast command-line contract (DESIGN.md): report.json shape and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from predictions.ml.timeline.artifacts import load_forecast_model
from predictions.ml.timeline.events import write_events, write_labels

REPO = Path(__file__).resolve().parents[4]


def run_forecast(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "predictions.ml", "forecast", *map(str, args)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.fixture(scope="module")
def meds_files(tmp_path_factory, small_events: pd.DataFrame, small_labels: pd.DataFrame) -> dict:
    folder = tmp_path_factory.mktemp("meds")
    small_events.to_csv(folder / "events.csv", index=False)
    return {
        "events_csv": folder / "events.csv",
        "events": write_events(small_events, folder / "events.parquet"),
        "labels": write_labels(small_labels, folder / "labels.parquet"),
        "folder": folder,
    }


def test_report_json_follows_the_contract(meds_files: dict, tmp_path: Path) -> None:
    out = tmp_path / "report"
    done = run_forecast(
        "--events", meds_files["events_csv"], "--labels", meds_files["labels"],
        "--cv", "2", "--seed", "3", "--algorithms", "gru", "count_gradient_boosting",
        "--pretrain-epochs", "1", "--finetune-epochs", "1", "--out", out,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "report.json").read_text())
    assert {"selected", "baseline", "models", "cv", "dataset"} <= set(report)
    assert {"roc_auc", "roc_auc_ci", "pr_auc", "brier", "ece"} <= set(report["selected"]["metrics"])
    assert len(report["selected"]["metrics"]["roc_auc_ci"]) == 2
    assert {"roc_auc", "pr_auc", "brier"} <= set(report["baseline"]["metrics"])
    assert report["baseline"]["name"] == "count_gradient_boosting"
    assert [m["name"] for m in report["models"]] == ["count_gradient_boosting", "gru"]
    assert report["cv"]["folds"] == 2
    assert report["cv"]["seed"] == 3
    assert report["dataset"] == {**report["dataset"], "subjects": 160}
    assert {"subjects", "events", "labels"} <= set(report["dataset"])
    assert report["pretraining"]["per_model"]["gru"]["epochs"] == 1
    assert report["compression"][0]["model"] == "gru"
    # The selection says why; on 160 patients no sequence model clears the CI gate.
    assert report["selected"]["name"] == "count_gradient_boosting"
    assert "baseline is selected" in report["selected"]["selection"]["reason"]
    assert "selected: count_gradient_boosting" in done.stdout
    artifact = report["artifact"]
    model = load_forecast_model(artifact["path"], artifact["sha256"])
    assert model.name == "count_gradient_boosting"


def test_unknown_vocabulary_codes_are_accepted(
    meds_files: dict, small_events, tmp_path: Path
) -> None:
    """Any code vocabulary: rename every code into made-up namespaces."""
    renamed = small_events.assign(
        code=small_events["code"].str.replace("LOINC/", "LOCAL-LAB:").str.replace("ICD10/", "DX#")
    )
    events = write_events(renamed, tmp_path / "events.parquet")
    labels = pd.read_parquet(meds_files["labels"])
    write_labels(labels, tmp_path / "labels.parquet")
    done = run_forecast(
        "--events", events, "--labels", tmp_path / "labels.parquet", "--cv", "2",
        "--algorithms", "count_logistic_regression", "--out", tmp_path / "out",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["selected"]["metrics"]["roc_auc"] > 0.6


def _one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_missing_columns_give_one_line(meds_files: dict, small_events, tmp_path: Path) -> None:
    small_events.drop(columns=["code"]).to_csv(tmp_path / "events.csv", index=False)
    line = _one_line_error(
        run_forecast("--events", tmp_path / "events.csv", "--labels", meds_files["labels"])
    )
    assert (
        line
        == "error: events lack the MEDS column code (have: subject_id, time, numeric_value, text_value)"
    )
    (tmp_path / "labels.csv").write_text("subject_id,boolean_value\n1,true\n")
    line = _one_line_error(
        run_forecast("--events", meds_files["events"], "--labels", tmp_path / "labels.csv")
    )
    assert line.startswith("error: labels lack the MEDS column prediction_time")


def test_labels_of_subjects_without_events_give_one_line(meds_files: dict, tmp_path: Path) -> None:
    (tmp_path / "labels.csv").write_text(
        "subject_id,prediction_time,boolean_value\n1,2016-01-01,true\n99999,2016-01-01,false\n"
    )
    line = _one_line_error(
        run_forecast("--events", meds_files["events"], "--labels", tmp_path / "labels.csv")
    )
    assert line == "error: 1 labels belong to 1 subjects with no events (e.g. subject_id 99999)"


def test_prediction_time_before_any_event_gives_one_line(meds_files: dict, tmp_path: Path) -> None:
    (tmp_path / "labels.csv").write_text(
        "subject_id,prediction_time,boolean_value\n1,1900-01-01,true\n2,2020-01-01,false\n"
    )
    line = _one_line_error(
        run_forecast("--events", meds_files["events"], "--labels", tmp_path / "labels.csv")
    )
    assert "prediction_time at or before the subject's first event (e.g. subject_id 1" in line


def test_missing_file_and_wrong_suffix_give_one_line(meds_files: dict, tmp_path: Path) -> None:
    line = _one_line_error(
        run_forecast("--events", tmp_path / "none.parquet", "--labels", meds_files["labels"])
    )
    assert line == f"error: events file not found: {tmp_path / 'none.parquet'}"
    (tmp_path / "events.json").write_text("{}")
    line = _one_line_error(
        run_forecast("--events", tmp_path / "events.json", "--labels", meds_files["labels"])
    )
    assert line.endswith("must be .parquet or .csv")


def test_too_few_outcomes_for_the_folds_give_one_line(
    meds_files: dict, small_labels, tmp_path: Path
) -> None:
    labels = small_labels.copy()
    positive = labels.index[labels["boolean_value"]]
    labels.loc[positive[4:], "boolean_value"] = False  # four positive labels left
    write_labels(labels, tmp_path / "labels.parquet")
    line = _one_line_error(
        run_forecast(
            "--events", meds_files["events"], "--labels", tmp_path / "labels.parquet", "--cv", "2"
        )
    )
    assert line == (
        "error: only 4 labels are true: 2-fold cross-validation needs at least 6 of each outcome "
        "(3 per fold)"
    )
