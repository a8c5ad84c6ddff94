"""The optional sentence encoder: offline, cached per text hash, English-only, chosen by CV only
when asked for, and visibly absent from the report when its packages are missing."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from predictions.ml import encoder
from predictions.ml.pipeline import ModelSpec, train


def test_the_encoder_is_installed_here() -> None:
    """CI installs the text extra through the dev extra: these tests never skip for its absence."""
    assert encoder.status()["available"], encoder.status()["reason"]


def test_embeddings_are_offline_unit_length_cached_and_english_only(monkeypatch) -> None:
    encoder.clear_cache()
    texts = ["chest pain radiating to the left arm", "胸痛放射至左臂", "", "a sore throat"]
    vectors = encoder.encode(texts)
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert vectors.shape == (4, encoder.DIMENSIONS)
    np.testing.assert_allclose(np.linalg.norm(vectors[[0, 3]], axis=1), 1.0, atol=1e-5)
    assert not vectors[1].any()
    assert not vectors[2].any()
    calls = []
    model = encoder._model()
    original = model.encode
    monkeypatch.setattr(model, "encode", lambda *a, **k: calls.append(a) or original(*a, **k))
    again = encoder.encode(["a sore throat", "chest pain radiating to the left arm"])
    assert not calls  # both from the cache, keyed by the text's sha256
    np.testing.assert_allclose(again, vectors[[3, 0]])
    related = float(vectors[0] @ encoder.encode(["central chest pain spreading to the arm"])[0])
    unrelated = float(vectors[0] @ vectors[3])
    assert related > unrelated


def english_frame() -> pd.DataFrame:
    from pathlib import Path

    path = Path(__file__).resolve().parent / "text_data" / "english_symptoms_1200.csv"
    frame = pd.read_csv(path)
    keep = ["cystitis", "pyelonephritis", "migraine", "tension headache"]
    return frame[frame["label"].isin(keep)].reset_index(drop=True)


def test_cross_validation_decides_whether_the_encoder_helps_when_asked() -> None:
    result = train(
        english_frame(),
        ModelSpec(target="label"),
        algorithms=["logistic_regression"],
        cv=3,
        n_bootstrap=0,
        representations=["word", "word+char+encoder"],
    )
    text = result.report["text"]
    assert text["encoder"]["tried"] is True
    assert {e["representation"] for e in text["representations"]} == {"word", "word+char+encoder"}
    best = min(text["representations"], key=lambda e: e["log_loss"])
    assert text["selected"] == best["representation"]
    assert "English-only" in text["encoder"]["note"]


def test_absent_encoder_degrades_visibly(monkeypatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == encoder.MODEL_PACKAGE else real(name, *a),
    )
    assert encoder.status()["available"] is False
    result = train(
        english_frame(),
        ModelSpec(target="label"),
        algorithms=["logistic_regression"],
        cv=2,
        n_bootstrap=0,
        representations=["word", "word+char+encoder"],
    )
    note = result.report["text"]["encoder"]
    assert note["tried"] is False
    assert note["available"] is False
    assert "not installed" in note["why_not"]
    assert {e["representation"] for e in result.report["text"]["representations"]} == {"word"}
