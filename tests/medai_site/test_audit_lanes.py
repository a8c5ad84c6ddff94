"""Issues 15 and 18: the audit trail is several independent keyed chains ("lanes").

Concurrent audited transactions take different lanes' locks instead of queueing on one; a
transaction keeps to one lane; each lane verifies on its own and is anchored on its own, so every
tampering the single chain revealed is still revealed, per lane.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import hmac
import itertools
import json
import threading
from contextlib import contextmanager

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection, connections, transaction
from django.utils import timezone

from medai_site import audit
from medai_site.audit import (
    AUDIT_LANE_LOCK_CLASS,
    GENESIS,
    audit_record,
    audit_record_many,
    audit_verify,
    content_hash,
    keyed_hash,
)
from medai_site.audit_anchor import (
    anchor_append,
    anchor_path,
    anchors_read,
    audit_anchor_write,
    head_now,
)
from medai_site.models import AuditEvent

WAIT = 30  # seconds a step may take on a loaded machine before the test calls it stuck
LANES = settings.MEDAI_AUDIT_LANES  # 16 unless the environment says otherwise


def _lane_locks_held() -> list[int]:
    """The audit lanes this connection's transaction holds the lock of."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT objid FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() "
            "AND classid = %s AND objsubid = 2 AND granted ORDER BY objid",
            [AUDIT_LANE_LOCK_CLASS],
        )
        return [int(row[0]) for row in cursor.fetchall()]


@contextmanager
def _other_session_holding(lanes: list[int], *, release: threading.Event | None = None):
    """Another database session (its own thread and connection) holds ``lanes``' locks in an open
    transaction until the block ends (or, if given, until ``release`` is set)."""
    taken, done = threading.Event(), release or threading.Event()
    failure: list[BaseException] = []

    def hold() -> None:
        other = connections["default"]
        try:
            with transaction.atomic(), other.cursor() as cursor:
                for lane in lanes:
                    cursor.execute(
                        "SELECT pg_advisory_xact_lock(%s, %s)", [AUDIT_LANE_LOCK_CLASS, lane]
                    )
                taken.set()
                done.wait(WAIT)
        except BaseException as error:  # reported in the test's thread
            failure.append(error)
            taken.set()
        finally:
            other.close()

    thread = threading.Thread(target=hold)
    thread.start()
    assert taken.wait(WAIT)
    assert not failure, failure
    try:
        yield thread
    finally:
        done.set()
        thread.join(WAIT)


@pytest.fixture
def write_in_lane(monkeypatch):
    """Write one record through the real writer into a chosen lane, as another transaction
    would (tests run in one transaction, which otherwise keeps to its first lane)."""

    def write(lane: int, **fields) -> AuditEvent:
        monkeypatch.setattr(audit, "preferred_lane", lambda lanes: lane)
        setattr(connection, audit._HELD_LANE, None)  # as if a new transaction began
        event = audit_record(
            actor=None, action=AuditEvent.Action.VIEW, patient_id=fields.pop("patient_id", 1)
        )
        assert event.lane == lane
        return event

    return write


def _as_owner_without_triggers(*statements: tuple[str, list]) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("ALTER TABLE medai_site_auditevent DISABLE TRIGGER USER")
        for sql, params in statements:
            cursor.execute(sql, params)
        cursor.execute("ALTER TABLE medai_site_auditevent ENABLE TRIGGER USER")


@pytest.fixture
def lanes(db, write_in_lane) -> dict[int, list[AuditEvent]]:
    """Records interleaved over three lanes, in id order: 3 5 3 0 5 3 5."""
    by_lane: dict[int, list[AuditEvent]] = {0: [], 3: [], 5: []}
    for n, lane in enumerate([3, 5, 3, 0, 5, 3, 5]):
        by_lane[lane].append(write_in_lane(lane, patient_id=100 + n))
    return by_lane


