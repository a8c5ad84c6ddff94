"""The nightly forecast job fine-tunes incrementally from the weights the monthly job kept."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from predictions.forecasting import forecast_model
from predictions.models import PredictionTask, TrainingJob
from predictions.services.training import training_job_execute

SLUG = "diabetes-forecast"


@pytest.fixture
def followed(db, team_a, doctor_a):
    from visits.demo import generate_population
    from visits.demo_import import population_import

    return population_import(
        population=generate_population(n_visits=30, seed=11, longitudinal_patients=260),
        teams=[team_a],
        attendings=[doctor_a],
    )


@pytest.fixture
def gru_champion(followed, settings, monkeypatch):
    """A monthly (full) job whose GRU serves.

    The tiny cohort cannot make a GRU beat the count baseline beyond CI overlap (that gate is
    pinned in tests/predictions/ml/timeline/test_timeline_selection.py), so selection is told to
    take the sequence model here.
    """
    from predictions.ml.timeline import forecast

    settings.MEDAI_FORECAST_ALGORITHMS = ["count_logistic_regression", "gru"]
    settings.MEDAI_FORECAST_CV_FOLDS = 2
    task = PredictionTask.objects.get(slug=SLUG)
    PredictionTask.objects.filter(pk=task.pk).update(
        config={
            **task.config,
            "pretrain_epochs": 1,
            "finetune_epochs": 2,
            "nightly_epochs": 2,
            "dim": 16,
            "compress": False,
        }
    )
    original = forecast.select_models

    def take_the_gru(entries, *, baseline_added=False):
        baseline, _, summary = original(entries, baseline_added=baseline_added)
        return baseline, next(e for e in entries if e["name"] == "gru"), summary

    monkeypatch.setattr(forecast, "select_models", take_the_gru)
    job = _run(TrainingJob.Trigger.MONTHLY)
    assert job.status == TrainingJob.Status.SUCCEEDED, job.error
    monkeypatch.setattr(forecast, "select_models", original)
    version = PredictionTask.objects.get(slug=SLUG).active_version
    assert version is not None
    assert version.algorithm == "gru"
    return version


def _run(trigger: str) -> TrainingJob:
    job = TrainingJob.objects.create(task=PredictionTask.objects.get(slug=SLUG), trigger=trigger)
    return training_job_execute(job_id=job.pk)


def _add_codes(monkeypatch, n_codes: int) -> None:
    """The record starts using ``n_codes`` new codes (every patient, after their first visit)."""
    from predictions.ml.timeline import events as engine_events

    original = engine_events.read_events

    def with_new_codes(source, *args, **kwargs):
        frame = original(source, *args, **kwargs)
        first = frame[frame["time"].notna()].groupby("subject_id")["time"].min()
        rows = [
            (subject, when + np.timedelta64(1, "D"), f"LOINC/NEW-{i}", np.nan, None)
            for subject, when in first.items()
            for i in range(n_codes)
        ]
        extra = pd.DataFrame(rows, columns=frame.columns)
        return original(pd.concat([frame, extra], ignore_index=True))

    monkeypatch.setattr(engine_events, "read_events", with_new_codes)


def test_the_nightly_job_fine_tunes_from_the_kept_weights(gru_champion):
    monthly = forecast_model(gru_champion)
    assert monthly.weights is not None
    pretrained = monthly.weights.pretrained["gru"]
    champion = monthly.weights.finetuned
    assert champion is not None
    assert champion.parent == pretrained.checksum
    assert gru_champion.report["weights"]["pretrained"]["gru"]["checksum"] == pretrained.checksum

    nightly = _run(TrainingJob.Trigger.SCHEDULE)
    assert nightly.status == TrainingJob.Status.SUCCEEDED, nightly.error
    report = nightly.model_version.report
    assert nightly.snapshot["mode"] == "finetune"
    assert report["path"] == "incremental"
    log = report["incremental"]
    # It started from the champion's saved fine-tuned weights, below the monthly encoder.
    assert log["pretrained_checksum"] == pretrained.checksum
    assert log["start"] == "finetuned"
    assert log["start_checksum"] == champion.checksum
    assert log["vocabulary"]["path"] == "unchanged"
    assert log["finetune"]["epochs"] <= 2
    # The new artifact carries the monthly encoder forward unchanged, tensor for tensor.
    refit = forecast_model(nightly.model_version)
    kept = refit.weights.pretrained["gru"]
    np.testing.assert_array_equal(
        kept.state["body.weight_ih_l0"], pretrained.state["body.weight_ih_l0"]
    )
    assert refit.weights.finetuned.parent == pretrained.checksum
    # Through the same gate as every other challenger, with risk intervals from held-out patients.
    assert nightly.model_version.comparison["champion"]
    assert refit.risk_bins


def test_new_codes_extend_the_embedding_table_and_too_many_refit_in_full(gru_champion, monkeypatch):
    pretrained = forecast_model(gru_champion).weights.pretrained["gru"]
    _add_codes(monkeypatch, 2)
    extended = _run(TrainingJob.Trigger.SCHEDULE)
    assert extended.status == TrainingJob.Status.SUCCEEDED, extended.error
    log = extended.model_version.report["incremental"]
    assert log["vocabulary"]["path"] == "extended"
    # The two new codes, and whatever else the night's own corpus brought in (its histories end
    # at the labels' prediction times, which the new events move: another code may cross in;
    # seen once in CI): the log counts exactly what the vocabulary gained.
    added = set(forecast_model(extended.model_version).token_encoder.vocabulary) - set(
        pretrained.encoder.vocabulary
    )
    assert {"LOINC/NEW-0", "LOINC/NEW-1"} <= added
    assert log["vocabulary"]["new_codes"] == len(added)
    assert log["vocabulary"]["size_after"] == pretrained.encoder.vocabulary_size + len(added)

    _add_codes(monkeypatch, len(pretrained.encoder.vocabulary))  # doubles the vocabulary
    full = _run(TrainingJob.Trigger.SCHEDULE)
    assert full.status == TrainingJob.Status.SUCCEEDED, full.error
    report = full.model_version.report
    assert full.snapshot["mode"] == "full"
    assert report["path"] == "full refit"
    assert "new codes" in report["why"]
    assert "a full refit is needed" in report["why"]
    assert "pretraining" in report  # pretrained afresh on the new vocabulary


def test_a_served_count_baseline_is_refitted_and_the_record_says_so(followed, settings):
    settings.MEDAI_FORECAST_ALGORITHMS = ["count_logistic_regression"]
    settings.MEDAI_FORECAST_CV_FOLDS = 2
    assert _run(TrainingJob.Trigger.ADMIN).status == TrainingJob.Status.SUCCEEDED
    nightly = _run(TrainingJob.Trigger.SCHEDULE)
    assert nightly.status == TrainingJob.Status.SUCCEEDED, nightly.error
    report = nightly.model_version.report
    assert report["path"] == "baseline refit"
    assert "count baseline" in report["why"]
    assert "from scratch" in report["why"]
