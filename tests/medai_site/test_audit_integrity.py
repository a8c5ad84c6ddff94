"""Issue 12, point 1: the audit trail can be neither emptied, shortened nor rewritten unnoticed.

The attacker here owns the database (disables triggers, rewrites and deletes rows) but holds
neither the audit HMAC key (it lives in the deployment's secret store) nor the anchor directory;
one test gives the attacker the key too, and the anchor still catches the rewrite.
"""

from __future__ import annotations

import json

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from medai_site import tasks
from medai_site.audit import (
    CHAIN_V1_SHA256,
    GENESIS,
    audit_record,
    audit_verify,
    content_hash,
    keyed_hash,
)
from medai_site.audit_anchor import anchor_path, anchors_read, audit_anchor_write
from medai_site.models import AuditEvent

pytestmark = pytest.mark.django_db
OLD_KEY = bytes.fromhex("7465737420617564697420636861696e206b6579206e6f7420666f7220757365")


def _as_owner_without_triggers(*statements: tuple[str, list]) -> None:
    """What only the table's owner (or a superuser) can do: switch the triggers off and tamper."""
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no pending FK checks before TRUNCATE
        cursor.execute("ALTER TABLE medai_site_auditevent DISABLE TRIGGER USER")
        for sql, params in statements:
            cursor.execute(sql, params)
        cursor.execute("ALTER TABLE medai_site_auditevent ENABLE TRIGGER USER")


@pytest.fixture
def trail(doctor_a):
    for n in range(6):
        audit_record(actor=doctor_a, action=AuditEvent.Action.VIEW, patient_id=1000 + n)
    return list(AuditEvent.objects.order_by("id"))


def _rehash_from(rows: list[AuditEvent], start: int, hasher) -> list[tuple[str, list]]:
    """UPDATEs that alter rows[start] and recompute every later hash so the chain links again."""
    statements = []
    prev = rows[start - 1].hash
    for index, event in enumerate(rows[start:]):
        if index == 0:
            event.patient_id = 4242  # the alteration being hidden
        event.prev_hash = prev
        event.chain_version, event.key_id, event.hash = hasher(prev, event)
        prev = event.hash
        statements.append(
            (
                "UPDATE medai_site_auditevent SET patient_id = %s, prev_hash = %s, hash = %s, "
                "chain_version = %s, key_id = %s WHERE id = %s",
                [
                    event.patient_id,
                    event.prev_hash,
                    event.hash,
                    event.chain_version,
                    event.key_id,
                    event.pk,
                ],
            )
        )
    return statements


