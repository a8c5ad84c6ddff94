"""The FHIR read API's reads: scoped to what the viewer may see, and every one audited.

Scope is the selectors' rule (``patients.access.visible_patients``): a resource of a patient
outside the viewer's care teams does not exist for them (a read is "not found", a search leaves
it out). Each resource returned is one VIEW record in the audit trail (patient, type, id), written
for exactly the page returned; a read that finds nothing in scope is a DENIED record.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db.models import F, Q, QuerySet

from medai_site.audit import audit_record, audit_record_many
from medai_site.errors import NotFound
from medai_site.models import AuditEvent
from patients.access import visible_patients
from patients.models import Allergy, Patient, normalise_mrn
from predictions.models import Advice
from visits.models import Diagnosis, Observation, Visit

from . import fhir_out
from .models import SourceCondition

DateBound = tuple[str, dt.datetime, dt.datetime]  # prefix, start of the value, end (exclusive)


@dataclass(frozen=True)
class Search:
    """A parsed search (the view parses and rejects what it does not understand)."""

    ids: tuple[int, ...] = ()
    patient_ids: tuple[int, ...] = ()
    encounter_ids: tuple[int, ...] = ()
    identifiers: tuple[tuple[str | None, str], ...] = ()  # (system or None, value)
    codes: tuple[tuple[str | None, str], ...] = ()
    dates: tuple[DateBound, ...] = ()
    categories: tuple[str, ...] = ()
    has: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SearchPage:
    resources: list[dict[str, Any]]
    total: int


@dataclass(frozen=True)
class _Kind:
    label: str  # the audit record's object type
    queryset: Callable[[object], QuerySet[Any]]
    to_fhir: Callable[[Any], dict[str, Any]]
    patient_of: Callable[[Any], int]
    date_field: str = ""


def _visible_ids(viewer: object) -> QuerySet[Patient]:
    return visible_patients(viewer).values("pk")


def _patients(viewer: object) -> QuerySet[Patient]:
    return visible_patients(viewer).order_by("pk")


def _encounters(viewer: object) -> QuerySet[Visit]:
    return Visit.objects.filter(patient__in=_visible_ids(viewer)).order_by("pk")


def _observations(viewer: object) -> QuerySet[Observation]:
    return (
        Observation.objects.filter(visit__patient__in=_visible_ids(viewer))
        .select_related("definition")
        .annotate(subject_id=F("visit__patient_id"))
        .order_by("pk")
    )


def _conditions(viewer: object) -> QuerySet[Diagnosis]:
    return (
        Diagnosis.objects.filter(visit__patient__in=_visible_ids(viewer))
        .annotate(subject_id=F("visit__patient_id"))
        .order_by("pk")
    )


def _allergies(viewer: object) -> QuerySet[Allergy]:
    return Allergy.objects.filter(patient__in=_visible_ids(viewer)).order_by("pk")


def _risk_assessments(viewer: object) -> QuerySet[Advice]:
    return (
        Advice.objects.filter(visit__patient__in=_visible_ids(viewer))
        .annotate(subject_id=F("visit__patient_id"))
        .prefetch_related("model_versions")
        .order_by("pk")
    )


def _risk_assessment(advice: Advice) -> dict[str, Any]:
    basis = getattr(advice, "fhir_basis", None)
    if basis is None:
        basis = list(
            Observation.objects.filter(visit_id=advice.visit_id)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
    return fhir_out.risk_assessment_resource(advice, basis)


KINDS: dict[str, _Kind] = {
    "Patient": _Kind("patients.patient", _patients, fhir_out.patient_resource, lambda p: p.pk),
    "Encounter": _Kind(
        "visits.visit", _encounters, fhir_out.encounter_resource, lambda v: v.patient_id, "start"
    ),
    "Observation": _Kind(
        "visits.observation",
        _observations,
        fhir_out.observation_resource,
        lambda o: o.subject_id,
        "recorded_at",
    ),
    "Condition": _Kind(
        "visits.diagnosis",
        _conditions,
        fhir_out.condition_resource,
        lambda d: d.subject_id,
        "created_at",
    ),
    "AllergyIntolerance": _Kind(
        "patients.allergy",
        _allergies,
        fhir_out.allergy_resource,
        lambda a: a.patient_id,
        "recorded_at",
    ),
    "RiskAssessment": _Kind(
        "predictions.advice",
        _risk_assessments,
        _risk_assessment,
        lambda a: a.subject_id,
        "created_at",
    ),
}
RESOURCE_TYPES = tuple(KINDS)


def _audit_shown(viewer: object, kind: _Kind, rows: Sequence[Any]) -> None:
    audit_record_many(
        actor=viewer,
        action=AuditEvent.Action.VIEW,
        patient_ids=[kind.patient_of(row) for row in rows],
        object_type=kind.label,
        object_ids=[row.pk for row in rows],
    )


def fhir_read(*, viewer: object, resource_type: str, resource_id: str) -> dict[str, Any]:
    """One resource by id; NotFound (audited as DENIED) when absent or outside the scope."""
    kind = KINDS[resource_type]
    row = None
    if resource_type == "Condition" and resource_id.startswith("source-"):
        return _source_condition_read(viewer, resource_id)
    if resource_id.isdigit() and len(resource_id) <= 18:  # a bigint; anything else is no id
        row = kind.queryset(viewer).filter(pk=int(resource_id)).first()
    if row is None:
        audit_record(
            actor=viewer,
            action=AuditEvent.Action.DENIED,
            object_type=kind.label,
            object_id=resource_id[:64],
        )
        raise NotFound(f"{resource_type}/{resource_id[:64]} is not known to this server.")
    _audit_shown(viewer, kind, [row])
    return kind.to_fhir(row)


def _filtered(kind_name: str, queryset: QuerySet[Any], search: Search) -> QuerySet[Any]:
    kind = KINDS[kind_name]
    if search.ids:
        queryset = queryset.filter(pk__in=search.ids)
    if search.patient_ids:
        field_name = {
            "Patient": "pk",
            "Encounter": "patient_id",
            "AllergyIntolerance": "patient_id",
        }.get(kind_name, "visit__patient_id")
        queryset = queryset.filter(**{f"{field_name}__in": search.patient_ids})
    if search.encounter_ids:
        queryset = queryset.filter(visit_id__in=search.encounter_ids)
    if search.identifiers:
        queryset = queryset.filter(_identifier_q(search.identifiers))
    if search.codes:
        queryset = queryset.filter(_code_q(kind_name, search.codes))
    if search.categories:
        queryset = queryset.filter(definition__category__in=search.categories)
    for prefix, start, end in search.dates:
        queryset = queryset.filter(_date_q(kind.date_field, prefix, start, end))
    return queryset


def _identifier_q(identifiers: Sequence[tuple[str | None, str]]) -> Q:
    from medai_site.blind_index import blind_index

    condition = Q(pk__in=[])
    for system, value in identifiers:
        if system in (None, "", fhir_out.mrn_system()):
            condition |= Q(mrn=normalise_mrn(value))
        if system in (None, "", fhir_out.national_id_system()) and (
            digest := blind_index(value, "national_id")
        ):
            condition |= Q(national_id_bidx=digest)
    return condition


def _code_q(kind_name: str, codes: Sequence[tuple[str | None, str]]) -> Q:
    condition = Q(pk__in=[])
    for system, code in codes:
        if kind_name == "Observation" and system in (None, "", fhir_out.LOINC):
            condition |= Q(definition__code=code)
        elif kind_name == "Condition" and system in (None, "", fhir_out.ICD10):
            condition |= Q(code=code.replace(".", "").upper()) | Q(code=code.upper())
    return condition


def _date_q(field_name: str, prefix: str, start: dt.datetime, end: dt.datetime) -> Q:
    return {
        "eq": Q(**{f"{field_name}__gte": start, f"{field_name}__lt": end}),
        "ne": ~Q(**{f"{field_name}__gte": start, f"{field_name}__lt": end}),
        "ge": Q(**{f"{field_name}__gte": start}),
        "gt": Q(**{f"{field_name}__gte": end}),
        "le": Q(**{f"{field_name}__lt": end}),
        "lt": Q(**{f"{field_name}__lt": start}),
    }[prefix]


def fhir_search(
    *, viewer: object, resource_type: str, search: Search, offset: int, count: int
) -> SearchPage:
    """One page of a search, in id order; the resources on it are audited, the rest are not."""
    kind = KINDS[resource_type]
    queryset = _filtered(resource_type, kind.queryset(viewer), search)
    total = queryset.count()
    rows = list(queryset[offset : offset + count]) if count else []
    if resource_type == "RiskAssessment":
        _attach_basis(rows)
    _audit_shown(viewer, kind, rows)
    return SearchPage(resources=[kind.to_fhir(row) for row in rows], total=total)


def _attach_basis(advice_rows: Sequence[Advice]) -> None:
    basis: dict[int, list[int]] = {}
    for visit_id, pk in (
        Observation.objects.filter(visit_id__in={a.visit_id for a in advice_rows})
        .order_by("pk")
        .values_list("visit_id", "pk")
    ):
        basis.setdefault(visit_id, []).append(pk)
    for advice in advice_rows:
        advice.fhir_basis = basis.get(advice.visit_id, [])  # type: ignore[attr-defined]


def fhir_everything(*, viewer: object, patient_id: str) -> list[dict[str, Any]]:
    """Patient/$everything: the patient and every resource of theirs MedAI serves, audited."""
    patient = fhir_read(viewer=viewer, resource_type="Patient", resource_id=patient_id)
    pk = int(patient["id"])
    resources = [patient]
    search = Search(patient_ids=(pk,))
    for name in ("Encounter", "Observation", "Condition", "AllergyIntolerance", "RiskAssessment"):
        kind = KINDS[name]
        rows = list(_filtered(name, kind.queryset(viewer), search))
        if name == "RiskAssessment":
            _attach_basis(rows)
        _audit_shown(viewer, kind, rows)
        resources.extend(kind.to_fhir(row) for row in rows)
        if name == "Condition":
            kept = list(SourceCondition.objects.filter(patient_id=pk).order_by("pk"))
            _audit_shown(viewer, _SOURCE_CONDITION, kept)
            resources.extend(fhir_out.source_condition_resource(c) for c in kept)
    return resources


_SOURCE_CONDITION = _Kind(
    "interop.sourcecondition",
    lambda viewer: SourceCondition.objects.filter(patient__in=_visible_ids(viewer)),
    fhir_out.source_condition_resource,
    lambda c: c.patient_id,
)


def _source_condition_read(viewer: object, resource_id: str) -> dict[str, Any]:
    number = resource_id.removeprefix("source-")
    row = None
    if number.isdigit() and len(number) <= 18:
        row = _SOURCE_CONDITION.queryset(viewer).filter(pk=int(number)).first()
    if row is None:
        audit_record(
            actor=viewer,
            action=AuditEvent.Action.DENIED,
            object_type=_SOURCE_CONDITION.label,
            object_id=resource_id[:64],
        )
        raise NotFound(f"Condition/{resource_id[:64]} is not known to this server.")
    _audit_shown(viewer, _SOURCE_CONDITION, [row])
    return fhir_out.source_condition_resource(row)


def fhir_record_export(*, viewer: object, patient_id: int) -> list[dict[str, Any]]:
    """The chart's record download: ``$everything`` (each resource audited as viewed) plus one
    EXPORT record for the patient, so the audit trail says the record left MedAI."""
    resources = fhir_everything(viewer=viewer, patient_id=str(patient_id))
    audit_record(
        actor=viewer,
        action=AuditEvent.Action.EXPORT,
        patient_id=int(patient_id),
        object_type="patients.patient",
        object_id=str(patient_id),
    )
    return resources
