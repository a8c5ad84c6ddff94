"""Occlusion explanations as a timeline, nearest patients and phenotype clusters."""

from __future__ import annotations

import meds
import numpy as np
import pandas as pd
import pytest

from predictions.ml.timeline.embeddings import PatientIndex, phenotype_clusters
from predictions.ml.timeline.events import Timelines
from predictions.ml.timeline.labels import outcome_subjects
from predictions.ml.timeline.serving import MAX_EXPLAINED_VISITS, embed_one


def _subject(events: pd.DataFrame, labels: pd.DataFrame, row: int):
    subject, when, _ = labels.iloc[row]
    return events[events["subject_id"] == subject], when


@pytest.mark.parametrize("family", ["count", "sequence"])
def test_each_driver_is_the_change_when_its_visit_is_removed(
    trained_gru, small_events, small_labels, family: str
) -> None:
    model = trained_gru.model
    if family == "sequence":  # serve the GRU itself, whatever the gate chose
        model = _sequence_model(trained_gru, small_events, small_labels)
    history, when = _subject(small_events, small_labels, 5)
    forecast = model.forecast(history, when)
    assert 0.0 <= forecast.probability <= 1.0
    times = [d["time"] for d in forecast.drivers]
    assert times == sorted(times)
    assert len(times) > 2
    for driver in forecast.drivers[-3:]:
        without = history[history["time"] != pd.Timestamp(driver["time"])]
        reduced = model.forecast(without, when, explain=False).probability
        assert driver["contribution"] == pytest.approx(forecast.probability - reduced, abs=1e-6)
        assert {e["code"] for e in driver["events"]} <= set(history["code"])
    low, high = forecast.risk_interval
    assert 0.0 <= low <= high <= 1.0
    # Birth is not a visit: it is never occluded nor drawn on the timeline as one.
    assert meds.birth_code in set(history["code"])
    assert all(e["code"] != meds.birth_code for d in forecast.drivers for e in d["events"])


def _sequence_model(result, events, labels):
    """The GRU refitted on all labels as a ForecastModel (what the gate would deploy)."""
    from predictions.ml.timeline.forecast import ForecastOptions, train_forecast

    options = ForecastOptions(
        cv=2, pretrain_epochs=1, finetune_epochs=1, max_len=48, dim=16, n_bootstrap=20,
        algorithms=["gru"], compress=True,
    )  # fmt: skip
    from predictions.ml.timeline import forecast as module

    original = module.select_models

    def prefer_sequence(entries, **kwargs):
        baseline, _, summary = original(entries, **kwargs)
        return baseline, next(e for e in entries if e["family"] == "sequence"), summary

    module.select_models = prefer_sequence
    try:
        trained = train_forecast(events, labels, options)
    finally:
        module.select_models = original
    assert trained.model.family == "sequence"
    assert trained.model.onnx is not None
    return trained.model


def test_nearest_patients_and_phenotypes(trained_gru, small_timelines: Timelines) -> None:
    embedder = trained_gru.model.embedder
    histories = small_timelines.full_histories()
    vectors = embedder.embed(small_timelines, histories)
    assert vectors.shape == (len(small_timelines.subjects), 32)
    index = PatientIndex(small_timelines.subjects, vectors)
    query = int(small_timelines.subjects[0])
    nearest = index.nearest(vectors[0], k=3, exclude=query)
    assert len(nearest) == 3
    assert query not in {n["subject_id"] for n in nearest}
    assert nearest[0]["similarity"] >= nearest[-1]["similarity"]
    assert index.nearest(vectors[0], k=1)[0] == {
        "subject_id": query,
        "similarity": pytest.approx(1.0),
    }
    events = small_timelines.events_frame(*small_timelines.subject_range(query))
    last = events["time"].max() + pd.Timedelta(seconds=1)
    np.testing.assert_allclose(embed_one(embedder, events, last), vectors[0], atol=1e-5)
    ckd = np.isin(small_timelines.subjects, outcome_subjects(small_timelines, ["ICD10/N18"]))
    result = phenotype_clusters(
        vectors, small_timelines.subjects, small_timelines, histories, n_clusters=3, outcomes=ckd
    )
    clusters = result["clusters"]
    assert sum(c["size"] for c in clusters) == len(vectors)
    assert sorted(s for c in clusters for s in c["subject_ids"]) == sorted(small_timelines.subjects)
    for cluster in clusters:
        assert 0.0 <= cluster["outcome_rate"] <= 1.0
        assert all(code["lift"] > 1.0 for code in cluster["defining_codes"])
    assert sum(c["outcome_rate"] * c["size"] for c in clusters) == pytest.approx(ckd.sum())


def test_forecast_accepts_timezone_aware_times(trained_gru, small_events, small_labels) -> None:
    """The app passes aware datetimes; MEDS stores naive UTC: both give the same forecast."""
    history, when = _subject(small_events, small_labels, 3)
    aware = history.assign(
        time=history["time"].dt.tz_localize("UTC").dt.tz_convert("Asia/Shanghai")
    )
    moment = pd.Timestamp(when).tz_localize("UTC").tz_convert("Asia/Shanghai")
    a = trained_gru.model.forecast(history, when)
    b = trained_gru.model.forecast(aware, moment.to_pydatetime())
    assert a.probability == b.probability
    assert [d["time"] for d in a.drivers] == [d["time"] for d in b.drivers]


def test_visits_before_the_last_twenty_are_occluded_as_one_block(
    trained_gru, small_events: pd.DataFrame
) -> None:
    timed = small_events.dropna(subset=["time"])
    subject = timed.groupby("subject_id")["time"].nunique().idxmax()
    history = small_events[small_events["subject_id"] == subject]
    birth = history["code"] == meds.birth_code
    visits = np.sort(history.loc[~birth, "time"].dropna().unique())
    assert len(visits) > MAX_EXPLAINED_VISITS
    when = visits[-1] + np.timedelta64(1, "s")
    forecast = trained_gru.model.forecast(history, when)
    block, *recent = forecast.drivers
    assert block["kind"] == "earlier_history"
    assert block["visits"] == len(visits) - MAX_EXPLAINED_VISITS
    assert [d["kind"] for d in recent] == ["visit"] * MAX_EXPLAINED_VISITS
    cut = visits[-MAX_EXPLAINED_VISITS]
    without = history[history["time"].isna() | birth | (history["time"] >= cut)]
    reduced = trained_gru.model.forecast(without, when, explain=False).probability
    assert block["contribution"] == pytest.approx(forecast.probability - reduced, abs=1e-9)
