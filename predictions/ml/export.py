"""Compression for deployment: ONNX export, onnxruntime serving, int8 dynamic quantisation.

Every torch model of the engine (the timeline sequence networks and the tabular MLP) goes through
the same three steps:

1. :func:`export_onnx` writes the eval-mode module as ONNX (batch dimension dynamic) and
   :func:`parity` checks that onnxruntime reproduces torch within :data:`PARITY_TOLERANCE`;
2. :func:`quantize_int8` applies onnxruntime's dynamic quantisation (int8 weights, activations
   quantised on the fly; no calibration data needed);
3. :func:`accept_int8` keeps the quantised model only if its AUC on held-out rows drops by at most
   :data:`MAX_AUC_DROP` compared with the float32 model; otherwise float32 is served.

Serving needs no torch: :class:`OnnxModel` holds the bytes and opens an onnxruntime session lazily
(one thread: requests run in parallel worker processes; a second thread only waits for a core).
"""

from __future__ import annotations

import io
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

PARITY_TOLERANCE = 1e-4
MAX_AUC_DROP = 0.005
OPSET = 17


def export_onnx(
    module: Any,
    inputs: dict[str, np.ndarray],
    *,
    output_name: str = "output",
) -> bytes:
    """ONNX bytes of ``module`` (called with ``inputs`` in order), batch axis 0 dynamic.

    Uses torch's TorchScript-based exporter, which handles the recurrent layers as single GRU/LSTM
    operators in well under a second; the dynamo exporter (onnxscript) gives the same graph for
    these modules but takes 5-15 s per export, too slow to export every cross-validation fold.
    It is the fallback when the TorchScript exporter refuses a module.
    """
    import torch

    module = module.eval()
    example = tuple(torch.as_tensor(v) for v in inputs.values())
    names = list(inputs)
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        # The exporter announces its own deprecation in favour of dynamo; see the docstring.
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                module,
                example,
                buffer,  # type: ignore[arg-type]  # file-like objects are accepted (torch.onnx docs)
                input_names=names,
                output_names=[output_name],
                dynamic_axes={**{n: {0: "batch"} for n in names}, output_name: {0: "batch"}},
                opset_version=OPSET,
                dynamo=False,
            )
        except Exception:
            buffer = io.BytesIO()
            batch = torch.export.Dim("batch", min=1)
            program = torch.onnx.export(
                module,
                example,
                input_names=names,
                output_names=[output_name],
                dynamic_shapes=tuple({0: batch} for _ in names),
                dynamo=True,
            )
            program.save(buffer)  # type: ignore[union-attr, arg-type]  # a file-like object works
    return buffer.getvalue()


