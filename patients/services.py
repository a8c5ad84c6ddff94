"""Every write to patients, allergies and care teams (STYLE.md: one door for writes)."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from medai_site.audit import audit_record, audit_record_many
from medai_site.errors import Conflict, InvalidInput, RateLimited
from medai_site.models import AuditEvent
from medai_site.roles import account_of, is_admin

from .models import Allergy, CareTeam, Patient, normalise_mrn
from .selectors import care_teams_registrable

if TYPE_CHECKING:
    from django.contrib.auth.models import User

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


# Rows per INSERT in bulk imports: large enough to be fast, small enough for SQLite's limit on
# variables per statement (the embedded default database).
BULK_BATCH = 1000


@dataclass(frozen=True)
class AllergyInput:
    substance: str
    reaction: str = ""
    severity: str = Allergy.Severity.MODERATE


@dataclass(frozen=True)
class PatientInput:
    """One patient of a bulk import: what :func:`patient_create` takes."""

    mrn: str
    sex: str
    given_name: str
    family_name: str
    birth_date: dt.date
    phone: str = ""
    email: str = ""
    address: str = ""
    national_id: str = ""
    emergency_contact: str = ""
    care_teams: tuple[CareTeam, ...] = ()
    allergies: tuple[AllergyInput, ...] = ()


def _substance(text: str) -> str:
    """Substances are matched by the allergy rules: one spelling, lower case, single spaces."""
    return " ".join((text or "").split()).lower()


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
    """Register a patient. Everything but the MRN's uniqueness is validated first, so an answer
    about the MRN ("already in use") is never mixed with one about the rest; a conflict is a
    denied probe (:func:`mrn_claim_check`)."""
    check_birth_date(birth_date)
    mrn = normalise_mrn(mrn)
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
        created_by=account_of(actor),
    )
    _validated_without_uniqueness(patient)
    allergies = _allergies_validated(allergies)
    mrn_claim_check(mrn=mrn, actor=actor)
    with transaction.atomic():
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
        audit_record(
            actor=actor, action=AuditEvent.Action.CREATE, obj=patient, patient_id=patient.pk
        )
    return patient


def patient_update(*, patient: Patient, actor: object | None, **changes: object) -> Patient:
    """Change a patient's fields; like registration, a new MRN is checked only once everything
    else is valid, and a conflict is a denied probe (:func:`mrn_claim_check`)."""
    unknown = set(changes) - set(PATIENT_FIELDS)
    if unknown:
        raise InvalidInput(f"Unknown patient field(s): {', '.join(sorted(unknown))}.")
    if "birth_date" in changes:
        check_birth_date(changes["birth_date"])  # type: ignore[arg-type]
    if "mrn" in changes:
        changes["mrn"] = normalise_mrn(str(changes["mrn"]))
    changes = {
        name: value.strip() if isinstance(value, str) else value for name, value in changes.items()
    }
    candidate = Patient.objects.get(pk=patient.pk)
    for name, value in changes.items():
        setattr(candidate, name, value)
    _validated_without_uniqueness(candidate)
    if "mrn" in changes:
        mrn_claim_check(mrn=str(changes["mrn"]), actor=actor, patient_id=patient.pk)
    with transaction.atomic():
        patient = Patient.objects.select_for_update().get(pk=patient.pk)
        for name, value in changes.items():
            setattr(patient, name, value)
        _validated_save(patient)
        audit_record(
            actor=actor, action=AuditEvent.Action.UPDATE, obj=patient, patient_id=patient.pk
        )
    return patient


def _validated_without_uniqueness(patient: Patient) -> None:
    try:
        patient.full_clean(validate_unique=False)
    except ValidationError as exc:
        raise InvalidInput.from_django(exc) from None


def _allergies_validated(allergies: Iterable[AllergyInput]) -> list[AllergyInput]:
    """The registration's allergies, each valid and none listed twice (checked before the MRN)."""
    checked, seen = [], set()
    for allergy in allergies:
        substance = _substance(allergy.substance)
        if substance in seen:
            raise InvalidInput(
                "This allergy is listed twice.", fields={"substance": ["Listed twice."]}
            )
        seen.add(substance)
        row = Allergy(
            substance=substance, reaction=allergy.reaction or "", severity=allergy.severity
        )
        try:
            row.full_clean(exclude=["patient"], validate_unique=False)
        except ValidationError as exc:
            raise InvalidInput.from_django(exc) from None
        checked.append(allergy)
    return checked


# The audit record of an MRN conflict: a denied probe of whether the MRN exists.
MRN_PROBE = "mrn_conflict"
MRN_PROBE_PAUSED = "mrn_conflict_paused"