# --- writers -----------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_open_transactions_take_different_lanes_and_neither_waits():
    """The first transaction keeps its lane locked until it commits; a second, concurrent one
    takes another lane at once instead of waiting for the first's commit (the single lock of
    before lanes made it wait: this test then fails on the timeout)."""
    wrote = [threading.Event(), threading.Event()]
    finish = threading.Event()
    lanes: list[int | None] = [None, None]
    failure: list[BaseException] = []

    def writer(index: int) -> None:
        try:
            with transaction.atomic():
                event = audit_record(actor=None, action=AuditEvent.Action.VIEW, patient_id=index)
                lanes[index] = event.lane
                wrote[index].set()
                assert finish.wait(WAIT)  # keep the transaction (and the lane) open
        except BaseException as error:
            failure.append(error)
            wrote[index].set()
        finally:
            connections["default"].close()

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(2)]
    try:
        threads[0].start()
        assert wrote[0].wait(WAIT)
        threads[1].start()  # while the first transaction is still open
        assert wrote[1].wait(WAIT), "the second writer waited for the first one's lane"
    finally:
        finish.set()
        for thread in threads:
            thread.join(WAIT)
    assert not failure, failure
    assert None not in lanes
    assert lanes[0] != lanes[1]
    assert audit_verify() == (2, [])


@pytest.mark.django_db
def test_a_transaction_keeps_to_one_lane_and_holds_one_lane_lock(doctor_a):
    """A transaction auditing several times stays in the lane it took first, even after its
    preferred lane came free: holding two lanes could deadlock two waiting transactions."""
    preferred = audit.preferred_lane(LANES)
    with _other_session_holding([preferred]):
        first = audit_record(actor=doctor_a, action=AuditEvent.Action.VIEW, patient_id=1)
    assert first.lane == (preferred + 1) % LANES  # the next lane in order, its own being busy
    # The other session has committed: the preferred lane is free now.
    second = audit_record(actor=doctor_a, action=AuditEvent.Action.VIEW, patient_id=2)
    audit_record_many(actor=doctor_a, action=AuditEvent.Action.VIEW, patient_ids=[3, 4])
    written = list(AuditEvent.objects.filter(pk__gte=first.pk).order_by("pk"))
    assert {event.lane for event in written} == {first.lane}
    assert second.prev_hash == first.hash
    assert _lane_locks_held() == [first.lane]
    assert audit_verify()[1] == []


@pytest.mark.django_db
def test_trying_the_lanes_in_order_locks_exactly_one():
    """Lanes busy elsewhere are skipped, the first free one is taken, and no other lane is left
    locked by the attempt (pg_locks)."""
    preferred = audit.preferred_lane(LANES)
    busy = [(preferred + step) % LANES for step in range(3)]
    with _other_session_holding(busy):
        event = audit_record(actor=None, action=AuditEvent.Action.VIEW, patient_id=1)
        assert event.lane == (preferred + 3) % LANES
        assert _lane_locks_held() == [event.lane]


@pytest.mark.django_db
def test_with_every_lane_busy_a_writer_waits_for_its_own_lane(settings):
    """Only when no lane is free does a writer wait, on its preferred lane, and then it holds
    that one lane only."""
    settings.MEDAI_AUDIT_LANES = 2
    preferred = audit.preferred_lane(2)
    release = threading.Event()
    waited_for: list[int] = []
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (me,) = cursor.fetchone()

    def watch() -> None:  # release the lanes once this test's session is seen waiting for one
        other = connections["default"]
        try:
            with other.cursor() as cursor:
                for _ in range(WAIT * 20):
                    cursor.execute(
                        "SELECT objid FROM pg_locks WHERE pid = %s AND locktype = 'advisory' "
                        "AND classid = %s AND NOT granted",
                        [me, AUDIT_LANE_LOCK_CLASS],
                    )
                    row = cursor.fetchone()
                    if row is not None:
                        waited_for.append(int(row[0]))
                        break
                    release.wait(0.05)
        finally:
            release.set()
            other.close()

    with _other_session_holding([0, 1], release=release):
        watcher = threading.Thread(target=watch)
        watcher.start()
        event = audit_record(actor=None, action=AuditEvent.Action.VIEW, patient_id=1)
        watcher.join(WAIT)
    assert waited_for == [preferred]
    assert event.lane == preferred
    assert _lane_locks_held() == [preferred]