class OnnxModel:
    """An ONNX model served by onnxruntime; pickles as its bytes, the session opens on first use."""

    def __init__(self, model_bytes: bytes) -> None:
        self.model_bytes = model_bytes
        self._session: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {"model_bytes": self.model_bytes, "_session": None}

    @property
    def size_bytes(self) -> int:
        return len(self.model_bytes)

    @property
    def session(self) -> Any:
        if self._session is None:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            self._session = ort.InferenceSession(
                self.model_bytes, options, providers=["CPUExecutionProvider"]
            )
        return self._session

    def run(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """The first output for ``inputs`` (dtypes as exported: int64 ids, float32 values)."""
        return np.asarray(self.session.run(None, inputs)[0])


def quantize_int8(model_bytes: bytes) -> bytes:
    """onnxruntime dynamic quantisation: int8 weights for MatMul/Gemm/LSTM/attention."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as folder:
        source, target = Path(folder) / "fp32.onnx", Path(folder) / "int8.onnx"
        source.write_bytes(model_bytes)
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # "consider pre-processing" advice on every call
        try:
            quantize_dynamic(source, target, weight_type=QuantType.QInt8)
        finally:
            root.setLevel(level)
        return target.read_bytes()


def parity(reference: np.ndarray, served: np.ndarray) -> float:
    """Largest absolute difference between torch's and onnxruntime's outputs."""
    return float(np.max(np.abs(np.asarray(reference, float) - np.asarray(served, float))))


def accept_int8(auc_fp32: float, auc_int8: float) -> tuple[bool, str]:
    """Whether the int8 model may serve, and why (AUC may drop by at most MAX_AUC_DROP)."""
    drop = auc_fp32 - auc_int8
    if np.isnan(drop):
        return False, "AUC not computable on the held-out rows: float32 is served"
    if drop > MAX_AUC_DROP + 1e-12:  # float rounding of the subtraction is not a drop
        return False, f"int8 refused: AUC drops by {drop:.4f} > {MAX_AUC_DROP}"
    return True, f"int8 accepted: AUC changes by {-drop:+.4f} (limit -{MAX_AUC_DROP})"


def median_latency_ms(call: Callable[[Any], Any], samples: Sequence[Any], warmup: int = 5) -> float:
    """Median wall time of ``call(sample)`` over ``samples`` in milliseconds (benchmarks, reports)."""
    for sample in samples[:warmup]:
        call(sample)
    timings = []
    for sample in samples:
        started = time.perf_counter()
        call(sample)
        timings.append(time.perf_counter() - started)
    return 1000 * statistics.median(timings)


def mlp_module(estimator: Any) -> Any:
    """The torch network of a fitted :class:`~predictions.ml.algorithms.TorchMLPClassifier`."""
    return estimator.torch_module()


def export_mlp(estimator: Any, n_features: int) -> bytes:
    """ONNX of a fitted tabular MLP: float32 features ``x`` (n, d) -> logits (n, k)."""
    example = {"x": np.zeros((2, n_features), dtype=np.float32)}
    return export_onnx(mlp_module(estimator), example, output_name="logits")


def mlp_compression_report(
    X: np.ndarray,
    y: np.ndarray,
    folds: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    seed: int = 0,
    latency_rows: int = 200,
) -> dict[str, Any]:
    """The tabular MLP compressed fold by fold: size, latency and test-fold AUC, float32 vs int8.

    ``X`` is the engine's feature matrix (binary ``y``); on each fold an MLP is fitted on the
    training rows, exported and quantised, and the test rows are scored by the live numpy path,
    onnxruntime float32 and onnxruntime int8 (rows one at a time for int8, as served).
    """
    import torch
    from sklearn.metrics import roc_auc_score

    from predictions.ml.algorithms import TorchMLPClassifier

    n = len(y)
    live, fp32_scores, int8_scores = np.zeros(n), np.zeros(n), np.zeros(n)
    worst, sizes = 0.0, []
    for train, test in folds:
        mlp = TorchMLPClassifier(seed=seed).fit(X[train], y[train])
        fp32 = export_mlp(mlp, X.shape[1])
        int8 = quantize_int8(fp32)
        sizes.append((len(fp32), len(int8)))
        rows = X[test].astype(np.float32)
        reference = mlp.decision_function(X[test])
        served = OnnxModel(fp32).run({"x": rows})
        quantised = np.vstack(
            [OnnxModel(int8).run({"x": rows[i : i + 1]}) for i in range(len(rows))]
        )
        worst = max(worst, parity(reference, served))
        live[test] = reference[:, 1] - reference[:, 0]
        fp32_scores[test] = served[:, 1] - served[:, 0]
        int8_scores[test] = quantised[:, 1] - quantised[:, 0]
    auc_live, auc_fp32, auc_int8 = (
        float(roc_auc_score(y, s)) for s in (live, fp32_scores, int8_scores)
    )
    accepted, reason = accept_int8(auc_fp32, auc_int8)
    module = mlp.torch_module()
    fp32_model, int8_model = OnnxModel(fp32), OnnxModel(int8)
    samples = [X[i : i + 1] for i in range(min(latency_rows, n))]
    samples32 = [s.astype(np.float32) for s in samples]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            torch_ms = median_latency_ms(lambda s: module(torch.as_tensor(s)), samples32)
    finally:
        torch.set_num_threads(threads)
    return {
        "model": "mlp",
        "onnx_fp32_bytes": int(np.mean([s[0] for s in sizes])),
        "onnx_int8_bytes": int(np.mean([s[1] for s in sizes])),
        "latency_ms": {
            "numpy_live_path": round(median_latency_ms(mlp.decision_function, samples), 4),
            "torch": round(torch_ms, 4),
            "onnxruntime": round(
                median_latency_ms(lambda s: fp32_model.run({"x": s}), samples32), 4
            ),
            "onnxruntime_int8": round(
                median_latency_ms(lambda s: int8_model.run({"x": s}), samples32), 4
            ),
        },
        "parity_max_abs_logit_difference": worst,
        "auc": {"numpy_live_path": auc_live, "onnxruntime": auc_fp32, "onnxruntime_int8": auc_int8},
        "auc_drop_int8": auc_fp32 - auc_int8,
        "int8_accepted": accepted,
        "int8_decision": reason,
        "folds": len(folds),
    }


def serve_mlp_onnx(estimator: Any, X: np.ndarray) -> dict[str, Any]:
    """Switch a fitted tabular MLP to onnxruntime if the graph reproduces its logits on ``X``.

    ``X`` is a sample of the engine's feature rows (dense). The float32 ONNX graph is kept only
    when the largest logit difference from the numpy path is within :data:`PARITY_TOLERANCE`;
    otherwise the numpy path keeps serving. Returns what was decided, for the report.
    """
    X = np.asarray(X.toarray() if hasattr(X, "toarray") else X, dtype=float)
    estimator.serve_onnx(None)
    reference = estimator.decision_function(X)
    model_bytes = export_mlp(estimator, X.shape[1])
    served = OnnxModel(model_bytes).run({"x": X.astype(np.float32)})
    difference = parity(reference, served)
    accepted = difference <= PARITY_TOLERANCE
    if accepted:
        estimator.serve_onnx(model_bytes)
    return {
        "runtime": "onnxruntime" if accepted else "numpy",
        "parity_max_abs_logit_difference": difference,
        "tolerance": PARITY_TOLERANCE,
        "rows_checked": len(X),
        "onnx_bytes": len(model_bytes),
    }
