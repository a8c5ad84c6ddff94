"""Similar past visits: the labelled visits a model sees most alike (a read, for advice).

The index (visit ids, patient ids and the model's probability vectors; no PHI) is written beside
the artifact by training and loaded lazily, verified against its sha256, and cached per process.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import joblib
import numpy as np

from medai_site.errors import AdviceFailed
from predictions.ml.artifacts import file_sha256
from visits.models import Diagnosis

from .payload import SimilarCase, age_band

SIMILAR_CASES = 3


@lru_cache(maxsize=8)
def similar_index(path: str, sha256: str) -> dict[str, Any]:
    if file_sha256(Path(path)) != sha256:
        raise AdviceFailed("The similar-case index failed its integrity check.")
    return joblib.load(path)


def similar_cases(version: Any, vector: np.ndarray, *, exclude_patient: str) -> list[SimilarCase]:
    """Up to three past visits of other patients that the model sees most alike, nearest first,
    each reduced to what the panel shows (:class:`SimilarCase`: no identifier)."""
    meta = version.report.get("similar_cases_index")
    if not meta:
        return []
    index = similar_index(meta["path"], meta["sha256"])
    distances = np.abs(index["vectors"] - vector).sum(axis=1)  # L1 between probability vectors
    distances[index["patient_ids"] == exclude_patient] = np.inf
    nearest = np.argsort(distances, kind="stable")[: SIMILAR_CASES * 3]
    visit_ids = [int(index["visit_ids"][i]) for i in nearest if np.isfinite(distances[i])]
    # One query: the confirmed diagnoses of the candidates, with their visit and sex joined.
    confirmed: dict[int, list[Diagnosis]] = {}
    for diagnosis in (
        Diagnosis.objects.filter(visit_id__in=visit_ids, status=Diagnosis.Status.CONFIRMED)
        .select_related("visit__patient")
        .only(
            "id",
            "code",
            "display",
            "rank",
            "visit",
            "visit__age_years",
            "visit__visit_type",
            "visit__start",
            "visit__patient",
            "visit__patient__sex",
        )
        .order_by("rank", "code")  # Diagnosis' own ordering, as the visit page lists them
    ):
        confirmed.setdefault(diagnosis.visit_id, []).append(diagnosis)
    cases = []
    for i in nearest:
        found = confirmed.get(int(index["visit_ids"][i]))
        if not found:
            continue
        visit = found[0].visit
        # Nothing that identifies the other patient or their visit (possibly outside the
        # viewer's care teams): no id, an age band, the year only (HIPAA Safe Harbor).
        cases.append(
            SimilarCase(
                age_band=age_band(visit.age_years),
                sex=visit.patient.sex,
                year=visit.start.year,
                diagnoses=[f"{d.code} {d.display}" for d in found],
                outcome=visit.visit_type,
            )
        )
        if len(cases) == SIMILAR_CASES:
            break
    return cases
