"""Writing and verifying the audit trail. Every service that reads or writes PHI records here.

The trail is ``MEDAI_AUDIT_LANES`` (16) independent hash chains, "lanes", each with its own
genesis; every record belongs to one (``AuditEvent.lane``) and chains to the previous record of
its lane in id order. Since migration 0005 each record's hash is ``HMAC-SHA256(
AUDIT_CHAIN_KEYS[key_id], prev_hash | canonical content)`` (chain version 2; since 0007 version
3, whose content also holds ``patient_ids``, the patients one list view showed:
:func:`audit_record_list`; since 0008 version 4, whose content also holds the lane, so a record
moved to another lane no longer verifies). The key lives in the deployment's secret store, not in
the database, so someone who can rewrite the table cannot recompute valid hashes. Records written
before keys existed keep their unkeyed SHA-256 (chain version 1) and still verify; they are a
prefix of lane 0, never written again. Everything written before lanes is lane 0, whose chain
simply continues.

Writers: a transaction takes one lane's transaction-scoped advisory lock (PostgreSQL,
``pg_try_advisory_xact_lock(AUDIT_LANE_LOCK_CLASS, lane)``): its thread's own lane if free, else
the next free one in order, and only if every lane is busy it waits for its own. It keeps that
lane for every record it writes until it commits, and never holds two. So two requests never
chain to the same predecessor, up to ``MEDAI_AUDIT_LANES`` audited transactions proceed at once
instead of queueing on one lock held until each one's COMMIT, and ids are drawn under the lane's
lock, so within a lane the committed records are always a prefix in id order. SQLite serialises
writers by itself and uses one lane.

Tamper evidence is that of the single chain, per lane: each lane is a complete keyed chain whose
head is anchored outside the database (:mod:`.audit_anchor`) with the number of its records. The
database refuses UPDATE, DELETE and TRUNCATE (triggers, migrations 0004/0005) and the
application's role holds only INSERT and SELECT here. :func:`audit_verify` checks every record
against its lane's previous one and every anchor, so a record altered, removed, re-hashed or
moved to another lane, a shortened lane, an emptied table, and records no anchor covers once
overdue are each reported. To hide a change an attacker needs the HMAC key (to re-hash the
lane) and the anchor file (to rewrite the heads it recorded) — as before lanes: the lanes
multiply the heads anchored, not what a forger must hold.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import connection, models, transaction
from django.utils import timezone

from .models import AuditEvent
from .request_context import current_api_token_id, current_interface, current_request_id
from .roles import account_of

if TYPE_CHECKING:
    from .audit_anchor import Anchor, LaneHead

__all__ = [
    "audit_record",
    "audit_record_each",
    "audit_record_list",
    "audit_record_many",
    "audit_verify",
    "current_interface",
    "current_request_id",
]

GENESIS = "0" * 64
# Arbitrary but fixed key of the single advisory lock that serialised audit writers before lanes
# ("MEDAI" in ASCII); kept so a reader of old deployments' lock tables can name it.
AUDIT_LOCK_KEY = 0x4D45444149
# The class half of the two-int4 advisory lock key of a lane ("MEDA" in ASCII, fits an int4);
# the lane number is the other half: pg_advisory_xact_lock(AUDIT_LANE_LOCK_CLASS, lane).
AUDIT_LANE_LOCK_CLASS = 0x4D454441
CHAIN_V1_SHA256 = 1  # unkeyed: records written before migration 0005
CHAIN_V2_HMAC = 2  # keyed: HMAC-SHA256 under AUDIT_CHAIN_KEYS[key_id]
CHAIN_V3_HMAC = 3  # keyed, and the patient ids of a list record are hashed too (migration 0007)
CHAIN_V4_LANES = 4  # keyed, patient ids, and the record's lane hashed too (migration 0008)
KEYED_VERSIONS = (CHAIN_V2_HMAC, CHAIN_V3_HMAC, CHAIN_V4_LANES)
CHAIN_VERSION = CHAIN_V4_LANES  # what new records are written as


def content_hash(prev_hash: str, event: AuditEvent) -> str:
    """Chain version 1 (unkeyed SHA-256), kept to verify records written before migration 0005.

    Migration 0004 imports this name; its content list must never change.
    """
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


def keyed_hash(prev_hash: str, event: AuditEvent, key: bytes) -> str:
    """Chain versions 2 to 4: HMAC-SHA256 over the previous hash and every column but the hash
    itself (version 2 predates ``patient_ids``, version 3 predates ``lane``; their content lists
    must never change). Hashing the lane means a record moved to another lane no longer
    verifies there."""
    content: list[object] = [
        event.at.isoformat(),
        event.actor_id,
        event.action,
        event.interface,
        event.patient_id,
        event.object_type,
        event.object_id,
        event.request_id,
        event.api_token_id,
        event.chain_version,
        event.key_id,
    ]
    if event.chain_version >= CHAIN_V3_HMAC:
        content.append(event.patient_ids)
    if event.chain_version >= CHAIN_V4_LANES:
        content.append(event.lane)
    text = json.dumps(content, separators=(",", ":"))
    return hmac.new(key, f"{prev_hash}|{text}".encode(), hashlib.sha256).hexdigest()


def signing_key() -> tuple[str, bytes]:
    """The key new records and anchors are signed with: the first of ``AUDIT_CHAIN_KEYS``."""
    key_id, key = next(iter(settings.AUDIT_CHAIN_KEYS.items()))
    return key_id, key


def verification_key(key_id: str) -> bytes | None:
    return settings.AUDIT_CHAIN_KEYS.get(key_id)


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
    event = _new_event(
        actor=actor,
        action=action,
        interface=interface or current_interface.get(),
        patient_id=patient_id,
        object_type=obj._meta.label_lower if obj is not None else object_type,
        object_id=str(obj.pk) if obj is not None else str(object_id),
    )
    _append([event])
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
    interface = current_interface.get()
    objects = patient_ids if object_ids is None else object_ids
    _append(
        [
            _new_event(
                actor=actor,
                action=action,
                interface=interface,
                patient_id=patient_id,
                object_type=object_type,
                object_id=str(object_id),
            )
            for patient_id, object_id in zip(patient_ids, objects, strict=True)
        ]
    )


def audit_record_each(
    *,
    actor: object | None,
    action: str,
    records: Sequence[tuple[models.Model, int | None, str]],
    interface: str | None = None,
) -> list[AuditEvent]:
    """One event per (object, patient id, request id), chained in one insert: work done for
    several requests at once (an advice batch) is audited as if each were done alone, each event
    with the id of the request it serves."""
    if not records:
        return []
    events = []
    for obj, patient_id, request_id in records:
        event = _new_event(
            actor=actor,
            action=action,
            interface=interface or current_interface.get(),
            patient_id=patient_id,
            object_type=obj._meta.label_lower,
            object_id=str(obj.pk),
        )
        event.request_id = request_id
        events.append(event)
    _append(events)
    return events


def audit_record_list(
    *,
    actor: object | None,
    object_type: str,
    patient_ids: Iterable[int],
    object_id: str = "list",
) -> AuditEvent:
    """One record for one list of records of several patients (an admin changelist, an
    autocomplete answer): the ids of every patient it showed, sorted, hashed with the record.

    The per-patient audit report finds it for each of them (:mod:`.audit_report`).
    """
    event = _new_event(
        actor=actor,
        action=AuditEvent.Action.LIST,
        interface=current_interface.get(),
        patient_id=None,
        object_type=object_type,
        object_id=object_id,
    )
    event.patient_ids = sorted({int(i) for i in patient_ids if i is not None})
    _append([event])
    return event


def _new_event(
    *,
    actor: object | None,
    action: str,
    interface: str,
    patient_id: int | None,
    object_type: str,
    object_id: str,
) -> AuditEvent:
    user = account_of(actor)
    key_id, _ = signing_key()
    return AuditEvent(
        at=timezone.now(),
        actor=user,
        action=action,
        interface=interface,
        patient_id=patient_id,
        object_type=object_type,
        object_id=object_id,
        request_id=current_request_id.get(),
        api_token_id=current_api_token_id.get(),
        chain_version=CHAIN_VERSION,
        key_id=key_id,
    )


def lane_count() -> int:
    """How many independent chains writers spread over: ``MEDAI_AUDIT_LANES`` on PostgreSQL,
    1 elsewhere (SQLite serialises writers by itself, so lanes would buy nothing)."""
    if connection.vendor != "postgresql":
        return 1
    return max(1, int(settings.MEDAI_AUDIT_LANES))


def preferred_lane(lanes: int) -> int:
    """This thread's own lane: a process's request thread usually finds it free, so the first
    try-lock succeeds and two threads rarely contend for one lane."""
    return hash((os.getpid(), threading.get_ident())) % lanes


# Attribute on the connection wrapper: (marker, lane) of the lane lock the current transaction
# holds. ``marker`` is registered with ``transaction.on_commit``: Django drops it when the
# transaction (or the savepoint the lock was taken in) ends, exactly when PostgreSQL releases
# the transaction-scoped advisory lock, so "the marker is still registered" means "still held".
_HELD_LANE = "_medai_audit_lane"


def _held_lane() -> int | None:
    held = getattr(connection, _HELD_LANE, None)
    if held is None:
        return None
    marker, lane = held
    if any(marker in entry for entry in connection.run_on_commit):
        return int(lane)
    return None


# Lane locking and the head read in one round trip: two statements in one query string. Each
# statement of a query string takes its own snapshot (READ COMMITTED), so the head is read after
# the lock is held and sees the commit of whoever held the lane before: the order two round trips
# gave. (In one statement the head would be read from a snapshot taken before the lock.) The
# first statement remembers the lane it got for the second in a transaction-local setting.
_TRY_LANES_SQL = (
    "SELECT set_config('medai.audit_lane', lane::text, true) FROM unnest(%s::int[]) AS lane "
    "WHERE pg_try_advisory_xact_lock(%s, lane) LIMIT 1"
)
# The table name is the model's own and {lane} a placeholder or the setting: no input reaches it.
_HEAD_SQL = (
    # B608: the model's own table name; {lane} is filled with a bound placeholder or an int.
    f'SELECT "hash" FROM "{AuditEvent._meta.db_table}" WHERE "lane" = {{lane}} '  # noqa: S608  # nosec B608
    'ORDER BY "id" DESC LIMIT 1'
)
_LANE_SETTING = "NULLIF(current_setting('medai.audit_lane', true), '')::int"


def _lane_lock() -> tuple[int, str]:
    """Take one lane's lock for the rest of the transaction; return the lane and the hash of its
    last record (GENESIS for an empty lane), read under the lock.

    The lane this transaction already holds, if any (a transaction never holds two: with the
    blocking fallback below, two transactions each holding one and waiting for the other's
    would deadlock). Otherwise one statement tries the lanes in order from this thread's own and
    takes the first it gets: the ``LIMIT 1`` over the function scan stops at the first lock
    taken, so no other lane is locked (no ORDER BY, which would evaluate every row first).
    Only when every lane is busy does it wait, on its own lane.
    """
    lanes = lane_count()
    if connection.vendor != "postgresql":
        return 0, _head(0)
    held = _held_lane()
    if held is not None:
        return held, _head(held)
    first = preferred_lane(lanes)
    order = [(first + step) % lanes for step in range(lanes)]
    with connection.cursor() as cursor:
        cursor.execute(
            f"{_TRY_LANES_SQL}; SELECT {_LANE_SETTING}, ({_HEAD_SQL.format(lane=_LANE_SETTING)})",
            [order, AUDIT_LANE_LOCK_CLASS],
        )
        cursor.nextset()
        got, head = cursor.fetchone()
        if got is None:  # every lane busy: wait for this thread's own (its head read below)
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [AUDIT_LANE_LOCK_CLASS, first])
        lane = first if got is None else int(got)

    def marker() -> None:
        held = getattr(connection, _HELD_LANE, None)
        if held is not None and held[0] is marker:
            setattr(connection, _HELD_LANE, None)

    transaction.on_commit(marker)
    setattr(connection, _HELD_LANE, (marker, lane))
    return lane, (_head(lane) if got is None else head or GENESIS)


def _head(lane: int) -> str:
    """The hash of the lane's last record, GENESIS for an empty lane (read under its lock)."""
    with connection.cursor() as cursor:
        cursor.execute(_HEAD_SQL.format(lane="%s"), [lane])
        row = cursor.fetchone()
    return row[0] if row else GENESIS


