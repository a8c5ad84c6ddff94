"""Explanations add up: baseline + contributions == the model's output on the stated scale."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

from predictions.ml.algorithms import ALGORITHMS
from predictions.ml.dataset import clean
from predictions.ml.explain import Explainer, global_importance
from predictions.ml.features import Featurizer
from predictions.ml.pipeline import fit_learner


def prepared(make_frame, classes: int, representation: str = "word-top"):
    frame = make_frame(n=200, seed=3, classes=classes)
    data = clean(frame, target="label", group="patient_id", text=["chief_complaint"])
    featurizer = Featurizer(data.plans, representation=representation).fit(data.frame)
    X = featurizer.transform(data.frame)
    codes = np.array([data.classes.index(v) for v in data.labels])
    return featurizer, X, codes, data.classes


@pytest.mark.parametrize("classes", [2, 3])
@pytest.mark.parametrize("name", list(ALGORITHMS))
def test_contributions_sum_exactly_to_the_model_output(make_frame, name: str, classes: int) -> None:
    algorithm = ALGORITHMS[name]
    # Each learner on the text representation it is cross-validated with first (sparse uncapped
    # words for logistic regression, token sequences for the neural text models).
    featurizer, X, codes, labels = prepared(make_frame, classes, algorithm.text_representations[0])
    fitted = fit_learner(
        algorithm, X, codes, np.arange(X.shape[0]).astype(str), len(labels), inner_folds=2
    )
    explainer = Explainer(fitted.model, featurizer, algorithm.explain, labels)
    assert explainer.method == algorithm.explain
    proba = fitted.model.predict_proba(X[:10])
    # The neural text models compute in float32 (batches of different widths round differently).
    tolerance = 1e-6 if algorithm.needs_text else 1e-9
    for i in range(10):
        target = int(proba[i].argmax())
        explanation = explainer.explain(X[i], target)
        total = explanation.baseline + sum(explanation.contributions.values())
        assert total == pytest.approx(explainer.model_output(X[i], target), abs=tolerance)
        assert explanation.output == pytest.approx(total, abs=tolerance)
        columns = set(featurizer.feature_source) | (
            set(featurizer.text) if featurizer.is_sequence else set()
        )
        assert set(explanation.contributions) == columns
        if "probability" in explanation.scale:
            assert total == pytest.approx(proba[i, target], abs=tolerance)
        elif classes == 2:  # calibrated log-odds of the predicted class
            assert expit(total) == pytest.approx(proba[i, target], abs=1e-9)


def test_linear_contribution_is_zero_for_a_feature_at_its_training_mean(make_frame) -> None:
    featurizer, X, codes, labels = prepared(make_frame, 2)
    fitted = fit_learner(
        ALGORITHMS["logistic_regression"], X, codes, np.arange(len(X)).astype(str), 2
    )
    explainer = Explainer(fitted.model, featurizer, "linear", labels)
    row = featurizer.feature_means.copy()
    explanation = explainer.explain(row, 1)
    assert all(abs(v) < 1e-12 for v in explanation.contributions.values())
    assert explanation.scale == "calibrated log-odds of 'well'"


def test_global_importance_ranks_the_informative_inputs_first(make_frame) -> None:
    featurizer, X, codes, labels = prepared(make_frame, 2)
    fitted = fit_learner(
        ALGORITHMS["logistic_regression"], X, codes, np.arange(len(X)).astype(str), 2
    )
    explainer = Explainer(fitted.model, featurizer, "linear", labels)
    ranking = [r["feature"] for r in global_importance(explainer, X, codes)]
    # the label is driven by heart rate, age, temperature, visit type (and text derived from it)
    assert "sex" in ranking[-3:]
    assert set(ranking[:3]) <= {"obs_8867-4", "age", "obs_8310-5", "visit_type", "chief_complaint"}
