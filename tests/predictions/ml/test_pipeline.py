"""train() -> TrainedModel: serving path, abstention and artifacts."""

from __future__ import annotations

import numpy as np
import pytest

from predictions.ml import artifacts
from predictions.ml.artifacts import (
    ArtifactIntegrityError,
    ArtifactVersionError,
    load_model,
    save_model,
)
from predictions.ml.dataset import shipped_plausible_ranges
from predictions.ml.pipeline import ModelSpec, Prediction, TrainResult, train


@pytest.fixture(scope="module")
def trained(make_frame) -> TrainResult:
    frame = make_frame(n=300, seed=7)
    spec = ModelSpec(
        target="label",
        group="patient_id",
        text=["chief_complaint"],
        subgroup_columns={"sex": "sex", "age": "age"},
        plausible=shipped_plausible_ranges(),
    )
    stages: list[tuple[str, int]] = []
    result = train(
        frame,
        spec,
        algorithms=("logistic_regression",),
        cv=3,
        seed=0,
        progress=lambda stage, pct: stages.append((stage, pct)),
        n_bootstrap=50,
    )
    result.report["_stages"] = stages
    return result


def test_train_reports_progress_metrics_and_subgroups(trained: TrainResult) -> None:
    report = trained.report
    assert report["task"] == "binary"
    assert report["classes"] == ["sick", "well"]
    assert trained.model.task == "binary"
    assert trained.model.classes == ["sick", "well"]
    assert report["selected"]["metrics"]["roc_auc"] > 0.85
    assert set(report["selected"]["metrics"]["subgroups"]) == {"sex", "age_band"}
    bands = report["selected"]["metrics"]["subgroups"]["age_band"]
    assert sum(b["n"] for b in bands.values()) == report["dataset"]["rows_used"]
    stages = report["_stages"]
    assert stages[0] == ("cleaning", 0)
    assert stages[-1] == ("done", 100)
    assert report["feature_importance"][0]["importance"] > 0
    assert "obs_8867-4" in trained.model.feature_schema["numeric"]


def test_predict_one_matches_predict_frame_and_explains(trained: TrainResult, make_frame) -> None:
    frame = make_frame(n=20, seed=99)
    model = trained.model
    batch = model.predict_frame(frame)
    for i in range(5):
        prediction = model.predict_one(frame.iloc[i].to_dict())
        assert isinstance(prediction, Prediction)
        got = [prediction.probabilities[c] for c in model.classes]
        np.testing.assert_allclose(got, batch[i], atol=1e-12)
        assert prediction.ranked[0][1] == max(got)
        assert prediction.scale.startswith("calibrated log-odds")
        assert len(prediction.contributions) <= 8
        assert {"feature", "value", "contribution"} <= set(prediction.contributions[0])
    assert batch.shape == (20, 2)
    assert np.allclose(batch.sum(axis=1), 1)


def test_abstains_with_a_reason_when_inputs_are_missing_or_out_of_range(
    trained: TrainResult,
) -> None:
    model = trained.model
    normal = {
        "age": 50,
        "sex": "male",
        "obs_8867-4": 80,
        "obs_8310-5": 37.0,
        "visit_type": "outpatient",
        "chief_complaint": "routine check",
    }
    assert model.predict_one(normal).abstain is False
    sparse = model.predict_one({"chief_complaint": "chest pain"})
    assert sparse.abstain
    assert "missing" in sparse.abstain_reason
    # Possible (the catalogue allows 20-250 /min) but far beyond anything the model was trained on.
    far = model.predict_one({**normal, "obs_8867-4": 240})
    assert far.abstain
    assert "obs_8867-4 = 240 is far outside the training range" in far.abstain_reason
    impossible = model.predict_one({**normal, "obs_8867-4": 900})
    assert impossible.abstain
    assert "physiologically impossible" in impossible.abstain_reason
    unseen = model.predict_one({**normal, "visit_type": "home visit"})
    assert not unseen.abstain  # unseen category is tolerated (maps to no one-hot column)


def test_artifact_round_trip_verifies_hash_and_versions(
    trained: TrainResult, tmp_path, monkeypatch
) -> None:
    artifacts.clear_cache()
    info = save_model(trained.model, tmp_path / "m.joblib")
    assert info.size_bytes == (tmp_path / "m.joblib").stat().st_size > 0
    assert len(info.sha256) == 64
    loaded = load_model(info.path, info.sha256)
    assert load_model(info.path, info.sha256) is loaded  # cached per (path, sha256)
    record = {"age": 61, "sex": "female", "obs_8867-4": 101, "visit_type": "emergency"}
    assert (
        loaded.predict_one(record).probabilities == trained.model.predict_one(record).probabilities
    )
    meta = artifacts.read_metadata(info.path, info.sha256)["metadata"]
    assert {"feature_schema", "label_map", "library_versions", "data_hash", "metrics"} <= set(meta)

    with pytest.raises(ArtifactIntegrityError, match="sha256"):
        load_model(info.path, "0" * 64)
    tampered = tmp_path / "t.joblib"
    tampered.write_bytes(info.path.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ArtifactIntegrityError):
        load_model(tampered, info.sha256)

    artifacts.clear_cache()
    real = artifacts.library_versions()
    monkeypatch.setattr(artifacts, "library_versions", lambda: {**real, "scikit-learn": "0.0.1"})
    with pytest.raises(ArtifactVersionError, match="scikit-learn"):
        load_model(info.path, info.sha256)


def test_an_artifact_of_the_previous_format_is_refused_with_a_clear_error(tmp_path) -> None:
    import joblib

    from predictions.ml.artifacts import ArtifactFormatError, file_sha256, load_model

    path = tmp_path / "old.joblib"
    joblib.dump({"format": 1, "metadata": {}, "model": b""}, path)
    with pytest.raises(ArtifactFormatError, match=r"format 1.*retrain"):
        load_model(path, file_sha256(path))
