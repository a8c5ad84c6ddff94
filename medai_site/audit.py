"""Writing and verifying the audit trail. Every service that reads or writes PHI records here.

Records form a hash chain: ``hash = SHA-256(prev_hash | canonical content)``, in id order. Writers
take a transaction-scoped advisory lock (PostgreSQL) so two requests never chain to the same
predecessor; SQLite serialises writers by itself. The database refuses UPDATE and DELETE on the
table (trigger, migration 0004), and :func:`audit_verify` finds any record altered or removed
behind the application's back (e.g. by someone with database superuser rights).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass

from django.db import connection, models, transaction
from django.utils import timezone

from .models import AuditEvent
from .request_context import current_interface, current_request_id

__all__ = [
    "audit_record",
    "audit_record_many",
    "audit_verify",
    "current_interface",
    "current_request_id",
]

GENESIS = "0" * 64
# Arbitrary but fixed key of the advisory lock that serialises audit writers ("MEDAI" in ASCII).
AUDIT_LOCK_KEY = 0x4D45444149


def content_hash(prev_hash: str, event: AuditEvent) -> str:
    content = json.dumps(
        [
            event.at.isoformat(),
            event.actor_id,
            event.action,
            event.interface,
            event.patient_id,
            event.object_type,
            event.object_id,
            event.request_id,
        ],
        separators=(",", ":"),
    )
    return hashlib.sha256(f"{prev_hash}|{content}".encode()).hexdigest()


def audit_record(
    *,
    actor: object | None,
    action: str,
    obj: models.Model | None = None,
    patient_id: int | None = None,
    interface: str | None = None,
    object_type: str = "",
    object_id: str = "",
) -> AuditEvent:
    """Append one event; ``object_type``/``object_id`` name an object that could not be loaded."""
    user = actor if getattr(actor, "is_authenticated", False) else None
    event = AuditEvent(
        at=timezone.now(),
        actor=user,
        action=action,
        interface=interface or current_interface.get(),
        patient_id=patient_id,
        object_type=obj._meta.label_lower if obj is not None else object_type,
        object_id=str(obj.pk) if obj is not None else str(object_id),
        request_id=current_request_id.get(),
    )
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [AUDIT_LOCK_KEY])
        event.prev_hash = (
            AuditEvent.objects.order_by("-id").values_list("hash", flat=True).first() or GENESIS
        )
        event.hash = content_hash(event.prev_hash, event)
        event.save(force_insert=True)
    return event


def audit_record_many(
    *,
    actor: object | None,
    action: str,
    patient_ids: list[int],
    object_type: str = "patients.patient",
    object_ids: list[int] | None = None,
) -> None:
    """One event per patient shown in a list (a page of names is an access to each), chained in
    one insert: a constant number of queries however long the list.

    ``object_ids``: when the events are about other objects (e.g. visits imported in bulk), their
    ids, one per entry of ``patient_ids``; by default the patients themselves.
    """
    if not patient_ids:
        return
    user = actor if getattr(actor, "is_authenticated", False) else None
    interface, request_id = current_interface.get(), current_request_id.get()
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [AUDIT_LOCK_KEY])
        prev = AuditEvent.objects.order_by("-id").values_list("hash", flat=True).first() or GENESIS
        events = []
        objects = patient_ids if object_ids is None else object_ids
        for patient_id, object_id in zip(patient_ids, objects, strict=True):
            event = AuditEvent(
                at=timezone.now(),
                actor=user,
                action=action,
                interface=interface,
                patient_id=patient_id,
                object_type=object_type,
                object_id=str(object_id),
                request_id=request_id,
            )
            event.prev_hash, event.hash = prev, content_hash(prev, event)
            prev = event.hash
            events.append(event)
        # bulk_create keeps list order and ids ascend in it, so the chain order is the id order.
        AuditEvent.objects.bulk_create(events)


@dataclass(frozen=True)
class ChainProblem:
    event_id: int
    problem: str


def audit_verify(batch_size: int = 2000) -> tuple[int, list[ChainProblem]]:
    """Walk the chain in id order; return (records checked, problems found)."""
    problems: list[ChainProblem] = []
    expected_prev, checked = GENESIS, 0
    for event in _in_id_order(batch_size):
        checked += 1
        if event.prev_hash != expected_prev:
            problems.append(
                ChainProblem(event.pk, "the record before it is missing or was altered")
            )
        if content_hash(event.prev_hash, event) != event.hash:
            problems.append(ChainProblem(event.pk, "its content does not match its hash (altered)"))
        expected_prev = event.hash
    return checked, problems


def _in_id_order(batch_size: int) -> Iterator[AuditEvent]:
    last_id = 0
    while True:
        batch = list(AuditEvent.objects.filter(pk__gt=last_id).order_by("pk")[:batch_size])
        if not batch:
            return
        yield from batch
        last_id = batch[-1].pk