def test_truncate_of_audit_table_is_refused(trail):
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no pending FK checks before TRUNCATE
    with (
        pytest.raises(DatabaseError, match="append-only: TRUNCATE refused"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("TRUNCATE medai_site_auditevent")
    assert AuditEvent.objects.count() == len(trail)


def test_new_records_are_chained_with_a_keyed_hmac(trail):
    key_id, key = next(iter(settings.AUDIT_CHAIN_KEYS.items()))
    last = trail[-1]
    assert (last.chain_version, last.key_id) == (4, key_id)
    assert last.hash == keyed_hash(last.prev_hash, last, key)
    assert last.hash != content_hash(last.prev_hash, last)  # not the unkeyed SHA-256 any more


def test_truncation_with_the_trigger_disabled_is_detected_against_the_anchor(trail):
    call_command("audit_verify")  # intact; anchors the head outside the database
    _as_owner_without_triggers(("TRUNCATE medai_site_auditevent", []))
    checked, problems = audit_verify()
    assert checked == 0
    assert any("table emptied" in p.problem for p in problems)
    with pytest.raises(CommandError, match="Audit trail broken"):
        call_command("audit_verify")


def test_tail_deletion_is_detected_against_the_anchor(trail):
    call_command("audit_verify")
    _as_owner_without_triggers(("DELETE FROM medai_site_auditevent WHERE id >= %s", [trail[-2].pk]))
    checked, problems = audit_verify()
    assert checked == len(trail) - 2
    assert [p.event_id for p in problems] == [trail[-1].pk]
    assert "tail deleted" in problems[0].problem


def test_rewrite_with_rehash_is_detected_without_the_key(trail):
    """Recomputing the later hashes with plain SHA-256 (all an attacker without the key can do)
    leaves records whose HMAC does not verify, even before any anchor exists."""

    def unkeyed(prev, event):
        return CHAIN_V1_SHA256, "", content_hash(prev, event)

    _as_owner_without_triggers(*_rehash_from(trail, 2, unkeyed))
    _, problems = audit_verify()
    assert {p.event_id for p in problems} >= {trail[2].pk}
    assert any("re-hashed without the key" in p.problem for p in problems)


def test_rewrite_with_rehash_by_a_key_holder_is_detected_against_the_anchor(trail):
    """Even someone who stole the HMAC key cannot rewrite what an anchor has seen."""
    call_command("audit_verify")
    key_id, key = next(iter(settings.AUDIT_CHAIN_KEYS.items()))

    def keyed(prev, event):
        event.chain_version, event.key_id = 4, key_id
        return 4, key_id, keyed_hash(prev, event, key)

    _as_owner_without_triggers(*_rehash_from(trail, 2, keyed))
    anchor_path().rename(anchor_path().with_suffix(".hidden"))
    assert audit_verify()[1] == []  # the chain alone cannot tell...
    anchor_path().with_suffix(".hidden").rename(anchor_path())
    _, problems = audit_verify()  # ...the anchor can
    assert [p.event_id for p in problems] == [trail[-1].pk]
    assert "rewritten" in problems[0].problem


def test_existing_unkeyed_records_keep_verifying(doctor_a, settings):
    """Records written before migration 0005 (unkeyed SHA-256, chain version 1) are not
    rewritten; new keyed records in their lane (0) chain on from the last of them and the whole
    trail verifies."""
    settings.MEDAI_AUDIT_LANES = 1  # the new record goes to lane 0, the legacy records' lane
    prev, legacy = GENESIS, []
    for n in range(3):
        event = AuditEvent(
            actor=doctor_a, action="view", interface="page", patient_id=n, chain_version=1
        )
        event.prev_hash, event.hash = prev, content_hash(prev, event)
        prev = event.hash
        legacy.append(event)
    AuditEvent.objects.bulk_create(legacy)
    audit_record(actor=doctor_a, action=AuditEvent.Action.VIEW, patient_id=7)
    newest = AuditEvent.objects.order_by("-id").first()
    assert (newest.chain_version, newest.lane, newest.prev_hash) == (4, 0, legacy[-1].hash)
    assert audit_verify() == (4, [])
    call_command("audit_verify")
    assert anchors_read()[0][-1].legacy_last_id == legacy[-1].pk


def test_legacy_records_cannot_be_forged_after_the_anchored_boundary(doctor_a, trail):
    """Re-hashing the whole keyed tail down to 'legacy' SHA-256 is caught by the anchored
    legacy boundary."""
    call_command("audit_verify")
    audit_record(actor=doctor_a, action=AuditEvent.Action.VIEW, patient_id=1)
    newest = AuditEvent.objects.order_by("-id").first()
    newest.chain_version, newest.key_id = 1, ""
    _as_owner_without_triggers(
        (
            "UPDATE medai_site_auditevent SET chain_version = 1, key_id = '', hash = %s "
            "WHERE id = %s",
            [content_hash(newest.prev_hash, newest), newest.pk],
        )
    )
    _, problems = audit_verify()
    assert {p.event_id for p in problems} == {newest.pk}
    found = " / ".join(p.problem for p in problems)
    assert "newer than the anchored legacy records" in found
    assert "an unkeyed record after keyed ones" in found


def test_audit_key_rotation_keeps_old_records_verifiable(settings, trail, doctor_a):
    new_key = bytes(range(32))
    settings.AUDIT_CHAIN_KEYS = {"t2": new_key, "t1": OLD_KEY}
    audit_record(actor=doctor_a, action=AuditEvent.Action.VIEW, patient_id=1)
    newest = AuditEvent.objects.order_by("-id").first()
    assert newest.key_id == "t2"
    assert audit_verify()[1] == []
    settings.AUDIT_CHAIN_KEYS = {"t2": new_key}  # the old key dropped too early
    _, problems = audit_verify()
    assert {p.event_id for p in problems} == {e.pk for e in trail}
    assert all("not configured" in p.problem for p in problems)


def test_an_edited_anchor_line_is_reported(trail):
    call_command("audit_verify")
    line = json.loads(anchor_path().read_text())
    line["heads"][0][3] = 1  # a lane's count, e.g. to hide a deletion
    anchor_path().write_text(json.dumps(line) + "\n")
    _, problems = audit_verify()
    assert [p.problem for p in problems] == ["anchor line 1 was altered (bad signature)"]


def test_beat_anchors_the_head_and_refuses_to_bless_a_tampered_trail(trail, doctor_a):
    assert (
        settings.CELERY_BEAT_SCHEDULE["audit-anchor"]["task"]
        == "medai_site.tasks.audit_anchor_write"
    )
    tasks.audit_anchor_write()
    tasks.audit_anchor_write()  # the head has not moved: nothing new to anchor
    anchors, _ = anchors_read()
    assert [(a.last_id, a.count) for a in anchors] == [(trail[-1].pk, len(trail))]
    audit_record(actor=doctor_a, action=AuditEvent.Action.VIEW, patient_id=1)
    _as_owner_without_triggers(("DELETE FROM medai_site_auditevent WHERE id = %s", [trail[-1].pk]))
    anchor, problems = audit_anchor_write()
    assert anchor is None
    assert problems
    assert len(anchors_read()[0]) == 1  # nothing new was anchored over the gap


def test_removing_the_anchor_file_is_detected_once_records_are_overdue(trail):
    """Deleting the anchors (or their newest lines) would hide a truncation; records older than
    two anchor intervals with no anchor covering them are reported instead."""
    import datetime as dt

    from django.utils import timezone

    call_command("audit_verify")
    anchor_path().unlink()  # the attacker removes the anchors...
    assert audit_verify()[1] == []  # (records this young may simply await beat)
    old = timezone.now() - dt.timedelta(seconds=3 * settings.MEDAI_AUDIT_ANCHOR_SECONDS)
    statements = []  # ...and time passes (played by back-dating the records, re-signed)
    prev = trail[0].prev_hash
    for event in trail:
        event.at = old
        event.prev_hash = prev
        event.hash = keyed_hash(prev, event, OLD_KEY)
        prev = event.hash
        statements.append(
            (
                "UPDATE medai_site_auditevent SET at = %s, prev_hash = %s, hash = %s WHERE id = %s",
                [event.at, event.prev_hash, event.hash, event.pk],
            )
        )
    _as_owner_without_triggers(*statements)
    _, problems = audit_verify()
    assert [p.event_id for p in problems] == [trail[0].pk]
    assert "not anchored (no anchor at all)" in problems[0].problem
    with pytest.raises(CommandError):
        call_command("audit_verify")
