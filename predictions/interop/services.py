"""Every write of the import doors, and the one writer of interop's own tables.

:func:`fhir_import` reads FHIR R4 (``fhir_in``), validates each resource with ``fhir.resources``
before anything is written, and writes through the owning apps' services: patients through
``patients_bulk_import``/``patient_update``, encounters through ``visits_bulk_import``/
``visit_update``/``visit_close``, observations through ``observations_import`` (the rules of
entry: units converted through the catalogue, impossible values refused), diagnoses through
``diagnosis_add``/``diagnosis_set_status``, allergies through ``allergy_add``/``allergy_update``.
The audit records it causes carry the interface ``import`` and the importing user.

Idempotent by source system + resource id (:class:`SourceRecord`): the same resource again is
"unchanged"; a changed one updates the record it became. Every resource ends in exactly one of
created, updated, unchanged or skipped (with a reason) in the report: nothing is dropped silently.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from medai_site.errors import DomainError, InvalidInput
from medai_site.models import AuditEvent
from medai_site.request_context import current_interface
from medai_site.roles import account_of
from patients.access import visible_patients
from patients.models import Allergy, CareTeam, Patient
from patients.services import (
    PatientInput,
    allergy_add,
    allergy_update,
    patient_update,
    patients_bulk_import,
)
from visits.icd10 import icd10_lookup
from visits.models import Diagnosis, Observation, ObservationDefinition, Visit
from visits.services import (
    ObservationImport,
    ObservationInput,
    VisitImport,
    diagnosis_add,
    diagnosis_set_status,
    observation_validate,
    observations_import,
    visit_close,
    visit_update,
    visits_bulk_import,
)

from . import fhir_in
from .fhir_in import Skip, SourceResource
from .models import Hl7Message, ImportRun, SourceCondition, SourceRecord

logger = logging.getLogger(__name__)

CHUNK = 1000  # resources per transaction: large enough for bulk inserts, small enough to stream
MAX_SKIPS_LISTED = 10_000  # the report lists this many skips one by one; all are counted
OUTCOMES = ("created", "updated", "unchanged", "skipped")


def source_key(source: str, resource_type: str, source_id: str) -> str:
    """HMAC of the source's identity of a record: found again on re-import, never stored clear."""
    key = bytes.fromhex(settings.BLIND_INDEX_KEY)
    message = f"source-record|{source}|{resource_type}|{source_id}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


@dataclass
class ImportReport:
    source: str
    dry_run: bool
    files: list[str] = field(default_factory=list)
    counts: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    reasons: Counter[str] = field(default_factory=Counter)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    unmapped_conditions: int = 0
    seconds: float = 0.0

    def count(self, resource_type: str, outcome: str) -> None:
        self.counts[resource_type or "(unknown)"][outcome] += 1

    def skip(self, resource: SourceResource, reason: str, detail: str) -> None:
        self.count(resource.resource_type, "skipped")
        self.reasons[reason] += 1
        if len(self.skipped) < MAX_SKIPS_LISTED:
            self.skipped.append(
                {
                    "file": resource.file,
                    "position": resource.position,
                    "resource_type": resource.resource_type[:40],
                    "id": resource.source_id[:64],
                    "reason": reason,
                    "detail": detail[:300],
                }
            )

    def total(self, outcome: str) -> int:
        return sum(c[outcome] for c in self.counts.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "dry_run": self.dry_run,
            "files": self.files,
            "counts": {
                kind: {o: counts[o] for o in OUTCOMES}
                for kind, counts in sorted(self.counts.items())
            },
            "totals": {o: self.total(o) for o in OUTCOMES},
            "skip_reasons": dict(sorted(self.reasons.items())),
            "skipped": self.skipped,
            "skipped_not_listed": max(0, self.total("skipped") - len(self.skipped)),
            "unmapped_conditions": self.unmapped_conditions,
            "errors": self.errors,
            "seconds": round(self.seconds, 2),
        }


class _DryRun(Exception):
    pass


Progress = Callable[[fhir_in.ReadProgress, ImportReport], None]