def _append(events: Sequence[AuditEvent]) -> None:
    """Chain ``events`` onto the head of one lane, under that lane's lock.

    Ids are drawn under the lane's lock, so within a lane the committed records are always a
    prefix in id order, as the whole chain's were before lanes.

    Inside a caller's transaction no savepoint of its own (two round trips each time): a record
    that fails to insert must fail the caller's transaction anyway, since what it audits must not
    commit without it; outside one, its own transaction.
    """
    _, key = signing_key()
    with transaction.atomic(savepoint=False):
        lane, prev = _lane_lock()
        for event in events:
            event.lane = lane
            event.prev_hash, event.hash = prev, keyed_hash(prev, event, key)
            prev = event.hash
        if len(events) == 1:
            events[0].save(force_insert=True)
        else:
            # bulk_create keeps list order and ids ascend in it: chain order is the id order.
            AuditEvent.objects.bulk_create(events)


@dataclass(frozen=True)
class ChainProblem:
    event_id: int
    problem: str


def record_problems(event: AuditEvent, expected_prev: str, seen_keyed: bool) -> list[str]:
    """What is wrong with one record, given the hash the record before it in its lane carries
    and whether a keyed record came before it in that lane."""
    problems = []
    if event.prev_hash != expected_prev:
        problems.append("the record before it is missing or was altered")
    if event.chain_version < CHAIN_V4_LANES and event.lane != 0:
        # Every record written before lanes existed is in lane 0; its hash does not cover it.
        problems.append(f"a record from before lanes in lane {event.lane} (moved)")
    if event.chain_version in KEYED_VERSIONS:
        if event.chain_version == CHAIN_V2_HMAC and event.patient_ids:
            problems.append("patient ids on a record whose hash does not cover them (added)")
        key = verification_key(event.key_id)
        if key is None:
            problems.append(f"signed with audit key {event.key_id!r}, which is not configured")
        elif not hmac.compare_digest(keyed_hash(event.prev_hash, event, key), event.hash):
            problems.append("its content does not match its hash (altered)")
    elif event.chain_version == CHAIN_V1_SHA256:
        if seen_keyed:
            problems.append("an unkeyed record after keyed ones (re-hashed without the key)")
        if content_hash(event.prev_hash, event) != event.hash:
            problems.append("its content does not match its hash (altered)")
    else:
        problems.append(f"unknown chain version {event.chain_version}")
    return problems


