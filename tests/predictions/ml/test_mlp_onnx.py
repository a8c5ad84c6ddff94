"""The tabular MLP served by onnxruntime: parity with the numpy path within 1e-4, kept in pickles."""

from __future__ import annotations

import pickle

import numpy as np

from predictions.ml.algorithms import TorchMLPClassifier
from predictions.ml.export import PARITY_TOLERANCE, serve_mlp_onnx


def _fitted(seed: int = 0) -> tuple[TorchMLPClassifier, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(300, 12))
    y = (X[:, 0] + 0.5 * X[:, 1] + rng.normal(scale=0.5, size=300) > 0).astype(int)
    return TorchMLPClassifier(max_epochs=20, seed=seed).fit(X, y), X


def test_onnx_serving_matches_numpy_within_tolerance():
    mlp, X = _fitted()
    numpy_logits = mlp.decision_function(X)
    report = serve_mlp_onnx(mlp, X[:100])
    assert report["runtime"] == "onnxruntime"
    assert report["parity_max_abs_logit_difference"] <= PARITY_TOLERANCE == 1e-4
    assert mlp.onnx_ is not None
    served = mlp.decision_function(X)  # now through onnxruntime, rows it was not checked on too
    assert np.max(np.abs(served - numpy_logits)) <= PARITY_TOLERANCE
    assert np.array_equal(mlp.predict(X), numpy_logits.argmax(axis=1))


def test_the_graph_travels_in_the_pickle_and_can_be_switched_off():
    mlp, X = _fitted(1)
    serve_mlp_onnx(mlp, X)
    copy = pickle.loads(pickle.dumps(mlp))  # noqa: S301 - our own bytes, just written
    assert copy.onnx_ is not None
    assert copy.onnx_._session is None  # sessions are opened lazily, never pickled
    assert np.allclose(copy.decision_function(X), mlp.decision_function(X), atol=1e-6)
    copy.serve_onnx(None)
    (w1, b1), (w2, b2) = copy.weights_
    expected = np.maximum(X @ w1 + b1, 0) @ w2 + b2
    assert np.allclose(copy.decision_function(X), expected)