def fhir_import(
    *,
    paths: Sequence[Path],
    actor: Any,
    care_teams: Iterable[CareTeam] = (),
    source: str = "default",
    dry_run: bool = False,
    code_map: dict[tuple[str, str], str] | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Import FHIR R4 files (Bundles, NDJSON, single resources, directories); see the module.

    ``actor``: the importing user (attending of imported visits, author of every audit record);
    the patients it creates join ``care_teams``. ``dry_run``: everything is validated and counted
    exactly as a real run would, then rolled back. ``code_map``: (system, code) -> ICD-10, the
    maintained map for source codings (e.g. SNOMED CT) that bundles carry without ICD-10.
    """
    started = time.monotonic()
    report = ImportReport(source=source, dry_run=dry_run)
    files = fhir_in.input_files(list(paths))
    report.files = [f.name for f in files]
    run = _Run(actor=actor, teams=list(care_teams), source=source, code_map=code_map or {})
    read = fhir_in.ReadProgress()
    interface = current_interface.set(AuditEvent.Interface.IMPORT)
    try:
        with transaction.atomic() if dry_run else _no_transaction():
            chunk: list[SourceResource] = []
            for resource in fhir_in.read_resources(files, read):
                if resource.error:
                    report.errors.append(f"{resource.file} #{resource.position}: {resource.error}")
                    report.skip(resource, "unreadable", resource.error)
                    continue
                chunk.append(resource)
                if len(chunk) >= CHUNK:
                    run.process(chunk, report)
                    chunk = []
                    if progress:
                        progress(read, report)
            run.process(chunk, report)
            run.process_pending(report)
            if progress:
                progress(read, report)
            if dry_run:
                raise _DryRun
    except _DryRun:
        pass
    finally:
        current_interface.reset(interface)
    report.seconds = time.monotonic() - started
    return report


class _no_transaction:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


@dataclass
class _VisitRef:
    pk: int
    patient_id: int
    start: dt.datetime
    status: str


@dataclass
class _SourceRecordWrites:
    """One pass's source records (source resource -> the MedAI row it became), saved in two
    bulk writes at the end of the pass instead of one statement per resource."""

    user: Any
    new: list[SourceRecord] = field(default_factory=list)
    changed: list[SourceRecord] = field(default_factory=list)

    def point(
        self,
        record: SourceRecord | None,
        *,
        key: str,
        resource: SourceResource,
        digest: str,
        target: str,
        target_id: int,
        patient_id: int | None,
    ) -> None:
        """Point ``key`` at its MedAI row: a new source record, or the stored one updated."""
        if record is None:
            self.new.append(
                SourceRecord(
                    key=key,
                    resource_type=resource.resource_type,
                    content_hash=digest,
                    target_type=target,
                    target_id=target_id,
                    patient_id=patient_id,
                    imported_by=self.user,
                )
            )
            return
        record.content_hash, record.target_type = digest, target
        record.target_id, record.patient_id = target_id, patient_id
        self.changed.append(record)

    def save(self) -> None:
        SourceRecord.objects.bulk_create(self.new, batch_size=CHUNK)
        for record in self.changed:
            record.updated_at = timezone.now()
        SourceRecord.objects.bulk_update(
            self.changed,
            ["content_hash", "target_type", "target_id", "patient_id", "updated_at"],
            batch_size=CHUNK,
        )


class _Run:
    """One import's state: what each source id became, so references resolve in one pass."""

    def __init__(
        self,
        *,
        actor: Any,
        teams: list[CareTeam],
        source: str,
        code_map: dict[tuple[str, str], str],
    ) -> None:
        self.actor, self.teams, self.source, self.code_map = actor, teams, source, code_map
        self.user = account_of(actor)
        self.full_urls: dict[str, tuple[str, str]] = {}
        self.patients: dict[str, int | None] = {}  # source id -> patient pk (None: not visible)
        self.visits: dict[str, _VisitRef | None] = {}
        self.seen: dict[str, str] = {}  # key -> content hash, for ids repeated in one import
        self.pending: list[tuple[SourceResource, Any]] = []
        self.definitions = {d.code: d for d in ObservationDefinition.objects.all()}
        self.visible = visible_patients(actor)

    # --- the chunk loop ---------------------------------------------------------------------

    def process(
        self, chunk: list[SourceResource], report: ImportReport, final: bool = False
    ) -> None:
        if not chunk:
            return
        keys: dict[int, tuple[str, str]] = {}
        for n, resource in enumerate(chunk):
            if resource.full_url and resource.resource_type and resource.source_id:
                self.full_urls[resource.full_url] = (resource.resource_type, resource.source_id)
            if resource.resource_type in fhir_in.SUPPORTED and resource.source_id:
                keys[n] = (self._key(resource), fhir_in.content_hash(resource.data))
        records = self._records([key for key, _ in keys.values()])
        unchanged: list[tuple[SourceResource, str, SourceRecord]] = []
        parsed: dict[str, list[tuple[SourceResource, Any]]] = defaultdict(list)
        for n, resource in enumerate(chunk):
            key, digest = keys.get(n, ("", ""))
            record = records.get(key) if key else None
            if record is not None and record.content_hash == digest and resource.method != "DELETE":
                # Identical to what an earlier import validated and wrote: nothing to validate
                # or write again.
                unchanged.append((resource, digest, record))
                continue
            try:
                model = fhir_in.validate(resource)
            except Skip as skip:
                report.skip(resource, skip.reason, skip.detail)
                continue
            parsed[resource.resource_type].append((resource, model))
        self._unchanged(unchanged, report)
        self._write(parsed, report, final)

    def _unchanged(
        self, items: list[tuple[SourceResource, str, SourceRecord]], report: ImportReport
    ) -> None:
        """Count them, and remember the patients and visits they became (for references)."""
        patient_ids = {r.target_id for _, _, r in items if r.resource_type == "Patient"}
        visible: set[int] = set()
        if patient_ids:
            visible = set(self.visible.filter(pk__in=patient_ids).values_list("pk", flat=True))
        visit_ids = {r.target_id for _, _, r in items if r.resource_type == "Encounter"}
        visits: dict[int, _VisitRef] = {}
        if visit_ids:
            visits = {
                v.pk: _VisitRef(v.pk, v.patient_id, v.start, v.status)
                for v in Visit.objects.filter(
                    pk__in=visit_ids, patient__in=self.visible.values("pk")
                ).only("pk", "patient_id", "start", "status")
            }
        for resource, digest, record in items:
            if not self._first_time(resource, record.key, digest, report):
                continue
            if resource.resource_type == "Patient":
                self.patients[resource.source_id] = (
                    record.target_id if record.target_id in visible else None
                )
            elif resource.resource_type == "Encounter":
                self.visits[resource.source_id] = visits.get(record.target_id or 0)
            report.count(resource.resource_type, "unchanged")

    def process_pending(self, report: ImportReport) -> None:
        """Resources whose references came later in the files: one more try, then skipped."""
        pending, self.pending = self.pending, []
        grouped: dict[str, list[tuple[SourceResource, Any]]] = defaultdict(list)
        for resource, model in pending:
            grouped[resource.resource_type].append((resource, model))
        self._write(grouped, report, final=True)

    def _write(
        self, parsed: dict[str, list[tuple[SourceResource, Any]]], report: ImportReport, final: bool
    ) -> None:
        """One transaction per batch, types in reference order."""
        before = (
            {kind: Counter(c) for kind, c in report.counts.items()},
            Counter(report.reasons),
            len(report.skipped),
            report.unmapped_conditions,
            len(self.pending),
        )
        try:
            with transaction.atomic():
                self._patients(parsed.get("Patient", []), report)
                self._encounters(parsed.get("Encounter", []), report, final)
                self._conditions(parsed.get("Condition", []), report, final)
                self._observations(parsed.get("Observation", []), report, final)
                self._allergies(parsed.get("AllergyIntolerance", []), report, final)
        except DomainError as exc:  # a service refused what our checks let through: a bug
            self._chunk_failed(parsed, report, exc.message, before)
        except Exception as exc:  # never a traceback for the user; the class name for us
            logger.error("FHIR import batch failed (%s)", type(exc).__name__)
            self._chunk_failed(parsed, report, f"internal error ({type(exc).__name__})", before)

    def _chunk_failed(
        self,
        parsed: dict[str, list[tuple[SourceResource, Any]]],
        report: ImportReport,
        why: str,
        before: tuple[Any, ...],
    ) -> None:
        # The batch's outcomes so far were rolled back with it: count each resource once, skipped.
        counts, reasons, listed, unmapped, pending = before
        report.counts = defaultdict(Counter, counts)
        report.reasons = reasons
        del report.skipped[listed:]
        report.unmapped_conditions = unmapped
        del self.pending[pending:]
        report.errors.append(
            f"A batch of {sum(map(len, parsed.values()))} resources was rolled back: {why}"
        )
        for items in parsed.values():
            for resource, _ in items:
                report.skip(resource, "batch_failed", why)
        # What the rolled-back batch created no longer exists.
        self.patients = {
            k: v
            for k, v in self.patients.items()
            if v is None or Patient.objects.filter(pk=v).exists()
        }
        self.visits = {
            k: v
            for k, v in self.visits.items()
            if v is None or Visit.objects.filter(pk=v.pk).exists()
        }

    # --- helpers --------------------------------------------------------------------------------

    def _key(self, resource: SourceResource) -> str:
        return source_key(self.source, resource.resource_type, resource.source_id)

    def _first_time(
        self, resource: SourceResource, key: str, digest: str, report: ImportReport
    ) -> bool:
        """False (and reported) when the import already had this id."""
        if key not in self.seen:
            self.seen[key] = digest
            return True
        if self.seen[key] == digest:
            report.skip(resource, "duplicate", "The same resource appears twice in this import.")
        else:
            report.skip(
                resource,
                "duplicate_conflict",
                "Two different resources share this id in one import.",
            )
        return False

    def _records(self, keys: list[str]) -> dict[str, SourceRecord]:
        return {r.key: r for r in SourceRecord.objects.filter(key__in=keys)}

    def _patient_pk(self, reference: Any) -> int | bool | None:
        """The patient a reference names: pk, None (not visible / unknown), False (unresolved)."""
        target = fhir_in.reference_key(reference, self.full_urls)
        if target is None or target[0] != "Patient":
            return None
        if target[1] in self.patients:
            return self.patients[target[1]]
        record = SourceRecord.objects.filter(
            key=source_key(self.source, "Patient", target[1])
        ).first()
        if record is None:
            return False
        pk = record.target_id if self.visible.filter(pk=record.target_id or 0).exists() else None
        self.patients[target[1]] = pk
        return pk

    def _visit_ref(self, reference: Any) -> _VisitRef | bool | None:
        target = fhir_in.reference_key(reference, self.full_urls)
        if target is None or target[0] != "Encounter":
            return None
        if target[1] in self.visits:
            return self.visits[target[1]]
        record = SourceRecord.objects.filter(
            key=source_key(self.source, "Encounter", target[1])
        ).first()
        if record is None:
            return False
        visit = (
            Visit.objects.filter(pk=record.target_id or 0, patient__in=self.visible.values("pk"))
            .only("pk", "patient_id", "start", "status")
            .first()
        )
        ref = _VisitRef(visit.pk, visit.patient_id, visit.start, visit.status) if visit else None
        self.visits[target[1]] = ref
        return ref

    def _resolve_patient(
        self,
        resource: SourceResource,
        model: Any,
        reference: Any,
        report: ImportReport,
        final: bool,
    ) -> int | None:
        pk = self._patient_pk(reference)
        if pk is False:
            if final:
                report.skip(resource, "missing_reference", "Its patient is not in this import.")
            else:
                self.pending.append((resource, model))
            return None
        if pk is None:
            report.skip(
                resource,
                "missing_reference",
                "Its patient reference is missing, or names a patient outside your care teams.",
            )
            return None
        return pk

    def _writes(self) -> _SourceRecordWrites:
        return _SourceRecordWrites(user=self.user)

    # --- Patient --------------------------------------------------------------------------------

    def _patients(self, items: list[tuple[SourceResource, Any]], report: ImportReport) -> None:
        if not items:
            return
        keys = [self._key(r) for r, _ in items]
        records = self._records(keys)
        national_system = str(settings.MEDAI_FHIR_NATIONAL_ID_SYSTEM)
        candidates: list[tuple[SourceResource, str, str, fhir_in.PatientFields]] = []
        sources = self._writes()
        for (resource, model), key in zip(items, keys, strict=True):
            digest = fhir_in.content_hash(resource.data)
            if not self._first_time(resource, key, digest, report):
                continue
            record = records.get(key)
            if record is not None and record.content_hash == digest:
                visible = self.visible.filter(pk=record.target_id or 0).exists()
                self.patients[resource.source_id] = record.target_id if visible else None
                report.count("Patient", "unchanged")
                continue
            try:
                fields = fhir_in.patient_fields(model, national_system)
            except Skip as skip:
                report.skip(resource, skip.reason, skip.detail)
                continue
            candidates.append((resource, key, digest, fields))
        existing = {
            p.mrn: p for p in Patient.objects.filter(mrn__in=[c[3].mrn for c in candidates])
        }
        to_create: list[tuple[SourceResource, str, str, fhir_in.PatientFields]] = []
        for resource, key, digest, fields in candidates:
            patient = existing.get(fields.mrn)
            record = records.get(key)
            if patient is None:
                to_create.append((resource, key, digest, fields))
                continue
            if not self.visible.filter(pk=patient.pk).exists():
                self.patients[resource.source_id] = None
                report.skip(
                    resource,
                    "outside_scope",
                    "This MRN belongs to a patient outside your care teams.",
                )
                continue
            outcome = self._patient_update(patient, fields)
            report.count("Patient", outcome)
            self.patients[resource.source_id] = patient.pk
            sources.point(
                record,
                key=key,
                resource=resource,
                digest=digest,
                target="patients.patient",
                target_id=patient.pk,
                patient_id=patient.pk,
            )
        created = self._patients_create(to_create, report)
        for (resource, key, digest, _), patient in zip(to_create, created, strict=True):
            if patient is None:
                continue
            self.patients[resource.source_id] = patient.pk
            report.count("Patient", "created")
            sources.point(  # a stored record here means its patient was deleted since: recreated
                records.get(key),
                key=key,
                resource=resource,
                digest=digest,
                target="patients.patient",
                target_id=patient.pk,
                patient_id=patient.pk,
            )
        sources.save()

    def _patient_update(self, patient: Patient, fields: fhir_in.PatientFields) -> str:
        changes = {
            name: getattr(fields, name)
            for name in (
                "sex",
                "given_name",
                "family_name",
                "birth_date",
                "phone",
                "email",
                "address",
                "national_id",
            )
            if getattr(fields, name) != getattr(patient, name)
            and not (
                name in ("phone", "email", "address", "national_id") and not getattr(fields, name)
            )
        }
        if not changes:
            return "unchanged"
        patient_update(patient=patient, actor=self.actor, **changes)
        return "updated"

    def _patients_create(
        self,
        items: list[tuple[SourceResource, str, str, fhir_in.PatientFields]],
        report: ImportReport,
    ) -> list[Patient | None]:
        def inputs(fields: fhir_in.PatientFields) -> PatientInput:
            return PatientInput(
                mrn=fields.mrn,
                sex=fields.sex,
                given_name=fields.given_name,
                family_name=fields.family_name,
                birth_date=fields.birth_date,
                phone=fields.phone,
                email=fields.email,
                address=fields.address,
                national_id=fields.national_id,
                care_teams=tuple(self.teams),
            )

        if not items:
            return []
        try:
            with transaction.atomic():
                return list(
                    patients_bulk_import(patients=[inputs(f) for *_, f in items], actor=self.actor)
                )
        except DomainError:
            pass  # one of them is refused: find which, one at a time
        created: list[Patient | None] = []
        for resource, _, _, fields in items:
            try:
                with transaction.atomic():
                    created.append(
                        patients_bulk_import(patients=[inputs(fields)], actor=self.actor)[0]
                    )
            except DomainError as exc:
                report.skip(resource, "invalid_value", exc.message.removeprefix("Patient 1: "))
                created.append(None)
        return created

    # --- Encounter ------------------------------------------------------------------------------

    def _encounters(
        self, items: list[tuple[SourceResource, Any]], report: ImportReport, final: bool
    ) -> None:
        if not items:
            return
        keys = [self._key(r) for r, _ in items]
        records = self._records(keys)
        sources = self._writes()
        to_create: list[tuple[SourceResource, str, str, int, fhir_in.EncounterFields]] = []
        for (resource, model), key in zip(items, keys, strict=True):
            digest = fhir_in.content_hash(resource.data)
            record = records.get(key)
            if record is not None and record.content_hash == digest:
                if key in self.seen:
                    self._first_time(resource, key, digest, report)
                    continue
                self.seen[key] = digest
                visit = (
                    Visit.objects.filter(pk=record.target_id or 0)
                    .only("pk", "patient_id", "start", "status")
                    .first()
                )
                self.visits[resource.source_id] = (
                    _VisitRef(visit.pk, visit.patient_id, visit.start, visit.status)
                    if visit is not None and self.visible.filter(pk=visit.patient_id).exists()
                    else None
                )
                report.count("Encounter", "unchanged")
                continue
            patient_pk = self._resolve_patient(resource, model, model.subject, report, final)
            if patient_pk is None:
                continue
            if not self._first_time(resource, key, digest, report):
                continue
            try:
                fields = fhir_in.encounter_fields(model)
            except Skip as skip:
                report.skip(resource, skip.reason, skip.detail)
                continue
            if record is not None:
                outcome = self._encounter_update(record, fields)
                if outcome == "not_applied":
                    report.skip(
                        resource,
                        "not_applied",
                        "The visit is closed in MedAI; changes to it are not applied.",
                    )
                    continue
                record.content_hash = digest
                sources.changed.append(record)
                report.count("Encounter", "updated")
                continue
            to_create.append((resource, key, digest, patient_pk, fields))
        patients = {
            p.pk: p
            for p in Patient.objects.filter(pk__in={i[3] for i in to_create}).only(
                "pk", "birth_date"
            )
        }
        for (resource, key, digest, patient_pk, _fields), visit in zip(
            to_create, self._visits_create(to_create, patients, report), strict=True
        ):
            if visit is None:
                continue
            self.visits[resource.source_id] = _VisitRef(
                visit.pk, patient_pk, visit.start, visit.status
            )
            report.count("Encounter", "created")
            sources.point(
                None,
                key=key,
                resource=resource,
                digest=digest,
                target="visits.visit",
                target_id=visit.pk,
                patient_id=patient_pk,
            )
        sources.save()

    def _visits_create(
        self,
        items: list[tuple[SourceResource, str, str, int, fhir_in.EncounterFields]],
        patients: dict[int, Patient],
        report: ImportReport,
    ) -> list[Visit | None]:
        def inputs(patient_pk: int, fields: fhir_in.EncounterFields) -> VisitImport:
            return VisitImport(
                patient=patients[patient_pk],
                attending=self.user,
                start=fields.start,
                end=fields.end,
                visit_type=fields.visit_type,
                status=Visit.Status.CLOSED if fields.closed else Visit.Status.OPEN,
                text={"chief_complaint": fields.reason} if fields.reason else None,
            )

        if not items:
            return []
        try:
            with transaction.atomic():
                return list(
                    visits_bulk_import(
                        visits=[inputs(i[3], i[4]) for i in items], actor=self.actor
                    ).visits
                )
        except DomainError:
            pass
        created: list[Visit | None] = []
        for resource, _, _, patient_pk, fields in items:
            try:
                with transaction.atomic():
                    created.append(
                        visits_bulk_import(
                            visits=[inputs(patient_pk, fields)], actor=self.actor
                        ).visits[0]
                    )
            except DomainError as exc:
                report.skip(resource, "invalid_value", exc.message.removeprefix("Visit 1: "))
                created.append(None)
        return created

    def _encounter_update(self, record: SourceRecord, fields: fhir_in.EncounterFields) -> str:
        visit = Visit.objects.filter(pk=record.target_id or 0).first()
        if visit is None or visit.status == Visit.Status.CLOSED:
            return "not_applied"
        changes: dict[str, Any] = {}
        if visit.start != fields.start:
            changes["start"] = fields.start
        if visit.visit_type != fields.visit_type:
            changes["visit_type"] = fields.visit_type
        if fields.reason and visit.chief_complaint != fields.reason:
            changes["chief_complaint"] = fields.reason
        if changes:
            visit = visit_update(visit=visit, actor=self.actor, request_advice=False, **changes)
        if fields.closed:
            visit_close(visit=visit, actor=self.actor, end=fields.end)
        return "updated"

    # --- Condition ------------------------------------------------------------------------------

    def _conditions(
        self, items: list[tuple[SourceResource, Any]], report: ImportReport, final: bool
    ) -> None:
        if not items:
            return
        keys = [self._key(r) for r, _ in items]
        records = self._records(keys)
        sources = self._writes()
        for (resource, model), key in zip(items, keys, strict=True):
            digest = fhir_in.content_hash(resource.data)
            record = records.get(key)
            if record is not None and record.content_hash == digest:
                if self._first_time(resource, key, digest, report):
                    report.count("Condition", "unchanged")
                continue
            patient_pk = self._resolve_patient(resource, model, model.subject, report, final)
            if patient_pk is None:
                continue
            visit: _VisitRef | None = None
            if model.encounter is not None:
                found = self._visit_ref(model.encounter)
                if found is False and not final:
                    self.pending.append((resource, model))
                    continue
                visit = found if isinstance(found, _VisitRef) else None
                if visit is not None and visit.patient_id != patient_pk:
                    report.skip(
                        resource, "invalid_reference", "Its encounter is another patient's."
                    )
                    continue
            if not self._first_time(resource, key, digest, report):
                continue
            try:
                fields = fhir_in.condition_fields(model, self.code_map)
            except Skip as skip:
                report.skip(resource, skip.reason, skip.detail)
                continue
            target = self._condition_write(record, fields, patient_pk, visit, report)
            if target is None:
                report.skip(
                    resource,
                    "not_applied",
                    "The diagnosis's code changed; MedAI keeps the one recorded.",
                )
                continue
            label, target_id, outcome = target
            report.count("Condition", outcome)
            sources.point(
                record,
                key=key,
                resource=resource,
                digest=digest,
                target=label,
                target_id=target_id,
                patient_id=patient_pk,
            )
        sources.save()

    def _condition_write(
        self,
        record: SourceRecord | None,
        fields: fhir_in.ConditionFields,
        patient_pk: int,
        visit: _VisitRef | None,
        report: ImportReport,
    ) -> tuple[str, int, str] | None:
        code = ""
        if fields.icd10 and visit is not None:
            try:
                code, _ = icd10_lookup(fields.icd10)
            except InvalidInput:
                code = ""  # not in the WHO list (e.g. an ICD-10-CM extension): kept as given
        if record is not None and record.target_type == "visits.diagnosis":
            diagnosis = Diagnosis.objects.filter(pk=record.target_id or 0).first()
            if diagnosis is None or diagnosis.code != code:
                return None
            if diagnosis.status != fields.status:
                diagnosis_set_status(diagnosis=diagnosis, status=fields.status, actor=self.actor)
                return ("visits.diagnosis", diagnosis.pk, "updated")
            return ("visits.diagnosis", diagnosis.pk, "unchanged")
        if code and visit is not None:
            recorded = list(Diagnosis.objects.filter(visit_id=visit.pk))
            same = next((d for d in recorded if d.code == code), None)
            if same is not None:
                return ("visits.diagnosis", same.pk, "unchanged")
            standing = any(
                d.rank == Diagnosis.Rank.PRIMARY and d.status != Diagnosis.Status.REFUTED
                for d in recorded
            )
            rank = Diagnosis.Rank.SECONDARY if standing else Diagnosis.Rank.PRIMARY
            diagnosis = diagnosis_add(
                visit=Visit.objects.get(pk=visit.pk),
                code=code,
                rank=rank,
                status=fields.status,
                actor=self.actor,
            )
            return ("visits.diagnosis", diagnosis.pk, "created")
        report.unmapped_conditions += 1
        condition = source_condition_save(
            pk=record.target_id
            if record is not None and record.target_type == "interop.sourcecondition"
            else None,
            patient_id=patient_pk,
            visit_id=visit.pk if visit is not None else None,
            fields=fields,
            actor=self.actor,
        )
        return ("interop.sourcecondition", condition.pk, "created" if record is None else "updated")

    # --- Observation ----------------------------------------------------------------------------

    def _observations(
        self, items: list[tuple[SourceResource, Any]], report: ImportReport, final: bool
    ) -> None:
        if not items:
            return
        keys = [self._key(r) for r, _ in items]
        records = self._records(keys)
        known = set(self.definitions)
        accepted: list[
            tuple[SourceResource, str, str, SourceRecord | None, list[ObservationImport]]
        ] = []
        for (resource, model), key in zip(items, keys, strict=True):
            digest = fhir_in.content_hash(resource.data)
            record = records.get(key)
            if record is not None and record.content_hash == digest:
                if self._first_time(resource, key, digest, report):
                    report.count("Observation", "unchanged")
                continue
            try:
                values = fhir_in.observation_values(model, known)
            except Skip as skip:
                if self._first_time(resource, key, digest, report):
                    report.skip(resource, skip.reason, skip.detail)
                continue
            patient_pk = self._resolve_patient(resource, model, model.subject, report, final)
            if patient_pk is None:
                continue
            when = fhir_in.observation_time(model)
            visit: _VisitRef | None
            if model.encounter is not None:
                found = self._visit_ref(model.encounter)
                if found is False and not final:
                    self.pending.append((resource, model))
                    continue
                visit = found if isinstance(found, _VisitRef) else None
            else:
                visit = self._covering_visit(patient_pk, when)
            if not self._first_time(resource, key, digest, report):
                continue
            if visit is None:
                report.skip(
                    resource,
                    "missing_reference",
                    "No encounter of this import or visit of the patient covers this observation.",
                )
                continue
            if visit.patient_id != patient_pk:
                report.skip(resource, "invalid_reference", "Its encounter is another patient's.")
                continue
            entries = []
            try:
                for value in values:
                    entry = ObservationInput(value.code, value.value, value.unit)
                    observation_validate(entry, self.definitions[value.code])
                    entries.append(
                        ObservationImport(
                            visit_id=visit.pk,
                            patient_id=patient_pk,
                            observation=entry,
                            recorded_at=when or visit.start,
                        )
                    )
            except InvalidInput as exc:
                reason = "implausible_value" if "possible range" in exc.message else "invalid_value"
                report.skip(resource, reason, exc.message)
                continue
            accepted.append((resource, key, digest, record, entries))
        self._observations_write(accepted, report)

    def _covering_visit(self, patient_pk: int, when: dt.datetime | None) -> _VisitRef | None:
        if when is None:
            return None
        visit = (
            Visit.objects.filter(patient_id=patient_pk, start__lte=when)
            .filter(Q(end__isnull=True) | Q(end__gte=when))
            .order_by("-start")
            .only("pk", "patient_id", "start", "status")
            .first()
        )
        return _VisitRef(visit.pk, visit.patient_id, visit.start, visit.status) if visit else None

    def _observations_write(
        self,
        accepted: list[
            tuple[SourceResource, str, str, SourceRecord | None, list[ObservationImport]]
        ],
        report: ImportReport,
    ) -> None:
        if not accepted:
            return
        # One current value per code and visit: the latest wins, in this batch and against what is
        # stored (a value of the same resource, updated, replaces its own).
        latest: dict[tuple[int, str], dt.datetime] = {}
        for *_, entries in accepted:
            for e in entries:
                slot = (e.visit_id, e.observation.code)
                latest[slot] = max(latest.get(slot, e.recorded_at), e.recorded_at)
        stored = Observation.objects.filter(
            visit_id__in={s[0] for s in latest}, definition__code__in={s[1] for s in latest}
        ).values_list("visit_id", "definition__code", "recorded_at")
        for visit_id, code, recorded_at in stored:
            slot = (visit_id, code)
            if slot in latest and recorded_at > latest[slot]:
                latest[slot] = recorded_at
        writes: list[ObservationImport] = []
        kept: list[
            tuple[SourceResource, str, str, SourceRecord | None, list[ObservationImport]]
        ] = []
        for resource, key, digest, record, entries in accepted:
            if any(e.recorded_at < latest[(e.visit_id, e.observation.code)] for e in entries):
                report.skip(
                    resource,
                    "superseded",
                    "A later value of the same code on the same visit is kept (one per visit).",
                )
                continue
            kept.append((resource, key, digest, record, entries))
            writes.extend(entries)
        rows = observations_import(entries=writes, actor=self.actor)
        row_of = {(r.visit_id, r.definition.code): r.pk for r in rows}
        sources = self._writes()
        for resource, key, digest, record, entries in kept:
            first = entries[0]
            target_id = row_of[(first.visit_id, first.observation.code)]
            report.count("Observation", "created" if record is None else "updated")
            sources.point(
                record,
                key=key,
                resource=resource,
                digest=digest,
                target="visits.observation",
                target_id=target_id,
                patient_id=first.patient_id,
            )
        sources.save()

    # --- AllergyIntolerance ---------------------------------------------------------------------

    def _allergies(
        self, items: list[tuple[SourceResource, Any]], report: ImportReport, final: bool
    ) -> None:
        if not items:
            return
        keys = [self._key(r) for r, _ in items]
        records = self._records(keys)
        sources = self._writes()
        for (resource, model), key in zip(items, keys, strict=True):
            digest = fhir_in.content_hash(resource.data)
            record = records.get(key)
            if record is not None and record.content_hash == digest:
                if self._first_time(resource, key, digest, report):
                    report.count("AllergyIntolerance", "unchanged")
                continue
            patient_pk = self._resolve_patient(resource, model, model.patient, report, final)
            if patient_pk is None:
                continue
            if not self._first_time(resource, key, digest, report):
                continue
            try:
                fields = fhir_in.allergy_fields(model)
            except Skip as skip:
                report.skip(resource, skip.reason, skip.detail)
                continue
            if fields.severity not in Allergy.Severity.values:
                report.skip(resource, "invalid_value", "Unknown reaction severity.")
                continue
            substance = " ".join(fields.substance.split()).lower()
            allergy = Allergy.objects.filter(patient_id=patient_pk, substance=substance).first()
            if allergy is None:
                allergy = allergy_add(
                    patient=Patient.objects.get(pk=patient_pk),
                    substance=fields.substance,
                    reaction=fields.reaction,
                    severity=fields.severity,
                    actor=self.actor,
                )
                outcome = "created"
            elif (allergy.reaction, allergy.severity) != (fields.reaction, fields.severity):
                allergy_update(
                    allergy=allergy,
                    reaction=fields.reaction,
                    severity=fields.severity,
                    actor=self.actor,
                )
                outcome = "updated"
            else:
                outcome = "unchanged"
            report.count("AllergyIntolerance", outcome)
            sources.point(
                record,
                key=key,
                resource=resource,
                digest=digest,
                target="patients.allergy",
                target_id=allergy.pk,
                patient_id=patient_pk,
            )
        sources.save()


def source_condition_save(
    *,
    pk: int | None,
    patient_id: int,
    visit_id: int | None,
    fields: fhir_in.ConditionFields,
    actor: object | None,
) -> SourceCondition:
    """Keep (or update) a condition in its source coding; audited like a diagnosis."""
    from medai_site.audit import audit_record

    condition = SourceCondition.objects.filter(pk=pk).first() if pk else None
    if condition is None:
        condition = SourceCondition(patient_id=patient_id)
    condition.visit_id = visit_id
    condition.system = fields.system or "unknown"
    condition.code = fields.code
    condition.display = fields.display
    condition.clinical_status = fields.clinical_status
    condition.verification_status = fields.status
    condition.onset = fields.onset
    condition.save()
    audit_record(actor=actor, action=AuditEvent.Action.UPDATE, obj=condition, patient_id=patient_id)
    return condition


# --- import runs started in the admin (run by a worker) ---------------------------------------


def import_upload_dir() -> Path:
    """Where uploaded import files wait for their worker: the server's own disk, never the
    broker (tasks carry the run id only)."""
    path = Path(settings.MEDAI_IMPORT_DIR)
    path.mkdir(parents=True, exist_ok=True)
    return path


@transaction.atomic
def import_run_create(
    *,
    path: Path,
    file_name: str,
    dry_run: bool,
    source: str,
    care_team: CareTeam | None,
    actor: Any,
    kind: str = ImportRun.Kind.FHIR,
) -> ImportRun:
    """Record an import of ``path`` (already saved under :func:`import_upload_dir`) and queue
    it for a worker once this transaction commits."""
    from medai_site.audit import audit_record

    run = ImportRun.objects.create(
        kind=kind,
        dry_run=dry_run,
        path=str(path),
        file_name=file_name[:255],
        source=(source or "default")[:100],
        care_team_name=care_team.name if care_team else "",
        started_by=actor,
    )
    audit_record(actor=actor, action=AuditEvent.Action.CREATE, obj=run)
    transaction.on_commit(lambda: _enqueue(run.pk))
    return run


def _enqueue(run_id: int) -> None:
    from .tasks import import_run_execute as task

    try:
        task.delay(run_id)
    except Exception as exc:  # the broker is down: the run says so instead of hanging queued
        logger.error("import run %s not queued (%s)", run_id, type(exc).__name__)
        ImportRun.objects.filter(pk=run_id, status=ImportRun.Status.QUEUED).update(
            status=ImportRun.Status.FAILED, error="The job queue is unavailable; start it again."
        )


def import_run_execute(*, run_id: int) -> ImportRun:
    """Run a queued import: progress on the run as the file is read, then its report."""
    run = ImportRun.objects.select_related("started_by").get(pk=run_id)
    if run.status != ImportRun.Status.QUEUED:
        return run  # already run (a redelivered message)
    ImportRun.objects.filter(pk=run.pk).update(status=ImportRun.Status.RUNNING, progress=0.0)
    teams = list(CareTeam.objects.filter(name=run.care_team_name)) if run.care_team_name else []

    def progress(read: fhir_in.ReadProgress, report: ImportReport) -> None:
        share = read.done / read.total if read.total else 1.0
        ImportRun.objects.filter(pk=run.pk).update(progress=round(min(share, 1.0), 4))

    try:
        if run.kind == ImportRun.Kind.HL7:
            from .hl7_in import hl7_import_file

            report_data = hl7_import_file(
                path=Path(run.path), actor=run.started_by, dry_run=run.dry_run
            )
        else:
            report_data = fhir_import(
                paths=[Path(run.path)],
                actor=run.started_by,
                care_teams=teams,
                source=run.source,
                dry_run=run.dry_run,
                progress=progress,
            ).as_dict()
    except Exception as exc:
        logger.error("import run %s failed (%s)", run.pk, type(exc).__name__)
        ImportRun.objects.filter(pk=run.pk).update(
            status=ImportRun.Status.FAILED,
            error=f"The import stopped ({type(exc).__name__}); nothing after the last batch was written.",
            finished_at=timezone.now(),
        )
        return ImportRun.objects.get(pk=run.pk)
    ImportRun.objects.filter(pk=run.pk).update(
        status=ImportRun.Status.SUCCEEDED,
        progress=1.0,
        report=report_data,
        finished_at=timezone.now(),
    )
    if not run.dry_run:
        Path(run.path).unlink(missing_ok=True)  # imported: the upload is not kept
    return ImportRun.objects.get(pk=run.pk)


# --- HL7 v2 messages ------------------------------------------------------------------------------


def hl7_key(*, facility: str, control_id: str) -> str:
    return source_key(f"hl7:{facility}", "message", control_id)


def hl7_message_seen(*, facility: str, control_id: str) -> Hl7Message | None:
    return Hl7Message.objects.filter(key=hl7_key(facility=facility, control_id=control_id)).first()


def hl7_message_record(
    *, facility: str, control_id: str, raw: str, result: Any, actor: Any
) -> Hl7Message:
    """Keep the message (encrypted) with its outcome: the idempotency record, and the quarantine
    when nothing could be stored for it."""
    from medai_site.audit import audit_record

    message = Hl7Message.objects.create(
        key=hl7_key(facility=facility, control_id=control_id),
        outcome=result.code,
        quarantined=result.quarantined,
        reason=result.text[:500],
        raw=raw,
        patient_id=result.patient_id,
        visit_id=result.visit_id,
        observations=result.stored,
        received_by=account_of(actor),
    )
    audit_record(
        actor=actor, action=AuditEvent.Action.CREATE, obj=message, patient_id=result.patient_id
    )
    return message
