"""Gating: a sequence model is selected only when it beats the baseline beyond CI overlap."""

from __future__ import annotations

import pytest

from predictions.ml.errors import DataError
from predictions.ml.timeline.forecast import choose_algorithms, select_models


def _entry(name: str, family: str, auc: float, ci: tuple[float, float], log_loss: float) -> dict:
    return {
        "name": name,
        "family": family,
        "metrics": {"roc_auc": auc, "roc_auc_ci": list(ci), "log_loss": log_loss},
    }


BASELINES = [
    _entry("count_logistic_regression", "count", 0.80, (0.76, 0.84), 0.30),
    _entry("count_gradient_boosting", "count", 0.82, (0.78, 0.85), 0.28),
]


def test_sequence_model_beyond_ci_overlap_is_selected() -> None:
    gru = _entry("gru", "sequence", 0.90, (0.86, 0.93), 0.20)
    baseline, selected, summary = select_models([*BASELINES, gru])
    assert baseline["name"] == "count_gradient_boosting"  # lowest log loss among count models
    assert selected["name"] == "gru"
    assert summary["sequence_beats_baseline"] is True
    assert "0.860 > baseline upper bound 0.850" in summary["reason"]


def test_overlapping_cis_keep_the_baseline_and_say_so() -> None:
    # Better point estimate and log loss, but the CIs overlap: not enough evidence.
    lstm = _entry("lstm", "sequence", 0.86, (0.84, 0.89), 0.25)
    transformer = _entry("transformer", "sequence", 0.84, (0.80, 0.88), 0.27)
    baseline, selected, summary = select_models([*BASELINES, lstm, transformer])
    assert selected is baseline
    assert summary["sequence_beats_baseline"] is False
    assert summary["best_sequence_model"] == "lstm"
    assert summary["reason"].endswith("the baseline is selected")


def test_a_baseline_is_always_trained() -> None:
    count, sequence, added = choose_algorithms(["gru", "tcn"])
    assert count == ["count_logistic_regression"]
    assert sequence == ["gru", "tcn"]
    assert added
    assert choose_algorithms(None)[0] == ["count_logistic_regression", "count_gradient_boosting"]
    with pytest.raises(DataError, match="unknown forecast algorithm 'rnn'"):
        choose_algorithms(["rnn"])


def test_report_metrics_carry_cis_calibration_and_subgroups(trained_gru) -> None:
    report = trained_gru.report
    for model in report["models"]:
        metrics = model["metrics"]
        assert {"roc_auc_ci", "ece", "calibration_curve", "brier", "pr_auc"} <= set(metrics)
        assert set(metrics["subgroups"]) == {"sex", "age_band"}
        assert set(metrics["subgroups"]["sex"]) <= {"f", "m"}
    assert report["selected"]["selection"]["rule"].startswith("a sequence model is selected only")
    assert report["embeddings"]["from"] == "gru"
