"""Every read of patients, scoped to what the viewer may see (patients.access)."""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Collection
from typing import Any

from django.contrib.postgres.expressions import ArraySubquery
from django.db import connection
from django.db.models import OuterRef, Q, QuerySet
from django.db.models.functions import JSONObject
from django.utils import timezone

from medai_site.audit import audit_record
from medai_site.blind_index import blind_index, normalise
from medai_site.compiled_query import CompiledQuery
from medai_site.errors import NotFound
from medai_site.models import AuditEvent
from medai_site.roles import is_admin

from .access import (
    ADMIN,
    CLIENT,
    DOCTOR,
    NO_ACCESS,
    access_kind,
    care_team_member,
    patients_visible_to,
    visible_patients,
)
from .break_glass import emergency_grant
from .models import MRN_INPUT_PATTERN, Allergy, CareTeam, Patient, normalise_mrn

_MRN_LIKE = re.compile(MRN_INPUT_PATTERN)


def patient_list(*, viewer: object, query: str | None = None) -> QuerySet[Patient]:
    if query:
        return patient_search(viewer=viewer, query=query)
    return visible_patients(viewer).prefetch_related("allergies")


def patient_search(*, viewer: object, query: str) -> QuerySet[Patient]:
    """Exact search by MRN, full/given/family name, phone or national id, via blind indexes.

    Candidates found through an index are decrypted and compared with the query, so an index
    collision can never return the wrong patient.
    """
    text = (query or "").strip()
    if not text:
        return Patient.objects.none()
    conditions = Q()
    if _MRN_LIKE.match(text):
        conditions |= Q(mrn=text.upper())
    if mrn_number := _mrn_number_pattern(text):
        conditions |= Q(mrn__regex=mrn_number)
    name_digest = blind_index(text, "name")
    conditions |= (
        Q(name_bidx=name_digest) | Q(given_name_bidx=name_digest) | Q(family_name_bidx=name_digest)
    )
    if phone_digest := blind_index(text, "phone"):
        conditions |= Q(phone_bidx=phone_digest)
    if id_digest := blind_index(text, "national_id"):
        conditions |= Q(national_id_bidx=id_digest)

    candidates = list(visible_patients(viewer).filter(conditions)[:200])
    confirmed = [p.pk for p in candidates if _matches(p, text)]
    for patient_id in confirmed:
        audit_record(actor=viewer, action=AuditEvent.Action.SEARCH_HIT, patient_id=patient_id)
    return Patient.objects.filter(pk__in=confirmed).prefetch_related("allergies")


def _mrn_number_pattern(text: str) -> str:
    """Digits alone find the MRN with that number: "1234" finds MRN00001234 and A-1234.

    The MRN's letter (and hyphen) prefix and leading zeros may be left out; the number itself must
    be whole, so "1234" does not find MRN00011234.
    """
    if not (text.isascii() and text.isdigit()) or len(text) > 32:
        return ""
    number = text.lstrip("0")
    return f"^[A-Z-]*0*{number}$" if number else ""


def _matches(patient: Patient, text: str) -> bool:
    if patient.mrn == text.upper():
        return True
    if (pattern := _mrn_number_pattern(text)) and re.match(pattern, patient.mrn):
        return True
    name = normalise(text, "name")
    if name in {
        normalise(patient.full_name, "name"),
        normalise(patient.given_name, "name"),
        normalise(patient.family_name, "name"),
    }:
        return True
    phone = normalise(text, "phone")
    if phone and phone == normalise(patient.phone, "phone"):
        return True
    national_id = normalise(text, "national_id")
    return bool(national_id) and national_id == normalise(patient.national_id, "national_id")


def patient_get(*, viewer: object, patient_id: int, audit: bool = True) -> Patient:
    patient = _patient_read(viewer, patient_id)
    if patient is None:
        audit_record(
            actor=viewer,
            action=AuditEvent.Action.DENIED,
            patient_id=_as_int(patient_id),
            object_type="patients.patient",
            object_id=str(patient_id)[:64],
        )
        raise NotFound("Patient not found.")
    _attach_related_rows(patient)
    # Read by the patient banner on every page of the chart (patients/_banner.html).
    patient.emergency_grant = emergency_grant(
        viewer=viewer, patient_id=patient.pk, in_care_team=patient.viewer_in_care_team
    )
    if audit:
        audit_record(
            actor=viewer, action=AuditEvent.Action.VIEW, obj=patient, patient_id=patient.pk
        )
    return patient


def _patient_read_queryset(
    kind: str, viewer_id: int | None, patient_id: int, now: dt.datetime
) -> QuerySet[Patient]:
    """The scoped read of one patient: the access rule of ``kind`` (patients.access), whether
    the viewer is in the patient's care team, and the allergies and care teams."""
    return (
        _with_allergies_and_care_teams(
            patients_visible_to(kind, viewer_id=viewer_id, now=now).annotate(
                viewer_in_care_team=care_team_member(viewer_id)
            )
        )
        .filter(pk=patient_id)
        .order_by()  # one row: no sort, as QuerySet.get()
    )


# The same queryset compiled once per access kind and process (medai_site.compiled_query):
# building and compiling it was about half of a patient read's Python time.
PATIENT_READS = {
    kind: CompiledQuery(
        functools.partial(_patient_read_queryset, kind), parameters=(int, int, dt.datetime)
    )
    for kind in (ADMIN, CLIENT, DOCTOR)
}