def mrn_claim_check(*, mrn: str, actor: object | None, patient_id: int | None = None) -> None:
    """Refuse an MRN another patient holds, as a probe: the answer says the MRN exists, which a
    user outside that patient's care team must not learn in bulk. Each conflict is audited as a
    DENIED record naming the actor and the patient whose MRN it is; a user with
    ``MEDAI_MRN_CONFLICT_LIMIT`` conflicts in ``MEDAI_MRN_CONFLICT_WINDOW_MINUTES`` is paused
    (``RateLimited``, before the MRN is even looked at) until the oldest leaves the window.

    The records are written by whoever reports the error (``record_after_rollback``), since the
    caller's transaction (e.g. an idempotent API create) is rolled back by the error itself.
    """
    account = account_of(actor)
    if account is not None:
        _refuse_if_paused(account, actor)
    taken_by = (
        Patient.objects.filter(mrn=mrn).exclude(pk=patient_id).values_list("pk", flat=True).first()
    )
    if taken_by is None:
        return
    raise Conflict(
        "A patient with this MRN already exists.",
        fields={"mrn": ["Already in use."]},
        record=functools.partial(
            audit_record,
            actor=actor,
            action=AuditEvent.Action.DENIED,
            patient_id=taken_by,
            object_type="patients.patient",
            object_id=MRN_PROBE,
        ),
    )


def _refuse_if_paused(account: User, actor: object) -> None:
    limit = settings.MEDAI_MRN_CONFLICT_LIMIT
    window = dt.timedelta(minutes=settings.MEDAI_MRN_CONFLICT_WINDOW_MINUTES)
    now = timezone.now()
    recent = list(
        AuditEvent.objects.filter(
            actor=account,
            action=AuditEvent.Action.DENIED,
            object_type="patients.patient",
            object_id=MRN_PROBE,
            at__gt=now - window,
        )
        .order_by("at")
        .values_list("at", flat=True)
    )
    if len(recent) < limit:
        return
    # Paused until enough of the oldest conflicts have left the window to fall below the limit.
    until = recent[len(recent) - limit] + window
    raise RateLimited(
        f"Registration and MRN changes are paused for you: {len(recent)} attempts in the last "
        f"{settings.MEDAI_MRN_CONFLICT_WINDOW_MINUTES} minutes named an MRN already in use. "
        f"Check the MRN against the hospital's patient index; you can try again after "
        f"{until:%H:%M} UTC.",
        retry_after=int((until - now).total_seconds()) + 1,
        record=functools.partial(
            audit_record,
            actor=actor,
            action=AuditEvent.Action.DENIED,
            object_type="patients.patient",
            object_id=MRN_PROBE_PAUSED,
        ),
    )


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
    substance = _substance(substance)
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
def allergy_update(
    *, allergy: Allergy, reaction: str, severity: str, actor: object | None
) -> Allergy:
    """Change what is known of a recorded allergy (its reaction and severity), audited."""
    allergy = Allergy.objects.select_for_update().get(pk=allergy.pk)
    if (allergy.reaction, allergy.severity) == (reaction or "", severity):
        return allergy
    allergy.reaction, allergy.severity = reaction or "", severity
    _validated_save(allergy)
    audit_record(
        actor=actor, action=AuditEvent.Action.UPDATE, obj=allergy, patient_id=allergy.patient_id
    )
    return allergy


