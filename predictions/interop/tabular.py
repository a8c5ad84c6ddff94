"""CSV/Excel import in the admin (django-import-export), written through the services.

Two resources: **patients** (one row per patient, identified by MRN: new MRNs are registered with
``patient_create``, known ones updated with ``patient_update``) and **visits** (one row per visit:
the patient's MRN, start, type, status, chief complaint, and one column per catalogue
observation, named by its LOINC code or an alias such as ``heart_rate``; created with
``visits_bulk_import``, so values are converted and impossible ones refused exactly as on the
pages; a visit of the same patient and start is left as it is). Column names are matched
loosely (case, spaces, a few common spellings: ``DOB``, ``gender``...). The admin's preview is a
dry run in a transaction that is rolled back; every refusal is a row-level error, never a
traceback.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.exceptions import ValidationError
from django.utils import timezone
from import_export import fields, resources, widgets

from medai_site.errors import DomainError
from patients.models import CareTeam, Patient, normalise_mrn
from patients.services import patient_create, patient_update
from visits.catalogue import CATALOGUE
from visits.models import Visit
from visits.services import ObservationInput, VisitImport, visits_bulk_import

from .models import PatientRow, VisitRow

PATIENT_COLUMNS = {
    "mrn": "mrn",
    "medical_record_number": "mrn",
    "given_name": "given_name",
    "first_name": "given_name",
    "given": "given_name",
    "family_name": "family_name",
    "last_name": "family_name",
    "surname": "family_name",
    "birth_date": "birth_date",
    "date_of_birth": "birth_date",
    "dob": "birth_date",
    "birthdate": "birth_date",
    "sex": "sex",
    "gender": "sex",
    "phone": "phone",
    "telephone": "phone",
    "email": "email",
    "address": "address",
    "national_id": "national_id",
    "care_team": "care_team",
}
VISIT_COLUMNS = {
    "mrn": "mrn",
    "start": "start",
    "visit_start": "start",
    "date": "start",
    "end": "end",
    "visit_type": "visit_type",
    "type": "visit_type",
    "status": "status",
    "chief_complaint": "chief_complaint",
    "complaint": "chief_complaint",
}
OBSERVATION_COLUMNS = {
    **{d.code: d.code for d in CATALOGUE},
    **{alias: d.code for d in CATALOGUE for alias in d.aliases},
}
SEX = {"f": "female", "m": "male", "female": "female", "male": "male", "other": "other"}


def _key(header: str) -> str:
    return "_".join(str(header or "").strip().lower().replace("-", "_").split())


def _rename(dataset: Any, mapping: dict[str, str]) -> None:
    """Map the file's headers to the resource's columns (unknown headers are left alone)."""
    headers = []
    for header in dataset.headers or []:
        text = str(header or "").strip()
        if text in OBSERVATION_COLUMNS and mapping is VISIT_COLUMNS:
            headers.append(text)
            continue
        headers.append(mapping.get(_key(text), text))
    dataset.headers = headers


def _invalid(exc: DomainError) -> ValidationError:
    return ValidationError({"__all__": [exc.message]})


class PatientResource(resources.ModelResource):
    mrn = fields.Field(attribute="mrn", column_name="mrn")
    given_name = fields.Field(attribute="given_name", column_name="given_name")
    family_name = fields.Field(attribute="family_name", column_name="family_name")
    birth_date = fields.Field(
        attribute="birth_date",
        column_name="birth_date",
        widget=widgets.DateWidget(format="%Y-%m-%d"),
    )
    sex = fields.Field(attribute="sex", column_name="sex")
    phone = fields.Field(attribute="phone", column_name="phone")
    email = fields.Field(attribute="email", column_name="email")
    address = fields.Field(attribute="address", column_name="address")
    national_id = fields.Field(attribute="national_id", column_name="national_id")

    class Meta:
        model = PatientRow
        import_id_fields = ("mrn",)
        fields = (
            "mrn",
            "given_name",
            "family_name",
            "birth_date",
            "sex",
            "phone",
            "email",
            "address",
            "national_id",
        )
        clean_model_instances = False  # the services validate (and say why)
        skip_unchanged = True
        report_skipped = True

    def __init__(self, actor: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.actor = actor
        self._teams: dict[int, list[CareTeam]] = {}

    def before_import(self, dataset: Any, **kwargs: Any) -> None:
        _rename(dataset, PATIENT_COLUMNS)

    def before_import_row(self, row: Any, **kwargs: Any) -> None:
        row["mrn"] = normalise_mrn(str(row.get("mrn") or ""))
        row["sex"] = SEX.get(str(row.get("sex") or "").strip().lower(), "unknown")
        for name in ("phone", "email", "address", "national_id"):
            row[name] = "" if row.get(name) is None else str(row.get(name)).strip()
        birth = row.get("birth_date")
        if isinstance(birth, dt.datetime):  # Excel gives dates as datetimes
            row["birth_date"] = birth.date().isoformat()
        elif isinstance(birth, dt.date):
            row["birth_date"] = birth.isoformat()

    def import_instance(self, instance: Any, row: Any, **kwargs: Any) -> None:
        super().import_instance(instance, row, **kwargs)
        name = str(row.get("care_team") or "").strip()
        teams = list(CareTeam.objects.filter(name=name)) if name else []
        if name and not teams:
            raise ValidationError({"care_team": [f"Unknown care team '{name[:60]}'."]})
        instance._import_teams = teams

    def do_instance_save(self, instance: Any, is_create: bool) -> None:
        values = {name: getattr(instance, name) for name in self._meta.fields}
        try:
            if is_create:
                created = patient_create(
                    **values, care_teams=getattr(instance, "_import_teams", []), actor=self.actor
                )
                instance.pk = created.pk
            else:
                values.pop("mrn")
                original = Patient.objects.get(pk=instance.pk)
                changes = {k: v for k, v in values.items() if getattr(original, k) != v}
                if changes:
                    patient_update(patient=original, actor=self.actor, **changes)
        except DomainError as exc:
            raise _invalid(exc) from None


class VisitResource(resources.ModelResource):
    mrn = fields.Field(column_name="mrn", attribute="import_mrn")
    start = fields.Field(
        attribute="start",
        column_name="start",
        widget=widgets.DateTimeWidget(format="%Y-%m-%dT%H:%M"),
    )
    visit_type = fields.Field(attribute="visit_type", column_name="visit_type")
    status = fields.Field(attribute="status", column_name="status")
    chief_complaint = fields.Field(attribute="chief_complaint", column_name="chief_complaint")

    class Meta:
        model = VisitRow
        import_id_fields = ()
        fields = ("mrn", "start", "visit_type", "status", "chief_complaint")
        clean_model_instances = False
        report_skipped = True

    def __init__(self, actor: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.actor = actor

    def before_import(self, dataset: Any, **kwargs: Any) -> None:
        _rename(dataset, VISIT_COLUMNS)

    def before_import_row(self, row: Any, **kwargs: Any) -> None:
        start = row.get("start")
        if isinstance(start, dt.datetime):
            row["start"] = start.strftime("%Y-%m-%dT%H:%M")
        elif isinstance(start, str) and len(start.strip()) == 10:
            row["start"] = start.strip() + "T00:00"
        elif isinstance(start, str):
            row["start"] = start.strip()[:16].replace(" ", "T")
        row["visit_type"] = str(row.get("visit_type") or Visit.Type.OUTPATIENT).strip().lower()
        row["status"] = str(row.get("status") or Visit.Status.CLOSED).strip().lower()
        row["chief_complaint"] = str(row.get("chief_complaint") or "")

    def import_instance(self, instance: Any, row: Any, **kwargs: Any) -> None:
        super().import_instance(instance, row, **kwargs)
        if instance.start is not None and timezone.is_naive(instance.start):
            instance.start = timezone.make_aware(instance.start)
        mrn = normalise_mrn(str(row.get("mrn") or ""))
        patient = Patient.objects.filter(mrn=mrn).only("pk", "birth_date").first()
        if patient is None:
            raise ValidationError({"mrn": ["No patient with this MRN."]})
        instance.patient = patient
        instance._observations = tuple(
            ObservationInput(OBSERVATION_COLUMNS[str(header).strip()], value)
            for header, value in row.items()
            if str(header).strip() in OBSERVATION_COLUMNS and value not in (None, "")
        )

    def skip_row(
        self, instance: Any, original: Any, row: Any, import_validation_errors: Any = None
    ) -> bool:
        if import_validation_errors:
            return False
        return Visit.objects.filter(patient=instance.patient, start=instance.start).exists()

    def do_instance_save(self, instance: Any, is_create: bool) -> None:
        closed = instance.status == Visit.Status.CLOSED
        try:
            report = visits_bulk_import(
                visits=[
                    VisitImport(
                        patient=instance.patient,
                        attending=self.actor,
                        start=instance.start,
                        end=instance.start if closed else None,
                        visit_type=instance.visit_type,
                        status=instance.status,
                        observations=instance._observations,
                        text={"chief_complaint": instance.chief_complaint},
                    )
                ],
                actor=self.actor,
            )
        except DomainError as exc:
            raise _invalid(exc) from None
        instance.pk = report.visits[0].pk
