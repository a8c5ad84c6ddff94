"""Audit reports: "who looked at my record" (per patient) and "what did this account open" (per user).

Read by admins on the audit report page (admin) and exported as CSV; every export is itself
recorded in the trail.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable, Collection

from django import forms
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.db.models import Q, QuerySet
from django.utils import timezone

from .audit import audit_record
from .models import AuditEvent

CSV_COLUMNS = (
    "at",
    "user",
    "action",
    "interface",
    "patient_id",
    "patient_ids",
    "object_type",
    "object_id",
    "request_id",
    "hash",
)


PatientLookup = Callable[[str], int | None]
PatientLabels = Callable[[Collection[int]], dict[int, str]]
# How an MRN names a patient, and how a patient id reads to an admin (its MRN). The patients app
# registers both (PatientsConfig.ready): this base module imports no app (docs/architecture.md).
_patient_lookup: PatientLookup | None = None
_patient_labels: PatientLabels | None = None


def patient_lookup_register(lookup: PatientLookup, labels: PatientLabels | None = None) -> None:
    global _patient_lookup, _patient_labels
    _patient_lookup = lookup
    if labels is not None:
        _patient_labels = labels


def patient_labels(patient_ids: Collection[int]) -> dict[int, str]:
    """``{patient id: MRN}`` for the audit pages (ids of patients since removed are absent)."""
    if _patient_labels is None or not patient_ids:
        return {}
    return _patient_labels(patient_ids)


def _patient_id_for_mrn(mrn: str) -> int | None:
    if _patient_lookup is None:
        raise ImproperlyConfigured("No app registered a patient look-up (is 'patients' installed?)")
    return _patient_lookup(mrn)


class AuditReportForm(forms.Form):
    mrn = forms.CharField(label="Patient MRN", required=False)
    # The admin's patient page links here by id (an MRN would put an identifier in the URL).
    patient = forms.IntegerField(
        label="Patient id", required=False, min_value=1, max_value=2**63 - 1
    )
    username = forms.CharField(label="User name", required=False)
    date_from = forms.DateField(
        label="From", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        label="To (inclusive)", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )

    def clean(self) -> dict:
        data = super().clean()
        if not data.get("mrn") and not data.get("patient") and not data.get("username"):
            raise forms.ValidationError("Give a patient MRN, a user name, or both.")
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            raise forms.ValidationError("'From' is after 'To'.")
        return data


def audit_events_for(
    *,
    mrn: str = "",
    patient: int | None = None,
    username: str = "",
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
) -> QuerySet[AuditEvent]:
    events = AuditEvent.objects.select_related("actor").order_by("at", "id")
    if mrn:
        patient_id = _patient_id_for_mrn(mrn)
        if patient is not None and patient_id != patient:
            patient_id = None  # an MRN and an id naming two patients: nobody's report
        events = events.filter(_about_patient(patient_id)) if patient_id else events.none()
    elif patient is not None:
        events = events.filter(_about_patient(patient))
    if username:
        events = events.filter(actor__username=username.strip())
    tz = timezone.get_current_timezone()
    if date_from:
        events = events.filter(at__gte=dt.datetime.combine(date_from, dt.time.min, tzinfo=tz))
    if date_to:
        events = events.filter(
            at__lt=dt.datetime.combine(date_to + dt.timedelta(days=1), dt.time.min, tzinfo=tz)
        )
    return events


def _about_patient(patient_id: int) -> Q:
    """The patient's own records and every list record that showed them."""
    if connection.vendor == "postgresql":
        return Q(patient_id=patient_id) | Q(patient_ids__contains=[patient_id])
    # SQLite (the local profile) has no JSON containment: find the list records in Python.
    listed = [
        pk
        for pk, ids in AuditEvent.objects.filter(action=AuditEvent.Action.LIST).values_list(
            "pk", "patient_ids"
        )
        if patient_id in (ids or [])
    ]
    return Q(patient_id=patient_id) | Q(pk__in=listed)


def audit_csv(events: QuerySet[AuditEvent], *, exported_by: object) -> str:
    """The events as CSV; the export is recorded as an EXPORT event per patient it covers."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    patients = set()
    for e in events.iterator():
        patients.add(e.patient_id)
        writer.writerow(
            [
                e.at.isoformat(),
                e.actor.get_username() if e.actor else "",
                e.action,
                e.interface,
                e.patient_id or "",
                " ".join(str(i) for i in e.patient_ids or []),
                e.object_type,
                e.object_id,
                e.request_id,
                e.hash,
            ]
        )
    for patient_id in sorted(p for p in patients if p is not None) or [None]:
        audit_record(
            actor=exported_by,
            action=AuditEvent.Action.EXPORT,
            patient_id=patient_id,
            object_type="medai_site.auditevent",
            object_id="report",
        )
    return buffer.getvalue()