@pytest.mark.django_db
def test_one_lane_is_the_single_chain_of_before_lanes(settings, doctor_a):
    """``MEDAI_AUDIT_LANES = 1`` (what SQLite always uses) is the single chain of before lanes."""
    settings.MEDAI_AUDIT_LANES = 1
    event = audit_record(actor=doctor_a, action=AuditEvent.Action.VIEW, patient_id=1)
    assert (event.lane, event.chain_version) == (0, 4)
    assert _lane_locks_held() == [0]


# --- verification ------------------------------------------------------------------------------


def test_interleaved_lanes_each_chain_from_their_own_genesis_and_verify(lanes):
    for records in lanes.values():
        assert records[0].prev_hash == GENESIS
        for before, after in itertools.pairwise(records):
            assert after.prev_hash == before.hash
    assert audit_verify() == (7, [])
    call_command("audit_verify")
    (anchor,) = anchors_read()[0]
    assert [(h.lane, h.last_id, h.count) for h in anchor.heads] == [
        (lane, records[-1].pk, len(records)) for lane, records in sorted(lanes.items())
    ]
    assert [h.head for h in anchor.heads] == [lanes[lane][-1].hash for lane in (0, 3, 5)]


def test_the_lane_is_hashed(lanes):
    event = lanes[3][1]
    key = settings.AUDIT_CHAIN_KEYS[event.key_id]
    assert event.hash == keyed_hash(event.prev_hash, event, key)
    event.lane = 5
    assert event.hash != keyed_hash(event.prev_hash, event, key)


def test_an_altered_record_is_reported_in_its_lane_only(lanes):
    target = lanes[3][1]
    _as_owner_without_triggers(
        ("UPDATE medai_site_auditevent SET patient_id = 4242 WHERE id = %s", [target.pk])
    )
    _, problems = audit_verify()
    assert [(p.event_id, "altered" in p.problem) for p in problems] == [(target.pk, True)]


def test_a_record_deleted_in_the_middle_of_a_lane_is_reported(lanes):
    _as_owner_without_triggers(
        ("DELETE FROM medai_site_auditevent WHERE id = %s", [lanes[5][1].pk])
    )
    _, problems = audit_verify()
    assert [p.event_id for p in problems] == [lanes[5][2].pk]
    assert "missing" in problems[0].problem


def test_one_lane_cut_after_it_was_anchored_is_reported(lanes, write_in_lane):
    """Deleting a lane's newest record leaves a chain that links; its anchored head is gone."""
    call_command("audit_verify")
    write_in_lane(3)  # newer records elsewhere do not hide it
    _as_owner_without_triggers(
        ("DELETE FROM medai_site_auditevent WHERE id = %s", [lanes[5][-1].pk])
    )
    checked, problems = audit_verify()
    assert checked == 7
    assert [p.event_id for p in problems] == [lanes[5][-1].pk]
    assert "head of lane 5" in problems[0].problem
    assert "tail deleted" in problems[0].problem
    anchor, refused = audit_anchor_write()  # and beat does not bless the cut lane
    assert anchor is None
    assert refused


def test_a_record_moved_to_another_lane_is_reported(lanes):
    moved = lanes[3][1]
    _as_owner_without_triggers(
        ("UPDATE medai_site_auditevent SET lane = 5 WHERE id = %s", [moved.pk])
    )
    _, problems = audit_verify()
    found = {(p.event_id, p.problem) for p in problems}
    assert (moved.pk, "its content does not match its hash (altered)") in found
    assert (lanes[3][2].pk, "the record before it is missing or was altered") in found


