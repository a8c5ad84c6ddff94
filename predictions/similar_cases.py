"""Similar past visits: the labelled visits a model sees most alike (a read, for advice).

The index (visit ids, patient ids and the model's probability vectors; no PHI) is written beside
the artifact by training and loaded lazily, verified against its sha256, and cached per process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from django.db import connection

from medai_site.errors import AdviceFailed
from patients.models import Patient
from predictions.ml.artifacts import file_sha256
from visits.models import Diagnosis, Visit

from .payload import SimilarCase, age_band

SIMILAR_CASES = 3


@dataclass
class _Candidate:
    """A candidate visit as the panel needs it: its confirmed diagnoses, visit and sex."""

    age_years: int
    sex: str
    year: int
    visit_type: str
    diagnoses: list[str] = field(default_factory=list)


@lru_cache(maxsize=8)
def similar_index(path: str, sha256: str) -> dict[str, Any]:
    if file_sha256(Path(path)) != sha256:
        raise AdviceFailed("The similar-case index failed its integrity check.")
    return joblib.load(path)


def similar_cases(version: Any, vector: np.ndarray, *, exclude_patient: str) -> list[SimilarCase]:
    """Up to three past visits of other patients that the model sees most alike, nearest first,
    each reduced to what the panel shows (:class:`SimilarCase`: no identifier)."""
    return similar_cases_many([(version, vector, exclude_patient)])[0]


def similar_cases_many(
    searches: list[tuple[Any, np.ndarray, str]],
) -> list[list[SimilarCase]]:
    """:func:`similar_cases` for several visits (version, probability vector, patient to leave
    out), in order: the candidates' diagnoses in one statement for all (an advice batch)."""
    nearest_each = [_nearest(version, vector, exclude) for version, vector, exclude in searches]
    confirmed = _confirmed_diagnoses(
        list(dict.fromkeys(v for nearest in nearest_each for v in nearest))
    )
    return [_cases(nearest, confirmed) for nearest in nearest_each]


def _nearest(version: Any, vector: np.ndarray, exclude_patient: str) -> list[int]:
    """The candidates' visit ids, nearest first (three times as many as shown: some have no
    confirmed diagnosis)."""
    meta = version.report.get("similar_cases_index")
    if not meta:
        return []
    index = similar_index(meta["path"], meta["sha256"])
    distances = np.abs(index["vectors"] - vector).sum(axis=1)  # L1 between probability vectors
    distances[index["patient_ids"] == exclude_patient] = np.inf
    nearest = np.argsort(distances, kind="stable")[: SIMILAR_CASES * 3]
    return [int(index["visit_ids"][i]) for i in nearest if np.isfinite(distances[i])]


def _cases(nearest: list[int], confirmed: dict[int, _Candidate]) -> list[SimilarCase]:
    cases = []
    for visit_id in nearest:
        found = confirmed.get(visit_id)
        if not found:
            continue
        # Nothing that identifies the other patient or their visit (possibly outside the
        # viewer's care teams): no id, an age band, the year only (HIPAA Safe Harbor).
        cases.append(
            SimilarCase(
                age_band=age_band(found.age_years),
                sex=found.sex,
                year=found.year,
                diagnoses=found.diagnoses,
                outcome=found.visit_type,
            )
        )
        if len(cases) == SIMILAR_CASES:
            break
    return cases


@lru_cache(maxsize=1)
def _confirmed_sql() -> str:
    """The candidates' confirmed diagnoses with their visit and sex: one statement written once
    per process. Built by the ORM it cost the advice worker more CPU (compiling the joins on
    every advice) than the rest of the similar-case search (tests/bench/
    bench_advice_throughput.py); the tables and columns still come from the models."""
    d, v, p = Diagnosis._meta, Visit._meta, Patient._meta
    q = connection.ops.quote_name

    def col(meta: Any, name: str) -> str:
        return q(meta.get_field(name).column)

    # Only table and column names from the models are interpolated; values are parameters.
    return (
        f"SELECT d.{col(d, 'visit')}, d.{col(d, 'code')}, "  # noqa: S608  # nosec B608  # names only
        f"d.{col(d, 'display')}, "
        f"v.{col(v, 'age_years')}, v.{col(v, 'visit_type')}, v.{col(v, 'start')}, "
        f"p.{col(p, 'sex')} "
        f"FROM {q(d.db_table)} d "
        f"JOIN {q(v.db_table)} v ON v.{q(v.pk.column)} = d.{col(d, 'visit')} "
        f"JOIN {q(p.db_table)} p ON p.{q(p.pk.column)} = v.{col(v, 'patient')} "
        f"WHERE d.{col(d, 'visit')} = ANY(%s) AND d.{col(d, 'status')} = %s "
        # Diagnosis' own ordering, as the visit page lists them.
        f"ORDER BY d.{col(d, 'rank')}, d.{col(d, 'code')}"
    )


def _confirmed_diagnoses(visit_ids: list[int]) -> dict[int, _Candidate]:
    """One query: the confirmed diagnoses of the candidates, by visit id."""
    confirmed: dict[int, _Candidate] = {}
    if not visit_ids:
        return confirmed
    if connection.vendor != "postgresql":
        # The local profile's SQLite: no arrays, and its datetimes need Django's converters.
        return _confirmed_diagnoses_orm(visit_ids)
    with connection.cursor() as cursor:
        cursor.execute(_confirmed_sql(), [visit_ids, Diagnosis.Status.CONFIRMED.value])
        for visit_id, code, display, age_years, visit_type, start, sex in cursor.fetchall():
            # The connection's time zone is UTC, as the ORM's: the same year.
            confirmed.setdefault(
                visit_id, _Candidate(age_years, sex, start.year, visit_type)
            ).diagnoses.append(f"{code} {display}")
    return confirmed


def _confirmed_diagnoses_orm(visit_ids: list[int]) -> dict[int, _Candidate]:
    """The same through the ORM (any database; tests hold the statement above to it)."""
    confirmed: dict[int, _Candidate] = {}
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
        .order_by("rank", "code")
    ):
        visit = diagnosis.visit
        confirmed.setdefault(
            visit.pk,
            _Candidate(visit.age_years, visit.patient.sex, visit.start.year, visit.visit_type),
        ).diagnoses.append(f"{diagnosis.code} {diagnosis.display}")
    return confirmed