def _patient_read(viewer: object, patient_id: object) -> Patient | None:
    """The patient if ``viewer`` may see it, else None (an id that is no id included)."""
    kind = access_kind(viewer)
    if kind == NO_ACCESS:
        return None
    viewer_id = getattr(viewer, "pk", None)
    now = timezone.now()
    try:
        number = int(patient_id)  # type: ignore[call-overload]  # any id-like value, as the ORM takes
    except (ValueError, TypeError):
        return None
    if connection.vendor != "postgresql":  # SQLite (local profile): prefetches, no JSON arrays
        return _patient_read_queryset(kind, viewer_id, number, now).first()
    try:
        return PATIENT_READS[kind].first(viewer_id, number, now)
    except ValueError:  # an id past bigint: no such patient
        return None


# One patient's allergies and care teams read in the patient's own statement (PostgreSQL arrays
# of JSON rows), instead of two prefetch queries: two round trips fewer on every chart, patient
# read and visit create. Elsewhere (SQLite, local profile) the prefetches.
_ALLERGY_FIELDS = ("id", "patient_id", "substance", "reaction", "severity", "recorded_at")


def _with_allergies_and_care_teams(patients: QuerySet[Patient]) -> QuerySet[Patient]:
    if connection.vendor != "postgresql":
        return patients.prefetch_related("allergies", "care_teams")
    allergies = (
        Allergy.objects.filter(patient_id=OuterRef("pk"))
        .order_by(*Allergy._meta.ordering, "pk")
        .values(row=JSONObject(**{name: name for name in _ALLERGY_FIELDS}))
    )
    teams = (
        Patient.care_teams.through.objects.filter(patient_id=OuterRef("pk"))
        .order_by("careteam__name", "careteam_id")
        .values(row=JSONObject(id="careteam_id", name="careteam__name"))
    )
    return patients.annotate(
        allergy_rows=ArraySubquery(allergies), care_team_rows=ArraySubquery(teams)
    )


def _attach_related_rows(patient: Patient) -> None:
    """Turn the annotated rows into ``patient.allergies.all()`` / ``care_teams.all()`` results,
    as ``prefetch_related`` would have cached them (values converted by each model field, the
    reaction decrypted by its field)."""
    if not hasattr(patient, "allergy_rows"):
        return  # prefetched
    allergy_fields = [Allergy._meta.get_field(name) for name in _ALLERGY_FIELDS]
    allergies = [
        Allergy.from_db(
            patient._state.db,
            list(_ALLERGY_FIELDS),
            [
                _from_json(field, row[name])
                for name, field in zip(_ALLERGY_FIELDS, allergy_fields, strict=True)
            ],
        )
        for row in patient.allergy_rows
    ]
    teams = [
        CareTeam.from_db(patient._state.db, ["id", "name"], [row["id"], row["name"]])
        for row in patient.care_team_rows
    ]
    del patient.allergy_rows, patient.care_team_rows
    cache = patient.__dict__.setdefault("_prefetched_objects_cache", {})
    for relation, rows in (("allergies", allergies), ("care_teams", teams)):
        queryset = getattr(patient, relation).all()
        queryset._result_cache = rows
        queryset._prefetch_done = True
        cache[relation] = queryset


def _from_json(field: Any, value: Any) -> Any:
    """A value of a JSON row as the field would have read it from its own column."""
    if value is None:
        return None
    if hasattr(field, "from_db_value"):  # encrypted fields: the stored token, decrypted
        return field.from_db_value(value, None, connection)
    return field.to_python(value)


def _as_int(value: object) -> int | None:
    """The id for the audit row, or None when it is no id the column could hold."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    # An id past bigint (e.g. a fuzzed URL) would make the audit INSERT itself fail with a 500.
    return number if -(2**63) <= number < 2**63 else None


def care_teams_registrable(*, viewer: object) -> QuerySet[CareTeam]:
    """The care teams ``viewer`` may register a patient into: a doctor their own, an admin any."""
    if is_admin(viewer):
        return CareTeam.objects.all()
    if not getattr(viewer, "is_authenticated", False):
        return CareTeam.objects.none()
    return CareTeam.objects.filter(members=viewer)


def patient_id_for_mrn(mrn: str) -> int | None:
    """The id of the patient an MRN names (typed in any case), or None: the audit report's
    look-up (medai_site.audit_report), registered in ``PatientsConfig.ready``. Unscoped and
    unaudited on purpose: only audit-trail readers (hospital admins) reach it, it reveals no
    record, and the report it serves is itself audited when exported."""
    return Patient.objects.filter(mrn=normalise_mrn(mrn)).values_list("pk", flat=True).first()


def patient_mrns(patient_ids: Collection[int]) -> dict[int, str]:
    """``{id: MRN}``: how the audit pages name patients (medai_site.audit_report), registered in
    ``PatientsConfig.ready``. Unscoped and unaudited for the same reason as
    :func:`patient_id_for_mrn`: only audit-trail readers reach it, and an MRN is no record."""
    return dict(Patient.objects.filter(pk__in=list(patient_ids)).values_list("pk", "mrn"))
