"""Compression: every torch model exports to ONNX with parity (1e-4, before quantisation), int8 is
refused when AUC drops by more than 0.005, and the report carries sizes, latencies and AUCs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from predictions.ml.algorithms import TorchMLPClassifier
from predictions.ml.export import (
    MAX_AUC_DROP,
    PARITY_TOLERANCE,
    OnnxModel,
    accept_int8,
    export_mlp,
    export_onnx,
    parity,
    quantize_int8,
)
from predictions.ml.timeline.networks import KINDS, EmbeddingHead, TimelineNet


def _batch(seed: int, n: int = 6, length: int = 24, vocabulary: int = 30):
    rng = np.random.default_rng(seed)
    codes = rng.integers(1, vocabulary, (n, length))
    codes[:, : length // 3] = 0  # left padding, as the encoder produces
    continuous = rng.normal(size=(n, length, 5)).astype(np.float32)
    continuous[codes == 0] = 0
    return codes.astype(np.int64), continuous


@pytest.mark.parametrize("kind", KINDS)
def test_sequence_networks_match_onnxruntime_within_1e4(kind: str) -> None:
    torch.manual_seed(0)
    net = TimelineNet(kind, 30, max_len=24, dim=16).eval()
    codes, continuous = _batch(1)
    model_bytes = export_onnx(net, {"codes": codes[:2], "continuous": continuous[:2]})
    with torch.no_grad():
        expected = net(torch.as_tensor(codes), torch.as_tensor(continuous)).numpy()
    served = OnnxModel(model_bytes).run({"codes": codes, "continuous": continuous})
    assert served.shape == expected.shape == (6,)  # the batch axis is dynamic
    assert parity(expected, served) < PARITY_TOLERANCE
    embedding = OnnxModel(
        export_onnx(EmbeddingHead(net), {"codes": codes, "continuous": continuous})
    )
    vectors = embedding.run({"codes": codes, "continuous": continuous})
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_tabular_mlp_exports_with_parity_and_quantises() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 7))
    y = (X[:, 0] + X[:, 1] ** 2 + rng.normal(0, 0.3, 300) > 1).astype(int)
    mlp = TorchMLPClassifier(max_epochs=20, seed=0).fit(X, y)
    fp32 = export_mlp(mlp, n_features=7)
    served = OnnxModel(fp32).run({"x": X.astype(np.float32)})
    assert parity(mlp.decision_function(X), served) < PARITY_TOLERANCE
    int8 = quantize_int8(fp32)
    import onnx

    operators = {node.op_type for node in onnx.load_from_string(int8).graph.node}
    assert "MatMulInteger" in operators or "DynamicQuantizeMatMul" in operators
    quantised = OnnxModel(int8).run({"x": X.astype(np.float32)})
    assert quantised.shape == served.shape
    assert np.mean(quantised.argmax(axis=1) == served.argmax(axis=1)) > 0.9


def test_int8_is_refused_when_auc_drops_by_more_than_the_limit() -> None:
    assert accept_int8(0.80, 0.80 - MAX_AUC_DROP)[0]
    accepted, reason = accept_int8(0.80, 0.80 - MAX_AUC_DROP - 0.001)
    assert not accepted
    assert "refused" in reason
    assert not accept_int8(float("nan"), 0.7)[0]


def test_onnx_model_pickles_as_bytes_without_its_session() -> None:
    import pickle

    net = TimelineNet("gru", 30, max_len=24, dim=8).eval()
    codes, continuous = _batch(2)
    model = OnnxModel(export_onnx(net, {"codes": codes, "continuous": continuous}))
    before = model.run({"codes": codes, "continuous": continuous})
    copy = pickle.loads(pickle.dumps(model))  # noqa: S301 - our own bytes, just written
    assert copy._session is None
    np.testing.assert_array_equal(copy.run({"codes": codes, "continuous": continuous}), before)


def test_forecast_report_has_the_compression_table(trained_gru) -> None:
    (entry,) = trained_gru.report["compression"]
    assert entry["model"] == "gru"
    assert entry["onnx_fp32_bytes"] > 0
    assert entry["onnx_int8_bytes"] > 0
    assert set(entry["latency_ms"]) >= {"torch", "onnxruntime", "onnxruntime_int8"}
    assert entry["parity_max_abs_logit_difference"] < PARITY_TOLERANCE
    assert abs(entry["auc"]["torch"] - entry["auc"]["onnxruntime"]) < 1e-3
    assert entry["int8_accepted"] == (entry["auc_drop_int8"] <= MAX_AUC_DROP)
