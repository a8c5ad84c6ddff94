"""Network weights kept inside a forecast artifact, so the nightly job can fine-tune incrementally.

A :class:`NetWeights` is one network's ``state_dict`` as numpy arrays (so loading and serving an
artifact never needs torch), with the architecture and the :class:`TokenEncoder` whose vocabulary
indexes its embedding rows, and a checksum of the arrays. :class:`TimelineWeights` is what a
:class:`~predictions.ml.timeline.serving.ForecastModel` carries:

* ``pretrained`` -- per architecture, the self-supervised encoder of the last full training (the
  monthly re-pretraining); nightly versions carry it forward unchanged;
* ``finetuned`` -- the served sequence network's fine-tuned weights (none for the count baseline),
  with ``parent`` naming the checksum of the pretrained encoder it descends from.

The artifact file as a whole is sha256-verified before unpickling
(:mod:`predictions.ml.timeline.artifacts`); the per-network checksum identifies *which* weights a
fine-tune started from (recorded in the job's report, and checked by the tests).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from predictions.ml.timeline.tokens import TokenEncoder


def state_checksum(state: dict[str, np.ndarray]) -> str:
    """sha256 over every tensor's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(state):
        array = np.ascontiguousarray(state[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


@dataclass
class NetWeights:
    """One network's weights, its architecture and the vocabulary its embedding rows follow."""

    kind: str
    config: dict[str, Any]  # NetConfig fields other than kind: dim, dropout, layers, heads
    encoder: TokenEncoder
    state: dict[str, np.ndarray]
    origin: str  # "pretrained" or "finetuned"
    parent: str = ""  # checksum of the pretrained encoder a fine-tuned network started from
    checksum: str = field(default="")

    def __post_init__(self) -> None:
        if not self.checksum:
            self.checksum = state_checksum(self.state)

    def summary(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "origin": self.origin,
            "checksum": self.checksum,
            "parent": self.parent,
            "vocabulary_size": self.encoder.vocabulary_size,
            "parameters": int(sum(a.size for a in self.state.values())),
        }


@dataclass
class TimelineWeights:
    """The torch weights a forecast artifact keeps (see the module docstring)."""

    pretrained: dict[str, NetWeights] = field(default_factory=dict)
    finetuned: NetWeights | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "pretrained": {kind: w.summary() for kind, w in sorted(self.pretrained.items())},
            "finetuned": self.finetuned.summary() if self.finetuned is not None else None,
        }
