"""Fixtures for the timeline engine tests: small synthetic MEDS populations, no database."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from predictions.ml.timeline.events import Timelines, read_events
from predictions.ml.timeline.forecast import ForecastOptions, ForecastResult, train_forecast
from predictions.ml.timeline.labels import TaskDefinition, build_labels
from predictions.ml.timeline.synthetic import TASK_CODES, generate_events

# Tiny and fast: the heavy runs are benchmarks (tests/bench/bench_timeline.py).
TINY = ForecastOptions(
    cv=2, seed=0, pretrain_epochs=1, finetune_epochs=1, max_len=48, dim=16, n_bootstrap=20
)


def ckd_task() -> TaskDefinition:
    # No minimum history: the tiny cohorts here are too small to ask for a year of it (160
    # subjects would leave 12 positive labels, and a 2-fold run's folds one class). The
    # minimum itself is tested in test_timeline_labels.py.
    return TaskDefinition(
        "ckd", TASK_CODES["ckd"], horizon_days=1095, min_history_days=0, per_subject=2
    )


@pytest.fixture(scope="session")
def small_events() -> pd.DataFrame:
    return read_events(generate_events(160, seed=3))


@pytest.fixture(scope="session")
def small_timelines(small_events: pd.DataFrame) -> Timelines:
    return Timelines.from_frame(small_events)


@pytest.fixture(scope="session")
def small_labels(small_timelines: Timelines) -> pd.DataFrame:
    return build_labels(small_timelines, ckd_task(), seed=0)


@pytest.fixture(scope="session")
def trained_gru(small_events: pd.DataFrame, small_labels: pd.DataFrame) -> ForecastResult:
    """A tiny run with the count baseline and a GRU (pretrained one epoch)."""
    options = ForecastOptions(
        **{**TINY.__dict__, "algorithms": ["count_logistic_regression", "gru"]}
    )
    return train_forecast(small_events, small_labels, options)


@pytest.fixture(scope="session")
def tiny_options() -> ForecastOptions:
    return TINY


@pytest.fixture(scope="session")
def plant_future() -> Callable[[pd.DataFrame, pd.DataFrame], pd.DataFrame]:
    return planted_future


def planted_future(events: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """``events`` plus, for every labelled subject, the outcome code, a lab value and new codes
    at and after its latest prediction time (a model that saw any of them would change)."""
    rows = []
    latest = labels.groupby("subject_id")["prediction_time"].max()
    for subject, when in latest.items():
        for delay, code, value in (
            (np.timedelta64(0, "us"), "LEAK/AT_PREDICTION_TIME", 999.0),
            (np.timedelta64(1, "D"), "ICD10/N18.3", np.nan),
            (np.timedelta64(30, "D"), "LEAK/FUTURE", 123.0),
            (np.timedelta64(30, "D"), "LOINC/33914-3", 5.0),
        ):
            rows.append((subject, np.datetime64(when, "us") + delay, code, value, None))
    extra = pd.DataFrame(rows, columns=events.columns)
    return read_events(pd.concat([events, extra], ignore_index=True))
