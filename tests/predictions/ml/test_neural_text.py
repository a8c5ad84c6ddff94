"""Neural text models: seeded, early-stopped on a patient-grouped split, vocabulary from training
rows only and saved with the model, competing in the same grouped CV, explained by occlusion."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from predictions.ml.artifacts import load_model, save_model
from predictions.ml.dataset import clean
from predictions.ml.features import Featurizer
from predictions.ml.neural_text import TextCNNClassifier, TextGRUClassifier
from predictions.ml.pipeline import ModelSpec, train

DATA = Path(__file__).resolve().parent / "text_data" / "bilingual_symptoms.csv"
LABELS = ["cystitis", "pyelonephritis", "migraine", "tension headache", "common cold", "influenza"]


@pytest.fixture(scope="module")
def small() -> pd.DataFrame:
    frame = pd.read_csv(DATA)
    frame = frame[frame["label"].isin(LABELS)].reset_index(drop=True)
    # Two visits per patient, so grouped splitting has something to keep together.
    frame["patient"] = [f"p{i // 2}" for i in range(len(frame))]
    return frame


def design(frame: pd.DataFrame):
    data = clean(frame, target="label", group="patient")
    featurizer = Featurizer(data.plans, representation="sequence").fit(data.frame)
    return data, featurizer.transform(data.frame)


@pytest.mark.parametrize("cls", [TextCNNClassifier, TextGRUClassifier])
def test_seeded_early_stopped_on_grouped_split_and_vocabulary_from_training_rows(
    small: pd.DataFrame, cls
) -> None:
    data, X = design(small)
    a = cls(seed=3, max_epochs=15).fit(X, data.labels, groups=data.groups)
    b = cls(seed=3, max_epochs=15).fit(X, data.labels, groups=data.groups)
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), atol=1e-6)
    assert a.validation_split_ == "grouped stratified"
    assert a.n_epochs_ <= 15
    assert a.validation_rows_ > 0
    # Whole patients on one side, and the vocabulary knows only the training side's words.
    from predictions.ml.algorithms import early_stopping_split

    codes = np.unique(data.labels, return_inverse=True)[1]
    train_idx, val_idx, _ = early_stopping_split(codes, data.groups, a.validation_fraction, 3)
    assert not set(data.groups[train_idx]) & set(data.groups[val_idx])
    from predictions.ml.neural_text import units_of

    seen = {u for i in train_idx for u, _ in units_of(X.tokens[i], "tokens")}
    assert set(a.vocabulary_) == seen
    held_out_only = {u for i in val_idx for u, _ in units_of(X.tokens[i], "tokens")} - seen
    assert held_out_only
    assert not held_out_only & set(a.vocabulary_)


def test_neural_models_compete_in_grouped_cv_and_round_trip_through_the_artifact(
    small: pd.DataFrame, tmp_path: Path
) -> None:
    spec = ModelSpec(target="label", group="patient")
    result = train(
        small,
        spec,
        algorithms=["logistic_regression", "cnn_text", "gru_text"],
        cv=3,
        seed=0,
        n_bootstrap=0,
    )
    report = result.report
    by_name = {m["name"]: m for m in report["models"]}
    assert set(by_name) == {"logistic_regression", "cnn_text", "gru_text"}
    assert by_name["cnn_text"]["text_representation"] == "sequence"
    for name, m in by_name.items():
        print(
            f"{name}: accuracy {m['metrics']['accuracy']:.3f} log loss {m['metrics']['log_loss']:.3f}"
        )
    best = min(report["models"], key=lambda m: m["metrics"]["log_loss"])
    assert report["selected"]["name"] == best["name"]  # selected only when it wins
    for name in ("cnn_text", "gru_text"):  # six classes, ~80 training texts a fold: chance is 1/6
        assert by_name[name]["metrics"]["accuracy"] > 0.4

    # Force a neural model to be the one saved, and check serving and explanation.
    neural = train(small, spec, algorithms=["cnn_text"], cv=2, seed=0, n_bootstrap=0).model
    info = save_model(neural, tmp_path / "cnn.joblib")
    loaded = load_model(info.path, info.sha256)
    frame = small.drop(columns=["label"]).head(20)
    np.testing.assert_allclose(loaded.predict_frame(frame), neural.predict_frame(frame), atol=1e-6)
    assert loaded.model.estimator.vocabulary_ == neural.model.estimator.vocabulary_
    prediction = loaded.predict_one(
        {"text": "尿频、尿急、尿痛两天，无发热，无腰痛。", "patient": "x"}
    )
    assert prediction.text is not None
    assert prediction.text["method"].startswith("occlusion")
    words = prediction.text["words"]
    assert words
    assert all(
        "尿频、尿急、尿痛两天，无发热，无腰痛。"[w["start"] : w["end"]] == w["text"] for w in words
    )
    assert (
        abs(
            sum(c["contribution"] for c in prediction.contributions)
            - (prediction.output - prediction.baseline)
        )
        < 1e-6
    )
