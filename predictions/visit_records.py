"""Adapting database rows to the engine's records, one featuriser input for training and serving.

A record is ``{"patient_id", "age", "sex", "visit_type", "obs_<LOINC>"..., "chief_complaint",
"history"}`` with observation values in canonical units. Batch building decrypts only the two
free-text columns the features use (and no name, contact or date of birth).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

import pandas as pd
from django.db.models import QuerySet

from visits.models import Diagnosis, Observation, Visit

TEXT_COLUMNS = ["chief_complaint", "history"]
CATEGORICAL_COLUMNS = ["sex", "visit_type"]
OTHER_CLASS = "other"


def observation_column(code: str) -> str:
    return f"obs_{code}"


def visit_record(visit: Visit) -> dict[str, Any]:
    """The engine's input for one visit (uses prefetched observations when present)."""
    record: dict[str, Any] = {
        "patient_id": str(visit.patient_id),
        "age": float(visit.age_years),
        "sex": visit.patient.sex,
        "visit_type": visit.visit_type,
        "chief_complaint": visit.chief_complaint or "",
        "history": visit.history_present_illness or "",
    }
    for obs in visit.observations.all():
        record[observation_column(obs.definition.code)] = obs.value
    return record


def input_hash(record: dict[str, Any], extra: Any = None) -> str:
    """Stable hash of what advice depends on: same inputs + same models = same advice."""
    blob = json.dumps({"record": record, "extra": extra}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def visits_frame(visits: QuerySet[Visit]) -> pd.DataFrame:
    """One row per visit, built with three queries whatever the number of visits."""
    rows = list(
        visits.order_by("pk").values_list(
            "pk",
            "patient_id",
            "age_years",
            "patient__sex",
            "visit_type",
            "chief_complaint",
            "history_present_illness",
        )
    )
    frame = pd.DataFrame(
        rows, columns=["visit_id", "patient_id", "age", "sex", "visit_type", *TEXT_COLUMNS]
    )
    frame["patient_id"] = frame["patient_id"].astype(str)
    frame["age"] = frame["age"].astype(float)
    observations = pd.DataFrame(
        list(
            Observation.objects.filter(visit__in=visits.values("pk")).values_list(
                "visit_id", "definition__code", "value"
            )
        ),
        columns=["visit_id", "code", "value"],
    )
    if not observations.empty:
        wide = observations.pivot_table(
            index="visit_id", columns="code", values="value", aggfunc="last"
        )
        wide.columns = [observation_column(c) for c in wide.columns]
        frame = frame.merge(wide, left_on="visit_id", right_index=True, how="left")
    return frame.set_index("visit_id", drop=False)


def labelled_visits() -> QuerySet[Visit]:
    """Visits the models learn from: a confirmed primary diagnosis, and no confirmed diagnosis
    that originated from advice (a model's suggestion must never teach the next model, even once
    a doctor confirmed it: :func:`advice_labelled_visits` are counted, not learned from)."""
    return (
        Visit.objects.filter(
            diagnoses__rank=Diagnosis.Rank.PRIMARY, diagnoses__status=Diagnosis.Status.CONFIRMED
        )
        .exclude(pk__in=advice_labelled_visits().values("pk"))
        .distinct()
    )


def advice_labelled_visits() -> QuerySet[Visit]:
    """Visits whose confirmed labels include a diagnosis that came from advice."""
    return Visit.objects.filter(
        diagnoses__status=Diagnosis.Status.CONFIRMED, diagnoses__source=Diagnosis.Source.ADVICE
    ).distinct()


def label_provenance(*, used: int) -> dict[str, object]:
    """Where the confirmed labels came from: ``used`` visits labelled by a doctor (those trained
    on), and visits whose labels came from advice a doctor accepted and then confirmed (excluded).
    Counts and visit ids only (no PHI)."""
    advice_ids = sorted(
        Visit.objects.filter(
            pk__in=advice_labelled_visits().values("pk"),
            diagnoses__rank=Diagnosis.Rank.PRIMARY,
            diagnoses__status=Diagnosis.Status.CONFIRMED,
        )
        .distinct()
        .values_list("pk", flat=True)
    )
    total = used + len(advice_ids)
    return {
        "doctor": used,
        "advice": len(advice_ids),
        "advice_share": round(len(advice_ids) / total, 4) if total else 0.0,
        "advice_policy": "excluded",
        "advice_visit_ids": advice_ids,
    }


def differential_labels(
    visit_ids: Iterable[int], *, min_class_visits: int, max_classes: int
) -> pd.Series:
    """ICD-10 category of the confirmed primary diagnosis; rare categories become 'other'."""
    pairs = Diagnosis.objects.filter(
        visit_id__in=list(visit_ids), rank=Diagnosis.Rank.PRIMARY, status=Diagnosis.Status.CONFIRMED
    ).values_list("visit_id", "code")
    labels = pd.Series({visit_id: code[:3] for visit_id, code in pairs}, dtype=object)
    counts = labels.value_counts()
    frequent = set(counts[counts >= min_class_visits].index[:max_classes])
    return labels.where(labels.isin(frequent), OTHER_CLASS)


def is_risk_positive(code: str, positive_prefixes: Iterable[str]) -> bool:
    """The one rule for a risk task's label: the ICD-10 code starts with a configured prefix."""
    return code.startswith(tuple(positive_prefixes))


def risk_labels(visit_ids: Iterable[int], *, positive_prefixes: list[str]) -> pd.Series:
    """1 when any confirmed diagnosis of the visit starts with one of ``positive_prefixes``."""
    visit_ids = list(visit_ids)
    positive = {
        visit_id
        for visit_id, code in Diagnosis.objects.filter(
            visit_id__in=visit_ids, status=Diagnosis.Status.CONFIRMED
        ).values_list("visit_id", "code")
        if is_risk_positive(code, positive_prefixes)
    }
    return pd.Series({v: "1" if v in positive else "0" for v in visit_ids}, dtype=object)
