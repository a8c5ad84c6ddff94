"""Model artifacts: one compressed joblib file per fitted model, verified before use.

The file holds ``{"format", "metadata", "model"}`` where ``model`` is the pickled
:class:`~predictions.ml.pipeline.TrainedModel` as bytes. Keeping it as bytes lets ``load_model``
check the file's sha256 *and* the recorded library versions before any model object is
unpickled: a mismatch is refused with an :class:`ArtifactError` instead of a confusing failure (or
silently different numbers) deep inside scikit-learn.
"""

from __future__ import annotations

import hashlib
import pickle
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib

from predictions.ml.errors import EngineError
from predictions.ml.pipeline import TrainedModel, library_versions

# 2: free-text blocks (word/char/encoder TF-IDF, token sequences) replaced the capped TF-IDF of
# format 1; a format-1 model cannot be served by this engine and must be retrained.
ARTIFACT_FORMAT = 2
# Libraries whose pickled objects must match exactly: their estimators and arrays change layout
# between releases. Python, pandas and joblib are recorded but only informative.
STRICT_LIBRARIES = ("numpy", "scipy", "scikit-learn", "torch")
COMPRESSION = ("zlib", 3)  # small files, fast to load; lzma is 3x slower to load for ~10% less


class ArtifactError(EngineError):
    """A model artifact cannot be used."""


class ArtifactIntegrityError(ArtifactError):
    """The file's sha256 differs from the recorded one (corrupt, truncated or replaced)."""


class ArtifactFormatError(ArtifactError):
    """The artifact was written by an older (or newer) engine whose models this one cannot serve."""


class ArtifactVersionError(ArtifactError):
    """The artifact was written with library versions different from the ones installed."""


@dataclass(frozen=True)
class ArtifactInfo:
    sha256: str
    size_bytes: int
    path: Path
    uncompressed_bytes: int = 0


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_model(model: TrainedModel, path: str | Path) -> ArtifactInfo:
    """Write ``model`` to ``path`` (one compressed file) and return its sha256 and size."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = dict(model.metadata)
    metadata["library_versions"] = library_versions()
    metadata.update(
        algorithm=model.algorithm, params=model.params, classes=model.classes, task=model.task
    )
    blob = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
    payload: dict[str, Any] = {"format": ARTIFACT_FORMAT, "metadata": metadata, "model": blob}
    temporary = path.with_suffix(path.suffix + ".tmp")
    joblib.dump(payload, temporary, compress=COMPRESSION)
    temporary.replace(path)  # atomic: a reader never sees a half-written artifact
    return ArtifactInfo(file_sha256(path), path.stat().st_size, path, len(blob))


def read_metadata(path: str | Path, sha256: str) -> dict[str, Any]:
    """Verify the file and return its metadata without unpickling the model."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"model artifact not found: {path}")
    actual = file_sha256(path)
    if actual != sha256:
        raise ArtifactIntegrityError(
            f"model artifact {path.name} has sha256 {actual[:12]}..., expected {sha256[:12]}...; "
            "refusing to load a file that is not the one recorded"
        )
    payload = joblib.load(path)
    if not isinstance(payload, dict) or "format" not in payload:
        raise ArtifactError(f"{path.name} is not a MedAI model artifact (format {ARTIFACT_FORMAT})")
    if payload["format"] != ARTIFACT_FORMAT:
        raise ArtifactFormatError(
            f"{path.name} was written by an engine using artifact format {payload['format']}; "
            f"this engine reads format {ARTIFACT_FORMAT} (free text is featurised differently "
            "since format 2): retrain the model"
        )
    return payload


def check_versions(recorded: dict[str, str]) -> None:
    """Raise :class:`ArtifactVersionError` naming every strict library that differs."""
    installed = library_versions()
    differences = [
        f"{name} {recorded.get(name)} (installed {installed.get(name)})"
        for name in STRICT_LIBRARIES
        if recorded.get(name) != installed.get(name)
    ]
    if differences:
        raise ArtifactVersionError(
            "model artifact was written with " + ", ".join(differences) + "; retrain the model"
        )


_cache: dict[tuple[str, str], TrainedModel] = {}
_lock = threading.Lock()


def load_model(path: str | Path, sha256: str) -> TrainedModel:
    """Load a verified model; cached per (path, sha256), so each worker loads a version once.

    The path is the key as given, not resolved: resolving costs a system call per directory on
    every prediction, and the sha256 in the key (verified when the file was read) already says
    which model is meant, whatever spelling of its path a caller uses.
    """
    key = (str(path), sha256)
    with _lock:
        cached = _cache.get(key)
        if cached is not None:
            return cached
        payload = read_metadata(path, sha256)
        check_versions(payload["metadata"].get("library_versions", {}))
        # Trusted input only: the file was written by MedAI's own training job and its sha256 (kept
        # in the database at training time) was verified above, before joblib or pickle read it.
        model = pickle.loads(payload["model"])  # noqa: S301  # nosec B301  # see the comment above
        if not isinstance(model, TrainedModel):
            raise ArtifactError(f"{Path(path).name} does not contain a TrainedModel")
        _cache[key] = model
        return model


def clear_cache() -> None:
    """Forget cached models (tests, or a worker freeing memory after a model is retired)."""
    with _lock:
        _cache.clear()