def test_a_moved_record_is_reported_against_the_anchor_even_by_a_key_holder(lanes):
    """Someone with the key moves lane 3's newest record into lane 5 and re-links lane 5 around
    it, so both chains verify; the anchored heads still tell."""
    call_command("audit_verify")
    _, key = next(iter(settings.AUDIT_CHAIN_KEYS.items()))
    moved, after = lanes[3][-1], lanes[5][-1]  # in id order lane 5 is now ..., moved, after
    assert lanes[5][-2].pk < moved.pk < after.pk
    moved.lane, moved.prev_hash = 5, lanes[5][-2].hash
    moved.hash = keyed_hash(moved.prev_hash, moved, key)
    after.prev_hash = moved.hash
    after.hash = keyed_hash(after.prev_hash, after, key)
    _as_owner_without_triggers(
        *(
            (
                "UPDATE medai_site_auditevent SET lane = %s, prev_hash = %s, hash = %s "
                "WHERE id = %s",
                [event.lane, event.prev_hash, event.hash, event.pk],
            )
            for event in (moved, after)
        )
    )
    anchor_path().rename(anchor_path().with_suffix(".hidden"))
    assert audit_verify()[1] == []  # a consistent rewrite: the chains alone cannot tell...
    anchor_path().with_suffix(".hidden").rename(anchor_path())
    _, problems = audit_verify()  # ...the anchor can
    found = [(p.event_id, p.problem) for p in problems]
    assert {event_id for event_id, _ in found} == {moved.pk, after.pk}
    assert any(i == moved.pk and "head of lane 3" in p and "is gone" in p for i, p in found)
    assert any(i == after.pk and "rewritten" in p for i, p in found)


def test_a_record_from_before_lanes_moved_out_of_lane_zero_is_reported(db):
    """Versions 1-3 do not hash the lane; every such record was written in lane 0."""
    event = AuditEvent(action="view", interface="page", patient_id=1, chain_version=3)
    event.key_id, key = next(iter(settings.AUDIT_CHAIN_KEYS.items()))
    event.prev_hash = GENESIS
    event.hash = keyed_hash(GENESIS, event, key)
    event.save(force_insert=True)
    assert audit_verify() == (1, [])
    _as_owner_without_triggers(
        ("UPDATE medai_site_auditevent SET lane = 2 WHERE id = %s", [event.pk])
    )
    _, problems = audit_verify()
    assert [p.problem for p in problems] == ["a record from before lanes in lane 2 (moved)"]


def test_an_overdue_record_of_a_lane_the_anchor_does_not_name_is_reported(lanes, write_in_lane):
    """A lane's transaction may commit after an anchor was taken although its id is lower than
    other lanes' anchored heads: the anchor, which does not name the lane, does not vouch for
    it, and once overdue it is reported."""
    straggler = write_in_lane(9)
    write_in_lane(3)
    head = head_now()
    assert head is not None
    long_ago = timezone.now() - dt.timedelta(hours=1)
    anchor_append(  # taken before the straggler's transaction committed, and long ago
        dataclasses.replace(
            head,
            at=long_ago.isoformat(),
            heads=tuple(h for h in head.heads if h.lane != 9),
        )
    )
    assert straggler.pk < anchors_read()[0][-1].last_id
    assert audit_verify()[1] == []  # young: it may simply await beat
    straggler.at = long_ago
    straggler.hash = keyed_hash(
        straggler.prev_hash, straggler, settings.AUDIT_CHAIN_KEYS[straggler.key_id]
    )
    _as_owner_without_triggers(
        (
            "UPDATE medai_site_auditevent SET at = %s, hash = %s WHERE id = %s",
            [straggler.at, straggler.hash, straggler.pk],
        )
    )
    _, problems = audit_verify()
    assert [p.event_id for p in problems] == [straggler.pk]
    assert "in lane 9 and still not anchored" in problems[0].problem


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_record_committing_after_higher_ids_of_other_lanes_is_no_false_gap(monkeypatch):
    """Lane 1's first record (the lowest id) commits only after a batched walk has passed its id,
    and lane 1's next record commits before the walk's next batch. A walk by global id order
    then met the second without the first and reported "missing"; lane by lane it does not."""
    wrote, finish, done = threading.Event(), threading.Event(), threading.Event()
    failure: list[BaseException] = []

    def write(lane: int) -> AuditEvent:
        monkeypatch.setattr(audit, "preferred_lane", lambda lanes: lane)
        return audit_record(actor=None, action=AuditEvent.Action.VIEW, patient_id=lane)

    def slow_writer() -> None:
        try:
            with transaction.atomic():
                assert write(1).lane == 1
                wrote.set()
                assert finish.wait(WAIT)  # commits only once the walk's first batch is read
        except BaseException as error:
            failure.append(error)
            wrote.set()
        finally:
            connections["default"].close()
            done.set()

    thread = threading.Thread(target=slow_writer)
    thread.start()
    assert wrote.wait(WAIT)
    assert [write(2).lane, write(2).lane] == [2, 2]  # higher ids, committed first
    walk_in_order = audit._in_lane_order

    def commit_between_batches(scope, batch_size):
        for n, event in enumerate(walk_in_order(scope, batch_size)):
            yield event
            if n == batch_size - 1:
                finish.set()
                assert done.wait(WAIT)
                assert write(1).lane == 1

    monkeypatch.setattr(audit, "_in_lane_order", commit_between_batches)
    try:
        checked, problems = audit._walk([], start_after=None, batch_size=2)
    finally:
        finish.set()
        thread.join(WAIT)
    assert not failure, failure
    assert problems == []
    assert checked in (2, 4)  # lane 1 read whole or not at all, never its second record alone
    monkeypatch.undo()
    assert audit_verify() == (4, [])


