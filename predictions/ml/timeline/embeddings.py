"""Patient embeddings: "patients whose course resembled this one", and phenotype clusters.

Embeddings come from a pretrained sequence network (:class:`~.serving.TimelineEmbedder`): the
network's summary of a visible history, L2-normalised, so cosine similarity is a dot product.
Nearest patients are returned as subject ids with similarities; the caller decides what of the
other patients it may show (the chart shows courses, never identifiers).

Phenotypes are k-means clusters of the embeddings, described by what a person can check: size,
the codes most over-represented in the cluster's histories (share of patients with the code in the
cluster vs. overall) and, when outcomes are given, the outcome rate per cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.cluster import KMeans

from predictions.ml.errors import DataError
from predictions.ml.timeline.baseline import gather
from predictions.ml.timeline.events import Histories, Timelines
from predictions.ml.timeline.serving import wilson_interval

DEFINING_CODES = 8
MIN_CODE_PATIENTS = 5  # a code held by fewer patients in a cluster says nothing about it


@dataclass
class PatientIndex:
    """Embeddings of a population and their subject ids, for nearest-patient search."""

    subject_ids: np.ndarray
    embeddings: np.ndarray

    def nearest(
        self, query: np.ndarray, k: int = 5, *, exclude: int | None = None
    ) -> list[dict[str, Any]]:
        """The ``k`` most similar patients to one embedding (cosine), best first."""
        query = np.asarray(query, dtype=float).reshape(-1)
        similarity = self.embeddings @ query / max(float(np.linalg.norm(query)), 1e-12)
        if exclude is not None:
            similarity = np.where(self.subject_ids == exclude, -np.inf, similarity)
        k = min(k, int(np.isfinite(similarity).sum()))
        best = np.argpartition(-similarity, k - 1)[:k] if k else np.array([], dtype=int)
        best = best[np.argsort(-similarity[best], kind="stable")]
        return [
            {"subject_id": int(self.subject_ids[i]), "similarity": float(similarity[i])}
            for i in best
        ]


def phenotype_clusters(
    embeddings: np.ndarray,
    subject_ids: np.ndarray,
    timelines: Timelines,
    histories: Histories,
    *,
    n_clusters: int = 6,
    outcomes: np.ndarray | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """k-means phenotypes with sizes, defining codes and outcome rates per cluster.

    ``histories`` are the visible histories the embeddings were computed from (one per row);
    ``outcomes`` (optional, boolean per row) gives each cluster's outcome rate with a Wilson CI.
    """
    n = len(embeddings)
    if n < n_clusters:
        raise DataError(f"{n} patients cannot form {n_clusters} clusters")
    model = KMeans(n_clusters=n_clusters, n_init=4, random_state=seed).fit(embeddings)
    assignment = model.labels_
    rows, events = gather(timelines, histories)
    codes, code_id = np.unique(timelines.code[events].astype(str), return_inverse=True)
    has = np.zeros((n, len(codes)), dtype=bool)
    has[rows, code_id] = True
    overall = has.mean(axis=0)
    clusters = []
    for c in range(n_clusters):
        member = assignment == c
        share = has[member].mean(axis=0)
        enough = has[member].sum(axis=0) >= MIN_CODE_PATIENTS
        lift = np.where(enough & (overall > 0), share / np.maximum(overall, 1e-12), 0.0)
        top = np.argsort(-lift, kind="stable")[:DEFINING_CODES]
        entry: dict[str, Any] = {
            "cluster": c,
            "size": int(member.sum()),
            "defining_codes": [
                {"code": str(codes[j]), "share": float(share[j]), "lift": float(lift[j])}
                for j in top
                if lift[j] > 1.0
            ],
            "subject_ids": subject_ids[member].astype(int).tolist(),
        }
        if outcomes is not None:
            k = int(np.asarray(outcomes, bool)[member].sum())
            entry["outcome_rate"] = k / max(int(member.sum()), 1)
            entry["outcome_ci"] = list(wilson_interval(k, int(member.sum())))
        clusters.append(entry)
    clusters.sort(key=lambda e: -e["size"])
    return {"n_clusters": n_clusters, "clusters": clusters, "method": "k-means on embeddings"}