@transaction.atomic
def patients_bulk_import(
    *, patients: Sequence[PatientInput], actor: object | None
) -> list[Patient]:
    """Register many patients at once (a migration from another system, the demo population).

    The rules of :func:`patient_create` hold for every patient (normalised MRN unique in the batch
    and in the database, a possible birth date, valid fields) and are checked for all of them
    before anything is written; a refusal names the patient's position and changes nothing.
    Rows are then inserted in batches: the fields encrypt and compute the blind indexes as on any
    save. Care teams and allergies follow, and each patient's creation is audited.
    """
    rows, mrns = [], set()
    for position, entry in enumerate(patients, start=1):
        mrn = normalise_mrn(entry.mrn)
        if mrn in mrns:
            raise Conflict(f"Patient {position}: MRN {mrn} appears twice in the import.")
        mrns.add(mrn)
        patient = Patient(
            mrn=mrn,
            sex=entry.sex,
            given_name=entry.given_name.strip(),
            family_name=entry.family_name.strip(),
            birth_date=entry.birth_date,
            phone=entry.phone.strip(),
            email=entry.email.strip(),
            address=entry.address,
            national_id=entry.national_id.strip(),
            emergency_contact=entry.emergency_contact,
            created_by=account_of(actor),
        )
        try:
            check_birth_date(entry.birth_date)
            patient.full_clean(validate_unique=False)  # uniqueness: one query below, not one each
        except ValidationError as exc:
            error = InvalidInput.from_django(exc)
            raise InvalidInput(
                f"Patient {position}: {error.message}", fields=error.fields
            ) from None
        except InvalidInput as exc:
            raise InvalidInput(f"Patient {position}: {exc.message}", fields=exc.fields) from None
        rows.append(patient)
    taken = set(Patient.objects.filter(mrn__in=mrns).values_list("mrn", flat=True))
    if taken:
        raise Conflict(f"{len(taken)} MRN(s) of the import already exist, e.g. {min(taken)}.")
    Patient.objects.bulk_create(rows, batch_size=BULK_BATCH)

    Membership = Patient.care_teams.through
    Membership.objects.bulk_create(
        [
            Membership(patient_id=patient.pk, careteam_id=team.pk)
            for patient, entry in zip(rows, patients, strict=True)
            for team in dict.fromkeys(entry.care_teams)
        ],
        batch_size=BULK_BATCH,
    )
    allergies = []
    for patient, entry in zip(rows, patients, strict=True):
        seen = set()
        for a in entry.allergies:
            substance = _substance(a.substance)
            if substance in seen:
                continue  # one allergy per substance and patient, as allergy_add keeps it
            seen.add(substance)
            allergy = Allergy(
                patient=patient, substance=substance, reaction=a.reaction, severity=a.severity
            )
            allergy.full_clean(exclude=["patient"], validate_constraints=False)
            allergies.append(allergy)
    Allergy.objects.bulk_create(allergies, batch_size=BULK_BATCH)
    audit_record_many(
        actor=actor, action=AuditEvent.Action.CREATE, patient_ids=[p.pk for p in rows]
    )
    return rows


# --- care teams ----------------------------------------------------------------------------------


@transaction.atomic
def care_team_create(*, name: str, members: Iterable[User] = (), actor: object | None) -> CareTeam:
    team = CareTeam(name=name.strip())
    try:
        team.full_clean()
    except ValidationError as exc:
        raise InvalidInput.from_django(exc) from None
    team.save()
    team.members.set(list(members))
    # Membership decides who may read which patients: every change is in the audit trail.
    audit_record(actor=actor, action=AuditEvent.Action.CREATE, obj=team)
    return team


@transaction.atomic
def care_team_rename(*, team: CareTeam, name: str, actor: object | None) -> CareTeam:
    team = CareTeam.objects.select_for_update().get(pk=team.pk)
    if team.name == name.strip():
        return team
    team.name = name.strip()
    try:
        team.full_clean()
    except ValidationError as exc:
        raise InvalidInput.from_django(exc) from None
    team.save()
    audit_record(actor=actor, action=AuditEvent.Action.UPDATE, obj=team)
    return team


@transaction.atomic
def care_team_members_set(
    *, team: CareTeam, members: Iterable[Any], actor: object | None
) -> CareTeam:
    """Make ``members`` (users) the team's clinicians; a change is audited (it changes who sees
    which patients)."""
    wanted = {member.pk for member in members}
    if wanted != set(team.members.values_list("pk", flat=True)):
        team.members.set(wanted)
        audit_record(actor=actor, action=AuditEvent.Action.UPDATE, obj=team)
    return team


def registration_care_teams(*, actor: object, team_ids: Collection[int] | None) -> list[CareTeam]:
    """The care teams ``actor`` registers a new patient into: the rule pages, API and admin share.

    A doctor registers into their own teams (``None``: all of them, and belonging to none is an
    error, since no one could then see the patient); an admin into any (``None``: none).
    """
    allowed = care_teams_registrable(viewer=actor)
    if team_ids is None:
        if is_admin(actor):
            return []
        teams = list(allowed)
        if not teams:
            raise InvalidInput(
                "You belong to no care team, so no one could see this patient.",
                fields={"care_team_ids": ["Join a care team first, or name one."]},
            )
        return teams
    teams = list(allowed.filter(pk__in=list(team_ids)))
    if len(teams) != len(set(team_ids)):
        raise InvalidInput(
            "Unknown care team, or one you do not belong to.",
            fields={"care_team_ids": ["Unknown care team, or not yours."]},
        )
    return teams


@transaction.atomic
def patient_care_teams_set(
    *, patient: Patient, teams: Iterable[CareTeam], actor: object | None
) -> Patient:
    """Make ``teams`` the patient's care teams; a change is audited (it changes who sees them)."""
    wanted = {team.pk for team in teams}
    if wanted != set(patient.care_teams.values_list("pk", flat=True)):
        patient.care_teams.set(wanted)
        audit_record(
            actor=actor, action=AuditEvent.Action.UPDATE, obj=patient, patient_id=patient.pk
        )
    return patient