# --- records and anchors from before lanes -----------------------------------------------------


def _old_anchor_line(*, count: int, last_id: int, head: str, legacy_last_id: int) -> str:
    """An anchor line exactly as written before lanes (format 1), signed the same way."""
    key_id, key = next(iter(settings.AUDIT_CHAIN_KEYS.items()))
    body = {
        "at": "2026-01-01T00:00:00+00:00",
        "count": count,
        "last_id": last_id,
        "head": head,
        "legacy_last_id": legacy_last_id,
        "key_id": key_id,
    }
    payload = json.dumps({"v": 1, **body}, sort_keys=True, separators=(",", ":")).encode()
    signature = hmac.new(key, payload, hashlib.sha256).hexdigest()
    return json.dumps({"v": 1, **body, "sig": signature}, separators=(",", ":"))


@pytest.fixture
def before_lanes(db) -> list[AuditEvent]:
    """A trail as migration 0008 finds it: unkeyed (v1) then keyed (v3) records, all lane 0,
    anchored by a format-1 line."""
    key_id, key = next(iter(settings.AUDIT_CHAIN_KEYS.items()))
    prev, rows = GENESIS, []
    for n in range(4):
        event = AuditEvent(action="view", interface="page", patient_id=n)
        if n < 2:
            event.chain_version, event.key_id = 1, ""
            event.prev_hash, event.hash = prev, content_hash(prev, event)
        else:
            event.chain_version, event.key_id = 3, key_id
            event.prev_hash, event.hash = prev, keyed_hash(prev, event, key)
        prev = event.hash
        rows.append(event)
    AuditEvent.objects.bulk_create(rows)
    anchor_path().parent.mkdir(parents=True, exist_ok=True)
    anchor_path().write_text(
        _old_anchor_line(
            count=4, last_id=rows[-1].pk, head=rows[-1].hash, legacy_last_id=rows[1].pk
        )
        + "\n"
    )
    return rows


def test_records_and_anchors_from_before_lanes_keep_verifying(before_lanes, write_in_lane):
    anchors, problems = anchors_read()
    assert problems == []
    assert [(a.format, a.heads[0].lane, a.last_id, a.count) for a in anchors] == [
        (1, 0, before_lanes[-1].pk, 4)
    ]
    on_lane_zero = write_in_lane(0)
    elsewhere = write_in_lane(7)
    assert on_lane_zero.prev_hash == before_lanes[-1].hash  # lane 0 continues the old chain
    assert elsewhere.prev_hash == GENESIS
    assert audit_verify() == (6, [])
    call_command("audit_verify")  # appends a format-2 line after the format-1 one
    anchors, problems = anchors_read()
    assert problems == []
    assert [a.format for a in anchors] == [1, 2]
    assert {(h.lane, h.last_id, h.count) for h in anchors[1].heads} == {
        (0, on_lane_zero.pk, 5),
        (7, elsewhere.pk, 1),
    }