def audit_verify(batch_size: int = 2000) -> tuple[int, list[ChainProblem]]:
    """Walk every lane's chain (one pass in id order) and hold each against every anchor
    written outside the database; return (records checked, problems found)."""
    from .audit_anchor import anchors_read

    anchors, problems = anchors_read()
    checked, walk_problems = _walk(anchors, start_after=None, batch_size=batch_size)
    return checked, [*problems, *walk_problems, *_unanchored_tail(anchors)]


def _beyond(anchor: Anchor) -> models.Q:
    """Records no head of ``anchor`` covers: after its head in an anchored lane, or in a lane
    it does not name (which had no committed record when it was taken)."""
    lanes = [head.lane for head in anchor.heads]
    beyond = ~models.Q(lane__in=lanes)
    for head in anchor.heads:
        beyond |= models.Q(lane=head.lane, pk__gt=head.last_id)
    return beyond


def _unanchored_tail(anchors: list[Anchor]) -> list[ChainProblem]:
    """Keyed records that should have been anchored by now but were not: the anchor file (or
    its newest lines) was removed, or beat is not anchoring. Either way the tail is unvouched.
    One problem, for the oldest such record of any lane."""
    grace = dt.timedelta(seconds=2 * settings.MEDAI_AUDIT_ANCHOR_SECONDS + 60)
    cutoff = timezone.now() - grace
    overdue = AuditEvent.objects.filter(chain_version__in=KEYED_VERSIONS, at__lt=cutoff)
    latest = anchors[-1] if anchors else None
    if latest is not None:
        if dt.datetime.fromisoformat(latest.at) >= cutoff:
            return []
        overdue = overdue.filter(_beyond(latest))
    first = overdue.order_by("pk").values("pk", "at", "lane").first()
    if first is None:
        return []
    since = "no anchor at all" if latest is None else f"the latest anchor is from {latest.at}"
    return [
        ChainProblem(
            first["pk"],
            f"recorded at {first['at'].isoformat()} in lane {first['lane']} and still not "
            f"anchored ({since}): anchors were removed or beat is not anchoring",
        )
    ]


