"""Only events strictly before prediction_time are visible: a planted future is invisible to every
model (count baseline, GRU, LSTM, temporal CNN, transformer) and to the served forecast."""

from __future__ import annotations

import numpy as np
import pandas as pd

from predictions.ml.timeline.baseline import CountFeaturizer
from predictions.ml.timeline.events import Timelines
from predictions.ml.timeline.forecast import (
    COUNT_MODELS,
    SEQUENCE_MODELS,
    ForecastOptions,
    pretraining_corpus,
    train_forecast,
)
from predictions.ml.timeline.tokens import TokenEncoder


def _histories(timelines: Timelines, labels: pd.DataFrame):
    return timelines.histories(
        labels["subject_id"].to_numpy(), labels["prediction_time"].to_numpy()
    )


def test_features_and_tokens_ignore_planted_future_events(
    small_events: pd.DataFrame, small_labels: pd.DataFrame, plant_future
) -> None:
    clean = Timelines.from_frame(small_events)
    leaky = Timelines.from_frame(plant_future(small_events, small_labels))
    assert leaky.n_events == clean.n_events + 4 * small_labels["subject_id"].nunique()
    h_clean, h_leaky = _histories(clean, small_labels), _histories(leaky, small_labels)
    counts = CountFeaturizer().fit(leaky, h_leaky)
    assert not any("LEAK" in name for name in counts.names)
    np.testing.assert_array_equal(
        counts.transform(clean, h_clean), counts.transform(leaky, h_leaky)
    )
    encoder = TokenEncoder(max_len=64).fit(leaky, pretraining_corpus(leaky, small_labels))
    assert not any(code.startswith("LEAK") for code in encoder.vocabulary)
    for a, b in zip(encoder.encode(clean, h_clean), encoder.encode(leaky, h_leaky), strict=True):
        np.testing.assert_array_equal(a, b)


def test_every_model_gives_identical_predictions_with_a_planted_future(
    small_events: pd.DataFrame, small_labels: pd.DataFrame, plant_future, tiny_options
) -> None:
    """Train everything twice (seeded): out-of-fold predictions are bit-identical."""
    options = ForecastOptions(
        **{**tiny_options.__dict__, "compress": False, "max_len": 32, "dim": 8}
    )
    clean = train_forecast(small_events, small_labels, options)
    leaky = train_forecast(plant_future(small_events, small_labels), small_labels, options)
    assert set(clean.out_of_fold) == {*COUNT_MODELS, *SEQUENCE_MODELS}
    for name, predictions in clean.out_of_fold.items():
        np.testing.assert_array_equal(predictions, leaky.out_of_fold[name], err_msg=name)
    assert clean.report["dataset"]["visible_events"] == leaky.report["dataset"]["visible_events"]
    assert leaky.report["dataset"]["events"] > clean.report["dataset"]["events"]


def test_served_forecast_ignores_events_at_or_after_the_prediction_time(
    trained_gru, small_events: pd.DataFrame, small_labels: pd.DataFrame, plant_future
) -> None:
    subject = int(small_labels["subject_id"].iloc[0])
    when = small_labels[small_labels["subject_id"] == subject]["prediction_time"].max()
    history = small_events[small_events["subject_id"] == subject]
    leaky = plant_future(small_events, small_labels[small_labels["subject_id"] == subject])
    leaky_history = leaky[leaky["subject_id"] == subject]
    assert len(leaky_history) == len(history) + 4
    model = trained_gru.model
    a, b = model.forecast(history, when), model.forecast(leaky_history, when)
    assert a.probability == b.probability
    assert [d["time"] for d in a.drivers] == [d["time"] for d in b.drivers]
    assert all(d["time"] < pd.Timestamp(when).isoformat() for d in b.drivers)
