"""Every read of visits, scoped through the patient's care teams."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Sequence

from django.db import connection
from django.db.models import Prefetch, QuerySet

from medai_site.audit import audit_record
from medai_site.encrypted_fields import encrypted_fields_of
from medai_site.errors import NotFound
from medai_site.models import AuditEvent
from patients.access import in_care_team, visible_patients
from patients.break_glass import emergency_grant

from .models import Diagnosis, Observation, ObservationDefinition, Visit


def visible_visits(viewer: object) -> QuerySet[Visit]:
    return Visit.objects.filter(patient__in=visible_patients(viewer).values("pk"))


def visit_list(
    *,
    viewer: object,
    patient_id: int | None = None,
    visit_type: str | None = None,
    status: str | None = None,
    start_from: dt.datetime | None = None,
    start_to: dt.datetime | None = None,
) -> QuerySet[Visit]:
    visits = visible_visits(viewer).select_related("patient", "attending")
    if patient_id is not None:
        visits = visits.filter(patient_id=patient_id)
    if visit_type:
        visits = visits.filter(visit_type=visit_type)
    if status:
        visits = visits.filter(status=status)
    if start_from:
        visits = visits.filter(start__gte=start_from)
    if start_to:
        visits = visits.filter(start__lt=start_to)
    return visits


def visit_get(
    *,
    viewer: object,
    visit_id: int,
    audit: bool = True,
    defer_patient_fields: Sequence[str] = (),
) -> Visit:
    """One visit with its observations, diagnoses, patient and allergies.

    ``defer_patient_fields``: patient columns the caller will not show (e.g. the API's visit
    detail defers contact data), so their ciphertext is not decrypted.
    """
    try:
        visit = (
            visible_visits(viewer)
            .annotate(viewer_in_care_team=in_care_team(viewer, "patient_id"))
            .select_related("patient", "attending")
            .defer(*(f"patient__{name}" for name in defer_patient_fields))
            .prefetch_related(
                Prefetch("observations", queryset=Observation.objects.select_related("definition")),
                Prefetch(
                    "diagnoses",
                    queryset=Diagnosis.objects.select_related("recorded_by", "confirmed_by"),
                ),
                "patient__allergies",
            )
            .get(pk=visit_id)
        )
    except (Visit.DoesNotExist, ValueError, TypeError):
        audit_record(
            actor=viewer,
            action=AuditEvent.Action.DENIED,
            object_type="visits.visit",
            object_id=str(visit_id),
        )
        raise NotFound("Visit not found.") from None
    # Read by the patient banner on every page of the chart (patients/_banner.html).
    visit.patient.emergency_grant = emergency_grant(
        viewer=viewer, patient_id=visit.patient_id, in_care_team=visit.viewer_in_care_team
    )
    # Who this copy was scoped for: a selector handed the visit back (advice_state) reuses it
    # only for the same viewer, and fetches it again, scoped, for anyone else.
    visit.scoped_for_user_id = getattr(viewer, "pk", None)
    if audit:
        audit_record(
            actor=viewer, action=AuditEvent.Action.VIEW, obj=visit, patient_id=visit.patient_id
        )
    return visit


def problem_list(*, viewer: object, patient_id: int) -> QuerySet[Diagnosis]:
    """The patient's confirmed diagnoses, newest first, each with its visit's date (the visit's
    free text is left encrypted: a long history would decrypt every past visit's notes)."""
    return (
        Diagnosis.objects.filter(
            visit__patient_id=patient_id,
            visit__patient__in=visible_patients(viewer).values("pk"),
            status=Diagnosis.Status.CONFIRMED,
        )
        .select_related("visit")
        .defer(*(f"visit__{f.name}" for f in encrypted_fields_of(Visit)))
        .order_by("-visit__start")
    )


def observation_definitions() -> QuerySet[ObservationDefinition]:
    return ObservationDefinition.objects.all()


# The catalogue changes only through a data migration (visits/catalogue.py; read-only in the
# admin), that is with a deploy, so each process keeps it instead of reading the rows again for
# every visit saved. The time limit bounds how long a process outliving a migration may use the
# old rows; tests start each from the database (tests/conftest.py).
CATALOGUE_CACHE_SECONDS = 300.0
_catalogue: dict[str, ObservationDefinition] = {}
_catalogue_key: tuple[str, float] | None = None
_catalogue_lock = threading.Lock()


def observation_definitions_by_code() -> dict[str, ObservationDefinition]:
    """Every catalogue row by code: one query per process and database every few minutes.

    The rows are shared by the process's threads and must be treated as read-only.
    """
    global _catalogue, _catalogue_key
    now = time.monotonic()
    database = str(connection.settings_dict["NAME"])
    key = _catalogue_key
    if key is not None and key[0] == database and now - key[1] < CATALOGUE_CACHE_SECONDS:
        return _catalogue
    with _catalogue_lock:
        key = _catalogue_key
        if key is None or key[0] != database or now - key[1] >= CATALOGUE_CACHE_SECONDS:
            _catalogue = {d.code: d for d in ObservationDefinition.objects.all()}
            _catalogue_key = (database, now)
    return _catalogue


def observation_definitions_forget() -> None:
    """The next :func:`observation_definitions_by_code` reads the database (tests, deploys)."""
    global _catalogue_key
    _catalogue_key = None
