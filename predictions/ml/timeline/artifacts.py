"""Forecast model artifacts: one compressed file, verified (sha256, library versions) before use.

The same format and checks as :mod:`predictions.ml.artifacts` (the model is kept as pickled bytes
so the file and the recorded versions are verified before anything is unpickled), for
:class:`~predictions.ml.timeline.serving.ForecastModel`. The ONNX graphs travel inside as bytes.
"""

from __future__ import annotations

import pickle
import threading
from pathlib import Path
from typing import Any

import joblib

from predictions.ml.artifacts import (
    ARTIFACT_FORMAT,
    COMPRESSION,
    ArtifactError,
    ArtifactInfo,
    check_versions,
    file_sha256,
    read_metadata,
)
from predictions.ml.pipeline import installed_version, library_versions
from predictions.ml.timeline.serving import ForecastModel


def forecast_library_versions() -> dict[str, str]:
    versions = library_versions()
    onnxruntime = installed_version("onnxruntime", "onnxruntime")
    if onnxruntime is not None:
        versions["onnxruntime"] = onnxruntime
    return versions


def save_forecast_model(model: ForecastModel, path: str | Path) -> ArtifactInfo:
    """Write ``model`` to ``path`` atomically; returns its sha256 and size."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata: dict[str, Any] = {
        "kind": "forecast",
        "name": model.name,
        "family": model.family,
        "library_versions": forecast_library_versions(),
        "metrics": model.metadata.get("metrics"),
    }
    blob = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
    temporary = path.with_suffix(path.suffix + ".tmp")
    joblib.dump(
        {"format": ARTIFACT_FORMAT, "metadata": metadata, "model": blob},
        temporary,
        compress=COMPRESSION,
    )
    temporary.replace(path)
    return ArtifactInfo(file_sha256(path), path.stat().st_size, path, len(blob))


_cache: dict[tuple[str, str], ForecastModel] = {}
_lock = threading.Lock()


def load_forecast_model(path: str | Path, sha256: str) -> ForecastModel:
    """Load a verified forecast model; cached per (path, sha256)."""
    key = (str(Path(path).resolve()), sha256)
    with _lock:
        cached = _cache.get(key)
        if cached is not None:
            return cached
        payload = read_metadata(path, sha256)
        recorded = payload["metadata"].get("library_versions", {})
        check_versions(recorded)
        import onnxruntime

        if recorded.get("onnxruntime") not in (None, onnxruntime.__version__):
            raise ArtifactError(
                f"forecast model was written with onnxruntime {recorded['onnxruntime']} "
                f"(installed {onnxruntime.__version__}); retrain the model"
            )
        # Trusted input only: written by MedAI's own training job; the sha256 recorded at training
        # time was verified above, before joblib or pickle read the file.
        model = pickle.loads(payload["model"])  # noqa: S301  # nosec B301  # see the comment above
        if not isinstance(model, ForecastModel):
            raise ArtifactError(f"{Path(path).name} does not contain a ForecastModel")
        _cache[key] = model
        return model
