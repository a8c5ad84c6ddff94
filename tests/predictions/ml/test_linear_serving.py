"""The numpy fast path of one-row serving (predictions/ml/linear_serving.py) answers exactly what
scikit-learn's predictor and the dense explainer answer, on many random valid inputs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from predictions.ml.dataset import shipped_plausible_ranges
from predictions.ml.linear_serving import LinearServing
from predictions.ml.pipeline import ModelSpec, TrainedModel, train

TOLERANCE = 1e-9
WORDS = [
    "chest",
    "pain",
    "shortness",
    "of",
    "breath",
    "routine",
    "check",
    "no",
    "complaints",
    "fever",
    "cough",
    "since",
    "days",
]


def _model(make_frame, classes: int) -> TrainedModel:
    frame = make_frame(n=300, seed=3, classes=classes)
    spec = ModelSpec(
        target="label",
        group="patient_id",
        text=["chief_complaint"],
        plausible=shipped_plausible_ranges(),
    )
    return train(
        frame, spec, algorithms=("logistic_regression",), cv=2, seed=0, n_bootstrap=10
    ).model


@pytest.fixture(scope="module", params=[2, 4], ids=["binary", "multiclass"])
def model(request, make_frame) -> TrainedModel:
    return _model(make_frame, request.param)


def random_records(n: int, seed: int) -> list[dict]:
    """Valid inputs of every shape: missing values, unseen levels, empty and unknown words,
    values far outside the training range (which abstain but still score)."""
    rng = np.random.default_rng(seed)
    records = []
    for _ in range(n):
        words = rng.choice([*WORDS, "zzz", "ünknown"], size=rng.integers(0, 9))
        records.append(
            {
                "patient_id": "",
                "age": None if rng.random() < 0.1 else float(rng.uniform(0, 110)),
                "sex": rng.choice(["male", "female", "other", None]),
                "visit_type": rng.choice(["emergency", "outpatient", "inpatient", "telemedicine"]),
                "obs_8867-4": None if rng.random() < 0.2 else float(rng.uniform(30, 220)),
                "obs_8310-5": None if rng.random() < 0.2 else float(rng.uniform(33, 42)),
                "chief_complaint": " ".join(words),
            }
        )
    return records


def test_the_fast_path_serves_a_logistic_regression(model: TrainedModel) -> None:
    assert isinstance(model.explainer.linear_serving, LinearServing)


def test_fast_and_sklearn_paths_agree_on_many_random_inputs(model: TrainedModel) -> None:
    records = random_records(400, seed=11)
    batch = model.predict_frame(pd.DataFrame(records))  # the pandas/sklearn batch path
    for i, record in enumerate(records):
        fast = model.predict_one(record, explain_text=False)
        slow = model.predict_one(record, explain_text=False, fast=False)
        for c in model.classes:
            assert math.isclose(fast.probabilities[c], slow.probabilities[c], abs_tol=TOLERANCE)
        np.testing.assert_allclose(
            [fast.probabilities[c] for c in model.classes], batch[i], atol=TOLERANCE, rtol=0
        )
        np.testing.assert_allclose(
            [p for _, p in fast.ranked], [p for _, p in slow.ranked], atol=TOLERANCE, rtol=0
        )
        assert fast.predicted == slow.predicted
        assert math.isclose(fast.baseline, slow.baseline, abs_tol=TOLERANCE)
        assert math.isclose(fast.output, slow.output, abs_tol=TOLERANCE)
        assert fast.scale == slow.scale
        assert [c["feature"] for c in fast.contributions] == [
            c["feature"] for c in slow.contributions
        ]
        for a, b in zip(fast.contributions, slow.contributions, strict=True):
            assert a["value"] == b["value"]
            assert math.isclose(a["contribution"], b["contribution"], abs_tol=TOLERANCE)
        assert fast.abstain_reasons == slow.abstain_reasons


def test_every_column_contribution_matches_the_dense_explainer(model: TrainedModel) -> None:
    """Not only the top few: the whole per-column vector, for every class as the target."""
    explainer = model.explainer
    for record in random_records(50, seed=5):
        row = model.prepare(record)
        for target in range(len(model.classes)):
            fast = explainer.explain(row, target)
            slow = explainer.explain(row, target, fast=False)
            assert fast.contributions.keys() == slow.contributions.keys()
            np.testing.assert_allclose(
                list(fast.contributions.values()),
                list(slow.contributions.values()),
                atol=TOLERANCE,
                rtol=0,
            )
            assert math.isclose(fast.output, explainer.model_output(row, target), abs_tol=1e-9)


def test_other_learners_keep_their_own_path(make_frame) -> None:
    frame = make_frame(n=200, seed=4)
    spec = ModelSpec(target="label", group="patient_id", plausible=shipped_plausible_ranges())
    model = train(frame, spec, algorithms=("decision_tree",), cv=2, seed=0, n_bootstrap=10).model
    assert model.explainer.linear_serving is None
    record = random_records(1, seed=2)[0]
    assert (
        model.predict_one(record).probabilities
        == model.predict_one(record, fast=False).probabilities
    )
