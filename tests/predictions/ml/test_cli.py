"""The command-line contract: report.json shape, published results, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

REPO = Path(__file__).resolve().parents[3]  # the repository root

METRIC_KEYS = {"accuracy", "balanced_accuracy", "roc_auc", "roc_auc_ci", "brier", "ece", "log_loss"}


def run_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "predictions.ml", "evaluate", *map(str, args)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def check_report_shape(report: dict) -> None:
    assert set(report) >= {"dataset", "task", "classes", "cv", "models", "selected", "external"}
    assert {"rows", "columns", "cleaning"} <= set(report["dataset"])
    assert {"folds", "seed"} <= set(report["cv"])
    for model in report["models"]:
        assert {"name", "params", "metrics"} <= set(model)
        assert set(model["metrics"]) >= METRIC_KEYS
    assert set(report["selected"]["metrics"]) >= METRIC_KEYS


def test_heart_cleveland_reaches_published_results(heart_path: Path, tmp_path: Path) -> None:
    """10-fold CV, out-of-fold, selected model: AUC >= 0.90, accuracy >= 0.82, Brier < 0.14."""
    out = tmp_path / "heart"
    done = run_cli(
        "--data",
        heart_path,
        "--target",
        "target",
        "--positive",
        "1",
        "2",
        "3",
        "4",
        "--cv",
        "10",
        "--algorithms",
        "logistic_regression",
        "rules_baseline",
        "--out",
        out,
    )
    assert done.returncode == 0, done.stderr
    print(done.stdout)
    report = json.loads((out / "report.json").read_text())
    check_report_shape(report)
    m = report["selected"]["metrics"]
    print(
        f"heart: selected {report['selected']['name']} acc {m['accuracy']:.3f} "
        f"AUC {m['roc_auc']:.3f} {m['roc_auc_ci']} Brier {m['brier']:.3f}"
    )
    assert report["cv"]["folds"] == 10
    assert report["task"] == "binary"
    assert report["dataset"]["rows"] == 303
    assert m["roc_auc"] >= 0.90
    assert m["accuracy"] >= 0.82
    assert m["brier"] < 0.14
    assert m["brier"] < m["brier_baseline"]
    assert set(m["subgroups"]) == {"sex", "age_band"}
    for plot in ("roc.svg", "calibration.svg", "confusion_matrix.svg"):
        assert (out / plot).read_text().lstrip().startswith("<?xml")
    assert (out / "model.joblib").stat().st_size == report["artifact"]["size_bytes"]


def test_breast_cancer_through_the_cli_with_external_file(tmp_path: Path) -> None:
    """sklearn's WDBC written to CSV: accuracy >= 0.97, ROC AUC >= 0.99 (published 97.5 %)."""
    data = load_breast_cancer(as_frame=True)
    frame = data.frame.rename(columns={"target": "diagnosis"})
    frame["diagnosis"] = frame["diagnosis"].map({0: "malignant", 1: "benign"})
    path = tmp_path / "wdbc.csv"
    frame.to_csv(path, index=False)
    external = tmp_path / "external.csv"
    frame.sample(100, random_state=1).to_csv(external, index=False)
    out = tmp_path / "bc"
    done = run_cli(
        "--data",
        path,
        "--target",
        "diagnosis",
        "--cv",
        "10",
        "--algorithms",
        "logistic_regression",
        "--external",
        external,
        "--out",
        out,
    )
    assert done.returncode == 0, done.stderr
    print(done.stdout)
    report = json.loads((out / "report.json").read_text())
    check_report_shape(report)
    m = report["selected"]["metrics"]
    print(f"breast cancer: acc {m['accuracy']:.3f} AUC {m['roc_auc']:.3f} Brier {m['brier']:.3f}")
    assert m["accuracy"] >= 0.97
    assert m["roc_auc"] >= 0.99
    assert report["external"][0]["rows"] == 100
    assert set(report["external"][0]["metrics"]) >= METRIC_KEYS


def test_all_six_algorithms_run_on_a_small_dataset(tmp_path: Path, make_frame) -> None:
    path = tmp_path / "small.csv"
    make_frame(n=160, seed=5).to_csv(path, index=False)
    out = tmp_path / "six"
    done = run_cli(
        "--data", path, "--target", "label", "--group", "patient_id", "--cv", "3", "--out", out
    )
    assert done.returncode == 0, done.stderr
    print(done.stdout)
    report = json.loads((out / "report.json").read_text())
    check_report_shape(report)
    assert [m["name"] for m in report["models"]] == [
        "rules_baseline",
        "logistic_regression",
        "svm",
        "decision_tree",
        "gradient_boosting",
        "mlp",
    ]
    baseline = report["models"][0]["metrics"]["roc_auc"]
    assert report["selected"]["metrics"]["roc_auc"] > baseline
    assert report["cv"]["grouped_by"] == "patient_id"


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "data file not found"),
        ("empty", "data file is empty"),
        ("unknown_target", "target column 'nope' not found"),
        ("one_class", "one class"),
    ],
)
def test_bad_input_gives_one_line_error_and_exit_code_2(
    tmp_path: Path, case: str, message: str
) -> None:
    path = tmp_path / "data.csv"
    target = "y"
    if case == "empty":
        path.write_text("")
    elif case == "unknown_target":
        pd.DataFrame({"x": [1, 2, 3, 4], "y": [0, 1, 0, 1]}).to_csv(path, index=False)
        target = "nope"
    elif case == "one_class":
        pd.DataFrame({"x": [1, 2, 3, 4], "y": [1, 1, 1, 1]}).to_csv(path, index=False)
    done = run_cli("--data", path, "--target", target, "--out", tmp_path / "out")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: ")
    assert message in lines[0]