def test_an_old_anchor_still_catches_a_cut_of_the_records_it_saw(before_lanes, write_in_lane):
    write_in_lane(4)
    _as_owner_without_triggers(
        ("DELETE FROM medai_site_auditevent WHERE id = %s", [before_lanes[-1].pk])
    )
    _, problems = audit_verify()
    assert [p.event_id for p in problems] == [before_lanes[-1].pk]
    assert "head of lane 0" in problems[0].problem


def test_an_old_anchor_line_edited_is_reported(before_lanes):
    line = json.loads(anchor_path().read_text())
    line["count"] = 3
    anchor_path().write_text(json.dumps(line) + "\n")
    _, problems = audit_verify()
    assert [p.problem for p in problems] == ["anchor line 1 was altered (bad signature)"]


def test_an_anchor_that_drops_a_lane_goes_backwards(lanes, write_in_lane):
    call_command("audit_verify")
    _key_id, key = next(iter(settings.AUDIT_CHAIN_KEYS.items()))
    first = json.loads(anchor_path().read_text().splitlines()[0])
    forged = {k: v for k, v in first.items() if k != "sig"}
    forged["heads"] = [h for h in forged["heads"] if h[0] != 5]  # lane 5 "never existed"
    payload = json.dumps(forged, sort_keys=True, separators=(",", ":")).encode()
    forged["sig"] = hmac.new(key, payload, hashlib.sha256).hexdigest()
    with anchor_path().open("a") as lines:
        lines.write(json.dumps(forged) + "\n")
    _, problems = anchors_read()
    assert [p.problem for p in problems] == ["anchor line 2 goes backwards"]


# --- fewer round trips (issue 15) ----------------------------------------------------------------


@pytest.mark.django_db
def test_inside_a_transaction_a_record_takes_no_savepoint_and_a_failed_one_fails_it(
    monkeypatch,
):
    """No savepoint of its own (two round trips), and so a record that cannot be written
    leaves the caller's transaction unable to commit what it audits, even if the caller
    swallows the error."""
    from django.db import DatabaseError
    from django.test.utils import CaptureQueriesContext

    with transaction.atomic():  # the caller's transaction
        with CaptureQueriesContext(connection) as queries:
            audit_record(actor=None, action=AuditEvent.Action.VIEW, patient_id=1)
        assert not [q for q in queries.captured_queries if "SAVEPOINT" in q["sql"]]
        monkeypatch.setattr(audit, "keyed_hash", lambda *args: "x" * 65)  # too long: refused
        with contextlib.suppress(DatabaseError):  # a caller that carries on regardless
            audit_record(actor=None, action=AuditEvent.Action.VIEW, patient_id=2)
        assert connection.needs_rollback
    # The caller's block was rolled back as a whole: nothing it audited was kept.
    assert not AuditEvent.objects.filter(patient_id__in=[1, 2]).exists()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_writer_that_waited_for_its_lane_chains_to_what_was_committed_meanwhile(settings):
    """With every lane busy, the writer waits for its own lane and then reads its head: the
    record the holder committed while it waited is its predecessor (not the head before)."""
    settings.MEDAI_AUDIT_LANES = 1
    holder_wrote, release = threading.Event(), threading.Event()
    failure: list[BaseException] = []
    written: list[AuditEvent] = []

    def holder() -> None:
        try:
            with transaction.atomic():
                written.append(
                    audit_record(actor=None, action=AuditEvent.Action.VIEW, patient_id=1)
                )
                holder_wrote.set()
                release.wait(WAIT)
        except BaseException as error:
            failure.append(error)
            holder_wrote.set()
        finally:
            connections["default"].close()

    first = audit_record(actor=None, action=AuditEvent.Action.VIEW, patient_id=0)
    thread = threading.Thread(target=holder)
    thread.start()
    assert holder_wrote.wait(WAIT)
    timer = threading.Timer(0.5, release.set)  # the holder commits while this writer waits
    timer.start()
    try:
        mine = audit_record(actor=None, action=AuditEvent.Action.VIEW, patient_id=2)
    finally:
        release.set()
        thread.join(WAIT)
    assert not failure, failure
    (theirs,) = written
    assert theirs.prev_hash == first.hash
    assert mine.prev_hash == theirs.hash
    assert audit_verify() == (3, [])
