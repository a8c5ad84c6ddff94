"""Every write to visits, observations and diagnoses (STYLE.md: one door for writes).

Pages and the API record a visit with its observations and diagnoses through one service,
:func:`visit_record`. Saving or closing a visit also records a visit event in the same
transaction (visits/events.py, the outbox visits owns), so whoever follows visits (predictions'
advice) never misses a change.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from medai_site.audit import audit_record, audit_record_many
from medai_site.errors import Conflict, InvalidInput
from medai_site.models import AuditEvent
from medai_site.roles import account_of
from patients.models import Patient
from patients.services import BULK_BATCH

from .events import visit_event_record
from .icd10 import icd10_lookup
from .models import Diagnosis, Observation, ObservationDefinition, Visit, VisitEvent
from .selectors import observation_definitions_by_code

if TYPE_CHECKING:
    from django.contrib.auth.models import User
from .units import to_canonical, value_text

VISIT_TEXT_FIELDS = (
    "chief_complaint",
    "history_present_illness",
    "past_history",
    "allergy_history",
    "physical_exam",
    "plan",
    "medications",
)
VISIT_FIELDS = ("start", "end", "visit_type", *VISIT_TEXT_FIELDS)
MAX_AGE_YEARS = 90  # HIPAA Safe Harbor: ages over 89 are reported as one group
# The one maximum length of each free-text field, for the page, the API and every import: a
# complaint is a line or two, a history or plan a page at most (a visit note, not a document).
VISIT_TEXT_LIMITS = {
    "chief_complaint": 500,
    "history_present_illness": 5000,
    "past_history": 5000,
    "allergy_history": 2000,
    "physical_exam": 5000,
    "plan": 5000,
    "medications": 2000,  # a medication list: some 30 lines of name, dose and frequency
}
VISIT_TEXT_LABELS = {
    "chief_complaint": "Chief complaint",
    "history_present_illness": "History of present illness",
    "past_history": "Past history",
    "allergy_history": "Allergy history",
    "physical_exam": "Physical examination",
    "plan": "Plan",
    "medications": "Medications",
}
# Triage vital signs an emergency visit is recorded with (the NEWS2 observations that are
# numbers: respiration rate, oxygen saturation, systolic blood pressure, pulse, temperature;
# Royal College of Physicians, National Early Warning Score 2, 2017).
TRIAGE_VITALS = {
    "9279-1": "Respiratory rate",
    "2708-6": "Oxygen saturation",
    "8480-6": "Systolic blood pressure",
    "8867-4": "Heart rate",
    "8310-5": "Body temperature",
}


def text_length_message(name: str, length: int) -> str:
    limit = VISIT_TEXT_LIMITS[name]
    return f"{VISIT_TEXT_LABELS[name]} is too long: {length:,} characters, at most {limit:,}."


def texts_validate(texts: dict[str, Any]) -> None:
    """Every free-text field within its one limit (VISIT_TEXT_LIMITS), all errors together."""
    errors = {
        name: [text_length_message(name, len(value))]
        for name, value in texts.items()
        if name in VISIT_TEXT_LIMITS
        and isinstance(value, str)
        and len(value) > VISIT_TEXT_LIMITS[name]
    }
    if errors:
        raise InvalidInput(next(iter(errors.values()))[0], fields=errors)


def triage_vitals_missing(codes: Iterable[str]) -> list[str]:
    """The triage vital signs (codes) an emergency visit still lacks."""
    present = set(codes)
    return [code for code in TRIAGE_VITALS if code not in present]


def triage_message(missing: Sequence[str]) -> str:
    names = ", ".join(TRIAGE_VITALS[c].lower() for c in missing)
    return f"An emergency visit needs its triage vital signs: {names}."


@dataclass(frozen=True)
class ObservationInput:
    code: str
    value: float | str
    unit: str = ""


@dataclass(frozen=True)
class DiagnosisInput:
    """A diagnosis recorded with its visit. ``rank=None``: primary unless one already stands."""

    code: str
    rank: str | None = None
    status: str = Diagnosis.Status.PROVISIONAL


@dataclass(frozen=True)
class ValidatedObservation:
    definition: ObservationDefinition
    value: float
    entered_value: float
    entered_unit: str
    interpretation: str


def observation_validate(
    entry: ObservationInput, definition: ObservationDefinition | None
) -> ValidatedObservation:
    """Parse, convert to the canonical unit, reject impossible values, flag abnormal ones."""
    if definition is None:
        raise InvalidInput(
            f"Unknown observation code '{entry.code}'.", fields={entry.code: ["Unknown code."]}
        )
    text = str(entry.value).strip()
    if re.fullmatch(r"[+-]?\d{1,3}(,\d{3})+", text):
        # "1,200" could be a thousands separator or a decimal comma (1.2): never guess.
        message = f"{definition.display}: '{text}' is ambiguous; write 1200 or 1.2 (no thousands separator)."
        raise InvalidInput(message, fields={definition.code: [message]})
    try:
        entered = float(text.replace(",", "."))  # a decimal comma ("38,5") is common in Europe
    except (TypeError, ValueError):
        raise InvalidInput(
            f"{definition.display}: '{entry.value}' is not a number.",
            fields={definition.code: ["Enter a number."]},
        ) from None
    if not math.isfinite(entered):
        raise InvalidInput(
            f"{definition.display}: not a finite number.",
            fields={definition.code: ["Enter a number."]},
        )
    try:
        value = to_canonical(definition.code, entered, entry.unit, definition.unit)
    except InvalidInput as exc:
        raise InvalidInput(exc.message, fields={definition.code: [exc.message]}) from None
    low, high = definition.plausible_low, definition.plausible_high
    if (low is not None and value < low) or (high is not None and value > high):
        message = (
            f"{definition.display} {value_text(entered)} {entry.unit or definition.unit} is outside "
            f"the possible range {value_text(low)}–{value_text(high)} {definition.unit}; check the "
            "value and unit."
        )
        raise InvalidInput(message, fields={definition.code: [message]})
    return ValidatedObservation(
        definition=definition,
        value=round(value, max(definition.decimals, 2)),
        entered_value=entered,
        entered_unit=entry.unit or definition.unit,
        interpretation=interpret(definition, value),
    )


def interpret(definition: ObservationDefinition, value: float) -> str:
    I = Observation.Interpretation  # noqa: E741 (short alias of the choices, read as 'Interpretation')
    if definition.critical_low is not None and value < definition.critical_low:
        return I.CRITICAL_LOW
    if definition.critical_high is not None and value > definition.critical_high:
        return I.CRITICAL_HIGH
    if definition.normal_low is None and definition.normal_high is None:
        return I.UNKNOWN
    if definition.normal_low is not None and value < definition.normal_low:
        return I.LOW
    if definition.normal_high is not None and value > definition.normal_high:
        return I.HIGH
    return I.NORMAL


def observations_validate(entries: Iterable[ObservationInput]) -> list[ValidatedObservation]:
    """Validate every entry before anything is written; all errors are reported together."""
    entries = list(entries)
    definitions = observation_definitions_by_code() if entries else {}
    validated, errors, messages = [], {}, []
    for entry in entries:
        try:
            validated.append(observation_validate(entry, definitions.get(entry.code)))
        except InvalidInput as exc:
            errors.update(exc.fields)
            messages.append(exc.message)
    if errors:
        # The first error's full sentence ("Heart rate: 'x' is not a number."), not its terse
        # per-field hint ("Enter a number."), which names neither the observation nor the value.
        raise InvalidInput(messages[0], fields=errors)
    return validated


def _write_observations(
    visit: Visit, observations: Sequence[ValidatedObservation], *, new_visit: bool = False
) -> list[Observation]:
    """Insert the values in one statement; a code entered again replaces its earlier value
    (a visit created in this transaction has none to replace)."""
    if not observations:
        return []
    now = timezone.now()
    if not new_visit:
        Observation.objects.filter(
            visit=visit, definition__in=[obs.definition for obs in observations]
        ).delete()
    return Observation.objects.bulk_create(
        Observation(
            visit=visit,
            definition=obs.definition,
            value=obs.value,
            entered_value=obs.entered_value,
            entered_unit=obs.entered_unit,
            interpretation=obs.interpretation,
            recorded_at=now,
        )
        for obs in {obs.definition.code: obs for obs in observations}.values()
    )


# The visit's check constraints decided in Python, as PostgreSQL would (a NULL operand passes):
# ``full_clean`` asks the database for each one (``SELECT 1 WHERE ...`` inside a savepoint, three
# round trips a constraint, six per visit saved). The database still enforces both. A constraint
# added to ``Visit`` without an entry here is still validated, the database's way.
# name -> (fields it reads, whether the visit satisfies it)
_VISIT_CHECKS: dict[str, tuple[tuple[str, ...], Callable[[Visit], bool]]] = {
    "visit_end_after_start": (
        ("start", "end"),
        lambda v: v.end is None or v.start is None or v.end >= v.start,
    ),
    "visit_age_capped": (("age_years",), lambda v: v.age_years is None or v.age_years <= 90),
}


def _visit_full_clean(visit: Visit, *, exclude: Sequence[str]) -> None:
    """``visit.full_clean(exclude=...)``, same errors, the check constraints decided in Python."""
    errors: dict[str, Any] = {}
    try:
        visit.full_clean(exclude=exclude, validate_constraints=False)
    except ValidationError as exc:
        errors = exc.update_error_dict(errors)
    skip = {*exclude, *errors}  # as Django: no constraint over a field that is already wrong
    for constraint in Visit._meta.constraints:
        rule = _VISIT_CHECKS.get(constraint.name)
        try:
            if rule is None:
                constraint.validate(Visit, visit, exclude=skip)  # type: ignore[attr-defined]  # every concrete constraint has it; the stubs' base class lacks it
            elif not skip.intersection(rule[0]) and not rule[1](visit):
                raise ValidationError(
                    constraint.get_violation_error_message(),
                    code=constraint.violation_error_code,
                )
        except ValidationError as exc:
            errors = exc.update_error_dict(errors)
    if errors:
        raise ValidationError(errors)


def _full_clean(obj: Visit | Diagnosis, *, loaded: Sequence[str] = ()) -> None:
    """``loaded``: foreign keys set from instances the caller has just read or written, whose
    existence full_clean would otherwise check again with one query each."""
    try:
        if isinstance(obj, Visit):
            _visit_full_clean(obj, exclude=loaded)
        else:
            obj.full_clean(exclude=loaded)
    except ValidationError as exc:
        raise InvalidInput.from_django(exc) from None


def _attach(visit: Visit, relation: str, rows: list[Any]) -> None:
    """Set ``visit.<relation>.all()`` to ``rows`` as ``prefetch_related`` would (a queryset with
    its results cached, in the model's order); any other query on the relation still reads the
    database."""
    cache = getattr(visit, "_prefetched_objects_cache", None)
    if cache is None:
        cache = {}
        setattr(visit, "_prefetched_objects_cache", cache)  # noqa: B010 (Django's own attribute, not in the stubs)
    cache.pop(relation, None)
    queryset = getattr(visit, relation).get_queryset()
    queryset._result_cache = rows
    queryset._prefetch_done = True
    cache[relation] = queryset


def _visit_create(
    *,
    patient: Patient,
    attending: User | None,
    start: dt.datetime | None = None,
    visit_type: str = Visit.Type.OUTPATIENT,
    observations: Iterable[ObservationInput] = (),
    actor: object | None,
    request_advice: bool = True,
    **text: str,
) -> Visit:
    unknown = set(text) - set(VISIT_TEXT_FIELDS)
    if unknown:
        raise InvalidInput(f"Unknown visit field(s): {', '.join(sorted(unknown))}.")
    texts_validate(text)
    start = start or timezone.now()
    if timezone.is_naive(start):
        raise InvalidInput(
            "Visit start must include a time zone.", fields={"start": ["Time zone required."]}
        )
    validated = observations_validate(observations)
    visit = Visit(
        patient=patient,
        attending=attending,
        start=start,
        visit_type=visit_type,
        age_years=min(patient.age_on(start.date()), MAX_AGE_YEARS),
        **{name: (text.get(name) or "") for name in VISIT_TEXT_FIELDS},
    )
    _full_clean(visit, loaded=("patient", "attending"))
    visit.save()
    written = _write_observations(visit, validated, new_visit=True)
    # The new visit carries what was written, so whoever answers with it reads nothing again.
    _attach(visit, "observations", sorted(written, key=lambda o: o.definition.code))
    _attach(visit, "diagnoses", [])
    audit_record(actor=actor, action=AuditEvent.Action.CREATE, obj=visit, patient_id=patient.pk)
    if request_advice:
        visit_event_record(visit=visit, kind=VisitEvent.Kind.RECORDED)
    return visit


# Its own transaction when called alone; visit_record (already one) calls the unwrapped function.
visit_create = transaction.atomic(_visit_create)


def _visit_update(
    *,
    visit: Visit,
    actor: object | None,
    observations: Iterable[ObservationInput] = (),
    request_advice: bool = True,
    **changes: object,
) -> Visit:
    unknown = set(changes) - set(VISIT_FIELDS)
    if unknown:
        raise InvalidInput(f"Unknown visit field(s): {', '.join(sorted(unknown))}.")
    texts_validate(changes)
    for name in ("start", "end"):  # as a create's start: the Python checks compare them
        value = changes.get(name)
        if isinstance(value, dt.datetime) and timezone.is_naive(value):
            raise InvalidInput(
                f"Visit {name} must include a time zone.", fields={name: ["Time zone required."]}
            )
    validated = observations_validate(observations)
    visit = Visit.objects.select_for_update().get(pk=visit.pk)
    if visit.status == Visit.Status.CLOSED:
        raise Conflict("This visit is closed; it can no longer be edited.")
    for name, value in changes.items():
        setattr(visit, name, value if value is not None or name == "end" else "")
    if "start" in changes:
        visit.age_years = min(visit.patient.age_on(visit.start.date()), MAX_AGE_YEARS)
    _full_clean(visit)
    visit.save()
    _write_observations(visit, validated)
    audit_record(
        actor=actor, action=AuditEvent.Action.UPDATE, obj=visit, patient_id=visit.patient_id
    )
    if request_advice:
        visit_event_record(visit=visit, kind=VisitEvent.Kind.CHANGED)
    return visit


visit_update = transaction.atomic(_visit_update)


@transaction.atomic
def visit_record(
    *,
    actor: object,
    patient: Patient | None = None,
    visit: Visit | None = None,
    attending: User | None = None,
    observations: Iterable[ObservationInput] = (),
    diagnoses: Iterable[DiagnosisInput] = (),
    request_advice: bool = True,
    **fields: Any,
) -> Visit:
    """Record a visit with its observations and diagnoses, all or nothing.

    Either a new visit of ``patient`` (attended by ``attending``, default the actor) or changes to
    the open ``visit``; ``fields`` are the visit's own (type, start, free text; ``end`` on an
    update). A visit that becomes an emergency one needs its triage vital signs
    (:data:`TRIAGE_VITALS`), entered now or before. Advice is requested once, in the same transaction. A diagnosis whose code the visit
    already had is left as it stands; one without a rank becomes primary unless a primary that
    is not refuted stands, else secondary.
    """
    observations = list(observations)
    # Asked when a visit becomes an emergency one (recorded as such, or its type changed to it).
    becomes_emergency = fields.get("visit_type") == Visit.Type.EMERGENCY and (
        visit is None or visit.visit_type != Visit.Type.EMERGENCY
    )
    if becomes_emergency:
        entered = [o.code for o in observations]
        if visit is not None:
            entered += list(visit.observations.values_list("definition__code", flat=True))
        missing = triage_vitals_missing(entered)
        if missing:
            message = triage_message(missing)
            raise InvalidInput(message, fields={code: [message] for code in missing})
    # visit_record is the transaction: the unwrapped services save a savepoint's two round trips.
    if patient is not None and visit is None:
        visit = _visit_create(
            patient=patient,
            attending=account_of(actor) if attending is None else attending,
            observations=observations,
            actor=actor,
            request_advice=request_advice,
            **fields,
        )
    elif visit is not None and patient is None:
        visit = _visit_update(
            visit=visit,
            observations=observations,
            actor=actor,
            request_advice=request_advice,
            **fields,
        )
    else:
        raise InvalidInput("Record either a new visit of a patient or changes to one visit.")
    created = patient is not None
    before = [] if created else list(Diagnosis.objects.filter(visit=visit))
    recorded = {d.code for d in before}
    added: list[Diagnosis] = []
    has_primary = any(
        d.rank == Diagnosis.Rank.PRIMARY and d.status != Diagnosis.Status.REFUTED for d in before
    )
    for entry in diagnoses:
        code, _display = icd10_lookup(entry.code)
        if code in recorded:
            continue
        rank = entry.rank or (Diagnosis.Rank.SECONDARY if has_primary else Diagnosis.Rank.PRIMARY)
        added.append(
            _diagnosis_add(visit=visit, code=code, rank=rank, status=entry.status, actor=actor)
        )
        has_primary = has_primary or (
            rank == Diagnosis.Rank.PRIMARY and entry.status != Diagnosis.Status.REFUTED
        )
    if created:  # a new visit carries its rows (visit_create attached the observations)
        _attach(visit, "diagnoses", sorted(added, key=lambda d: (d.rank, d.code)))
    return visit


@transaction.atomic
def visit_close(
    *,
    visit: Visit,
    actor: object | None,
    end: dt.datetime | None = None,
    final_diagnoses: Iterable[int] = (),
) -> Visit:
    """Close the visit; ``final_diagnoses`` (ids of its diagnoses) are confirmed as it closes."""
    visit = Visit.objects.select_for_update().get(pk=visit.pk)
    if visit.status == Visit.Status.CLOSED:
        raise Conflict("This visit is already closed.")
    final = set(final_diagnoses)
    chosen = list(Diagnosis.objects.filter(visit=visit, pk__in=final))
    if len(chosen) != len(final):
        raise InvalidInput(
            "A final diagnosis must be one of this visit's diagnoses.",
            fields={"final_diagnoses": ["Not a diagnosis of this visit."]},
        )
    for diagnosis in chosen:
        if diagnosis.status != Diagnosis.Status.CONFIRMED:
            diagnosis_set_status(
                diagnosis=diagnosis, status=Diagnosis.Status.CONFIRMED, actor=actor
            )
    visit.status = Visit.Status.CLOSED
    visit.end = end or max(timezone.now(), visit.start)
    _full_clean(visit)
    visit.save()
    audit_record(
        actor=actor, action=AuditEvent.Action.UPDATE, obj=visit, patient_id=visit.patient_id
    )
    visit_event_record(visit=visit, kind=VisitEvent.Kind.CLOSED)
    return visit


def _diagnosis_add(
    *,
    visit: Visit,
    code: str,
    rank: str = Diagnosis.Rank.PRIMARY,
    status: str = Diagnosis.Status.PROVISIONAL,
    source: str = Diagnosis.Source.DOCTOR,
    suggested_by: str = "",
    actor: object | None,
) -> Diagnosis:
    """Add a diagnosis to a visit.

    A diagnosis that came from advice (``source`` advice, ``suggested_by`` the model version) is
    the doctor's agreement, never a confirmation: it can only start provisional, and becomes
    confirmed by :func:`diagnosis_confirm` (or closing the visit with it as a final diagnosis).
    """
    if source == Diagnosis.Source.ADVICE and status == Diagnosis.Status.CONFIRMED:
        raise InvalidInput(
            "A diagnosis suggested by advice starts provisional; confirm it explicitly.",
            fields={"status": ["Advice is agreement, not confirmation."]},
        )
    code, display = icd10_lookup(code)
    account = account_of(actor)
    confirmed = status == Diagnosis.Status.CONFIRMED
    diagnosis = Diagnosis(
        visit=visit,
        code=code,
        display=display,
        rank=rank,
        status=status,
        source=source,
        suggested_by=suggested_by[:120],
        recorded_by=account,
        confirmed_by=account if confirmed else None,
        confirmed_at=timezone.now() if confirmed else None,
    )
    _full_clean_unique_aware(diagnosis)
    # A visit carrying its rows in memory (see _attach) must not keep showing the old list.
    getattr(visit, "_prefetched_objects_cache", {}).pop("diagnoses", None)
    audit_record(
        actor=actor, action=AuditEvent.Action.UPDATE, obj=diagnosis, patient_id=visit.patient_id
    )
    return diagnosis


# Its own transaction when called alone; visit_record (already one) calls the unwrapped function.
diagnosis_add = transaction.atomic(_diagnosis_add)


def _full_clean_unique_aware(diagnosis: Diagnosis) -> None:
    try:
        # The visit and the accounts were just read by the caller (see _full_clean).
        diagnosis.full_clean(
            exclude=["visit", "recorded_by", "confirmed_by"], validate_constraints=False
        )
    except ValidationError as exc:
        raise InvalidInput.from_django(exc) from None
    try:
        with transaction.atomic():
            diagnosis.save()
    except IntegrityError:
        # exclude(pk): on a status change the diagnosis itself is already stored with its code.
        duplicate = Diagnosis.objects.filter(visit_id=diagnosis.visit_id, code=diagnosis.code)
        if duplicate.exclude(pk=diagnosis.pk).exists():
            raise Conflict(
                f"{diagnosis.code} is already recorded on this visit.",
                fields={"code": ["Already recorded on this visit."]},
            ) from None
        raise Conflict(
            "This visit already has a primary diagnosis; record this one as secondary.",
            fields={"rank": ["A primary diagnosis already stands."]},
        ) from None


@transaction.atomic
def diagnosis_set_status(*, diagnosis: Diagnosis, status: str, actor: object | None) -> Diagnosis:
    if status not in Diagnosis.Status.values:
        raise InvalidInput(
            f"Unknown diagnosis status '{status}'.", fields={"status": ["Unknown status."]}
        )
    diagnosis = Diagnosis.objects.select_for_update().get(pk=diagnosis.pk)
    if diagnosis.status != status:
        confirmed = status == Diagnosis.Status.CONFIRMED
        diagnosis.confirmed_by = account_of(actor) if confirmed else None
        diagnosis.confirmed_at = timezone.now() if confirmed else None
    diagnosis.status = status
    _full_clean_unique_aware(diagnosis)
    audit_record(
        actor=actor,
        action=AuditEvent.Action.UPDATE,
        obj=diagnosis,
        patient_id=diagnosis.visit.patient_id,
    )
    return diagnosis


def diagnosis_confirm(*, diagnosis: Diagnosis, actor: object | None) -> Diagnosis:
    """The doctor's explicit confirmation of a diagnosis (one suggested by advice included).

    Also after the visit closed: results that establish a diagnosis often come back later.
    """
    if diagnosis.status == Diagnosis.Status.CONFIRMED:
        return diagnosis
    return diagnosis_set_status(diagnosis=diagnosis, status=Diagnosis.Status.CONFIRMED, actor=actor)


@dataclass(frozen=True)
class VisitImport:
    """A past visit of a bulk import, as it stood: open or closed, with what it recorded."""

    patient: Patient
    attending: User | None
    start: dt.datetime
    end: dt.datetime | None
    visit_type: str
    status: str
    observations: tuple[ObservationInput, ...] = ()
    # Ranks and statuses as recorded; one primary that still stands at most, codes unique.
    diagnoses: tuple[DiagnosisInput, ...] = ()
    text: dict[str, str] | None = None  # the free-text fields (VISIT_TEXT_FIELDS)


@dataclass(frozen=True)
class VisitsImportReport:
    visits: list[Visit]
    observations: int
    diagnoses: int


@transaction.atomic
def visits_bulk_import(
    *, visits: Sequence[VisitImport], actor: object | None
) -> VisitsImportReport:
    """Import many past visits at once (records from another system, the demo population).

    Every visit, observation and diagnosis is checked first, by the rules of entry (aware start,
    end after start, known type and status, free-text fields; units converted, impossible values
    rejected and values flagged by :func:`observation_validate`; ICD-10 codes looked up, one
    standing primary): a refusal names the visit's position and changes nothing. Rows are then
    inserted in batches (the fields encrypt the text as on any save), observations are dated at
    the visit's start, and each visit's creation is audited. History asks for no advice.
    """
    definitions = {d.code: d for d in ObservationDefinition.objects.all()}
    looked_up: dict[str, tuple[str, str]] = {}  # ICD-10 look-ups: a few codes, many visits
    rows: list[Visit] = []
    observations: list[list[ValidatedObservation]] = []
    diagnoses: list[list[Diagnosis]] = []
    for position, entry in enumerate(visits, start=1):
        try:
            visit = _import_visit(entry)
            validated = [
                observation_validate(o, definitions.get(o.code)) for o in entry.observations
            ]
            coded = _import_diagnoses(entry.diagnoses, looked_up)
        except (InvalidInput, Conflict) as exc:
            raise type(exc)(f"Visit {position}: {exc.message}", fields=exc.fields) from None
        rows.append(visit)
        observations.append(validated)
        diagnoses.append(coded)
    Visit.objects.bulk_create(rows, batch_size=BULK_BATCH)
    observation_rows = [
        Observation(
            visit=visit,
            definition=obs.definition,
            value=obs.value,
            entered_value=obs.entered_value,
            entered_unit=obs.entered_unit,
            interpretation=obs.interpretation,
            recorded_at=visit.start,
        )
        for visit, validated in zip(rows, observations, strict=True)
        for obs in {obs.definition.code: obs for obs in validated}.values()
    ]
    Observation.objects.bulk_create(observation_rows, batch_size=BULK_BATCH)
    diagnosis_rows = []
    for visit, coded in zip(rows, diagnoses, strict=True):
        for diagnosis in coded:
            diagnosis.visit = visit
            diagnosis_rows.append(diagnosis)
    Diagnosis.objects.bulk_create(diagnosis_rows, batch_size=BULK_BATCH)
    audit_record_many(
        actor=actor,
        action=AuditEvent.Action.CREATE,
        patient_ids=[v.patient_id for v in rows],
        object_type="visits.visit",
        object_ids=[v.pk for v in rows],
    )
    return VisitsImportReport(
        visits=rows, observations=len(observation_rows), diagnoses=len(diagnosis_rows)
    )


def _import_visit(entry: VisitImport) -> Visit:
    text = entry.text or {}
    unknown = set(text) - set(VISIT_TEXT_FIELDS)
    if unknown:
        raise InvalidInput(f"Unknown visit field(s): {', '.join(sorted(unknown))}.")
    texts_validate(text)
    if timezone.is_naive(entry.start):
        raise InvalidInput(
            "Visit start must include a time zone.", fields={"start": ["Time zone required."]}
        )
    visit = Visit(
        patient=entry.patient,
        attending=entry.attending,
        start=entry.start,
        end=entry.end,
        visit_type=entry.visit_type,
        status=entry.status,
        age_years=min(entry.patient.age_on(entry.start.date()), MAX_AGE_YEARS),
        **{name: (text.get(name) or "") for name in VISIT_TEXT_FIELDS},
    )
    # Field rules (choices, lengths); the check constraints here, in Python: Django would run a
    # query per constraint and row. The age cap holds by construction.
    try:
        visit.full_clean(
            exclude=["patient", "attending"], validate_unique=False, validate_constraints=False
        )
    except ValidationError as exc:
        raise InvalidInput.from_django(exc) from None
    if entry.end is not None and entry.end < entry.start:
        raise InvalidInput("Visit end is before its start.", fields={"end": ["Before start."]})
    return visit


def _import_diagnoses(
    entries: Iterable[DiagnosisInput], looked_up: dict[str, tuple[str, str]]
) -> list[Diagnosis]:
    coded: list[Diagnosis] = []
    for entry in entries:
        if entry.rank not in (None, *Diagnosis.Rank.values):
            raise InvalidInput(f"Unknown diagnosis rank '{entry.rank}'.")
        if entry.status not in Diagnosis.Status.values:
            raise InvalidInput(f"Unknown diagnosis status '{entry.status}'.")
        if entry.code not in looked_up:
            looked_up[entry.code] = icd10_lookup(entry.code)
        code, display = looked_up[entry.code]
        rank = entry.rank or Diagnosis.Rank.PRIMARY
        if any(d.code == code for d in coded):
            raise Conflict(f"{code} is recorded twice on one visit.")
        standing = rank == Diagnosis.Rank.PRIMARY and entry.status != Diagnosis.Status.REFUTED
        if standing and any(
            d.rank == Diagnosis.Rank.PRIMARY and d.status != Diagnosis.Status.REFUTED for d in coded
        ):
            raise Conflict("A visit may have one primary diagnosis that stands.")
        coded.append(Diagnosis(code=code, display=display, rank=rank, status=entry.status))
    return coded


@dataclass(frozen=True)
class ObservationImport:
    """One value from another system (FHIR, HL7 v2) for an existing visit, open or closed."""

    visit_id: int
    patient_id: int
    observation: ObservationInput
    recorded_at: dt.datetime


@transaction.atomic
def observations_import(
    *, entries: Sequence[ObservationImport], actor: object | None
) -> list[Observation]:
    """Record values received from another system on their visits (a lab's results, a bundle).

    Every value is checked by the rules of entry (:func:`observation_validate`: canonical unit,
    impossible values refused, abnormal ones flagged) before anything is written; a refusal names
    the entry's position and changes nothing. A value replaces the visit's earlier value of the
    same code (one current value per code and visit), whatever the visit's status: results arrive
    after a visit closes. Each visit touched is audited once; history asks for no advice.
    Returns the rows in the order of ``entries`` (the last of duplicates wins).
    """
    if not entries:
        return []
    codes = {e.observation.code for e in entries}
    definitions = {d.code: d for d in ObservationDefinition.objects.filter(code__in=codes)}
    rows: dict[tuple[int, str], Observation] = {}
    for position, entry in enumerate(entries, start=1):
        if timezone.is_naive(entry.recorded_at):
            raise InvalidInput(f"Observation {position}: its time must include a time zone.")
        try:
            valid = observation_validate(entry.observation, definitions.get(entry.observation.code))
        except InvalidInput as exc:
            raise InvalidInput(
                f"Observation {position}: {exc.message}", fields=exc.fields
            ) from None
        rows[(entry.visit_id, valid.definition.code)] = Observation(
            visit_id=entry.visit_id,
            definition=valid.definition,
            value=valid.value,
            entered_value=valid.entered_value,
            entered_unit=valid.entered_unit,
            interpretation=valid.interpretation,
            recorded_at=entry.recorded_at,
        )
    visit_patient = {e.visit_id: e.patient_id for e in entries}
    known = dict(Visit.objects.filter(pk__in=visit_patient).values_list("pk", "patient_id"))
    if known != visit_patient:
        raise InvalidInput("An observation names a visit that does not exist or not its patient.")
    earlier = Observation.objects.filter(
        visit_id__in=visit_patient, definition__code__in=codes
    ).values_list("pk", "visit_id", "definition__code")
    Observation.objects.filter(
        pk__in=[pk for pk, visit_id, code in earlier if (visit_id, code) in rows]
    ).delete()
    created = Observation.objects.bulk_create(list(rows.values()), batch_size=BULK_BATCH)
    visits = sorted(visit_patient)
    audit_record_many(
        actor=actor,
        action=AuditEvent.Action.UPDATE,
        patient_ids=[visit_patient[v] for v in visits],
        object_type="visits.visit",
        object_ids=visits,
    )
    by_key = {(o.visit_id, o.definition.code): o for o in created}
    return [by_key[(e.visit_id, e.observation.code)] for e in entries]
