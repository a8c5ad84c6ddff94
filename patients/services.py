"""Every write to patients, allergies and care teams (STYLE.md: one door for writes)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from medai_site.audit import audit_record
from medai_site.errors import Conflict, InvalidInput
from medai_site.models import AuditEvent

from .models import Allergy, CareTeam, Patient, normalise_mrn

# Fields a caller may set on a patient; everything else is derived (blind indexes, timestamps).
PATIENT_FIELDS = (
    "mrn",
    "sex",
    "given_name",
    "family_name",
    "birth_date",
    "phone",
    "email",
    "address",
    "national_id",
    "emergency_contact",
)


@dataclass(frozen=True)
class AllergyInput:
    substance: str
    reaction: str = ""
    severity: str = Allergy.Severity.MODERATE


def _validated_save(obj: Patient | Allergy, *, exclude: Iterable[str] = ()) -> None:
    try:
        obj.full_clean(exclude=list(exclude))
    except ValidationError as exc:
        raise InvalidInput.from_django(exc) from None
    try:
        with transaction.atomic():
            obj.save()
    except IntegrityError as exc:
        raise Conflict("This record conflicts with an existing one.") from exc


def check_birth_date(birth_date: dt.date | None) -> None:
    if birth_date is None:
        return
    today = dt.date.today()  # noqa: DTZ011 (a calendar date, compared with a calendar date)
    if birth_date > today:
        raise InvalidInput(
            "Date of birth is in the future.",
            fields={"birth_date": ["Date of birth is in the future."]},
        )
    if birth_date.year < today.year - 130:
        raise InvalidInput(
            "Date of birth is implausibly old.",
            fields={"birth_date": ["Date of birth is implausibly old."]},
        )


@transaction.atomic
def patient_create(
    *,
    mrn: str,
    sex: str,
    given_name: str,
    family_name: str,
    birth_date: dt.date,
    phone: str = "",
    email: str = "",
    address: str = "",
    national_id: str = "",
    emergency_contact: str = "",
    care_teams: Iterable[CareTeam] = (),
    allergies: Iterable[AllergyInput] = (),
    actor: object | None,
) -> Patient:
    check_birth_date(birth_date)
    mrn = normalise_mrn(mrn)
    if Patient.objects.filter(mrn=mrn).exists():
        raise Conflict(
            "A patient with this MRN already exists.", fields={"mrn": ["Already in use."]}
        )
    patient = Patient(
        mrn=mrn,
        sex=sex,
        given_name=(given_name or "").strip(),
        family_name=(family_name or "").strip(),
        birth_date=birth_date,
        phone=(phone or "").strip(),
        email=(email or "").strip(),
        address=address or "",
        national_id=(national_id or "").strip(),
        emergency_contact=emergency_contact or "",
        created_by=actor if getattr(actor, "is_authenticated", False) else None,
    )
    _validated_save(patient)
    patient.care_teams.set(list(care_teams))
    for allergy in allergies:
        allergy_add(
            patient=patient,
            substance=allergy.substance,
            reaction=allergy.reaction,
            severity=allergy.severity,
            actor=actor,
            _audit=False,
        )
    audit_record(actor=actor, action=AuditEvent.Action.CREATE, obj=patient, patient_id=patient.pk)
    return patient


@transaction.atomic
def patient_update(*, patient: Patient, actor: object | None, **changes: object) -> Patient:
    unknown = set(changes) - set(PATIENT_FIELDS)
    if unknown:
        raise InvalidInput(f"Unknown patient field(s): {', '.join(sorted(unknown))}.")
    if "birth_date" in changes:
        check_birth_date(changes["birth_date"])  # type: ignore[arg-type]
    if "mrn" in changes:
        changes["mrn"] = normalise_mrn(str(changes["mrn"]))
        if Patient.objects.filter(mrn=changes["mrn"]).exclude(pk=patient.pk).exists():
            raise Conflict(
                "A patient with this MRN already exists.", fields={"mrn": ["Already in use."]}
            )
    patient = Patient.objects.select_for_update().get(pk=patient.pk)
    for name, value in changes.items():
        setattr(patient, name, value.strip() if isinstance(value, str) else value)
    _validated_save(patient)
    audit_record(actor=actor, action=AuditEvent.Action.UPDATE, obj=patient, patient_id=patient.pk)
    return patient


@transaction.atomic
def allergy_add(
    *,
    patient: Patient,
    substance: str,
    reaction: str = "",
    severity: str = Allergy.Severity.MODERATE,
    actor: object | None,
    _audit: bool = True,
) -> Allergy:
    substance = " ".join((substance or "").split()).lower()
    if patient.allergies.filter(substance=substance).exists():
        raise Conflict(
            "This allergy is already recorded.", fields={"substance": ["Already recorded."]}
        )
    allergy = Allergy(
        patient=patient, substance=substance, reaction=reaction or "", severity=severity
    )
    _validated_save(allergy)
    if _audit:
        audit_record(
            actor=actor, action=AuditEvent.Action.UPDATE, obj=allergy, patient_id=patient.pk
        )
    return allergy


@transaction.atomic
def care_team_create(
    *, name: str, members: Iterable[object] = (), actor: object | None
) -> CareTeam:
    team = CareTeam(name=name.strip())
    try:
        team.full_clean()
    except ValidationError as exc:
        raise InvalidInput.from_django(exc) from None
    team.save()
    team.members.set(list(members))
    return team


@transaction.atomic
def care_team_assign(*, patient: Patient, team: CareTeam, actor: object | None) -> None:
    patient.care_teams.add(team)
    audit_record(actor=actor, action=AuditEvent.Action.UPDATE, obj=patient, patient_id=patient.pk)