@dataclass
class _Lane:
    """Where the walk stands in one lane."""

    expected_prev: str = GENESIS
    checked: int = 0  # records of the lane up to here
    seen_keyed: bool = False
    start_id: int = 0  # an incremental walk: the lane's anchored head, checked from its hash


def _walk(
    anchors: list[Anchor], *, start_after: Anchor | None, batch_size: int
) -> tuple[int, list[ChainProblem]]:
    """Check records against their predecessors in their lane and against ``anchors``: all of
    them, or (``start_after``) from each lane's head in that anchor on, plus every record of a
    lane it does not name. The count includes the records before the start."""
    problems: list[ChainProblem] = []
    anchored: dict[tuple[int, int], list[tuple[Anchor, LaneHead]]] = {}
    for anchor in anchors:
        for head in anchor.heads:
            anchored.setdefault((head.lane, head.last_id), []).append((anchor, head))
    legacy_last_id = max((a.legacy_last_id for a in anchors), default=None)
    lanes: dict[int, _Lane] = {}
    scope = models.Q()
    if start_after is not None:
        scope = ~models.Q(lane__in=[head.lane for head in start_after.heads])
        for head in start_after.heads:
            before = AuditEvent.objects.filter(lane=head.lane, pk__lt=head.last_id).count()
            lanes[head.lane] = _Lane(checked=before, start_id=head.last_id)
            scope |= models.Q(lane=head.lane, pk__gte=head.last_id)
    reached: set[tuple[int, int]] = set()
    for event in _in_lane_order(scope, batch_size):
        lane = lanes.setdefault(event.lane, _Lane())
        if event.pk == lane.start_id:
            lane.expected_prev = event.prev_hash  # the anchored record itself: checked below
        lane.checked += 1
        found = record_problems(event, lane.expected_prev, lane.seen_keyed)
        if (
            event.chain_version == CHAIN_V1_SHA256
            and legacy_last_id is not None
            and event.pk > legacy_last_id
        ):
            found.append("an unkeyed record newer than the anchored legacy records")
        for anchor, head in anchored.get((event.lane, event.pk), []):
            reached.add((event.lane, event.pk))
            if not hmac.compare_digest(head.head, event.hash):
                found.append(f"differs from the head anchored at {anchor.at} (rewritten)")
            if head.count != lane.checked:
                found.append(
                    f"the anchor of {anchor.at} counted {head.count} records in lane "
                    f"{head.lane} up to here, the table holds {lane.checked} (records removed "
                    "or inserted)"
                )
        problems.extend(ChainProblem(event.pk, p) for p in found)
        lane.seen_keyed = lane.seen_keyed or event.chain_version in KEYED_VERSIONS
        lane.expected_prev = event.hash
    for anchor in anchors:
        for head in anchor.heads:
            start = lanes[head.lane].start_id if head.lane in lanes else 0
            if head.last_id >= start and (head.lane, head.last_id) not in reached:
                holds = lanes[head.lane].checked if head.lane in lanes else 0
                problems.append(
                    ChainProblem(
                        head.last_id,
                        f"the record anchored as the head of lane {head.lane} at {anchor.at} "
                        f"({head.count} records) is gone; the lane now holds {holds} (tail "
                        "deleted or table emptied)",
                    )
                )
    return sum(lane.checked for lane in lanes.values()), problems


def _in_lane_order(scope: models.Q, batch_size: int) -> Iterator[AuditEvent]:
    """The records in ``scope`` one lane after another, each lane in id order.

    Lane by lane, not in global id order: a record can commit after records with higher ids in
    other lanes, so a walk by global id could pass an id range before a record in it committed
    and then meet that record's successor, a false "missing". Within one lane ids are drawn under
    the lane's lock, so a record committing later always has a higher id than every record of
    that lane already read: the keyset (lane, id) never skips one.
    """
    lane, last_id = -1, 0
    while True:
        after = models.Q(lane__gt=lane) | models.Q(lane=lane, pk__gt=last_id)
        batch = list(AuditEvent.objects.filter(scope, after).order_by("lane", "pk")[:batch_size])
        if not batch:
            return
        yield from batch
        lane, last_id = batch[-1].lane, batch[-1].pk
