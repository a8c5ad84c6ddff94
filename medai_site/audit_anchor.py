"""Anchoring the head of the audit chain outside the database.

A hash chain proves that records fit together, not that the newest ones are still there: someone
who can delete rows (the table's owner with the trigger disabled, a restore from an old backup)
can cut the tail or empty the table and leave a chain that verifies. So, at intervals (beat,
``MEDAI_AUDIT_ANCHOR_SECONDS``) and after every successful ``audit_verify``, the head — the
latest record's id and hash, the number of records up to it, the id of the last unkeyed legacy
record, and the time — is appended as one signed JSON line to
``MEDAI_AUDIT_ANCHOR_DIR/audit-anchors.jsonl``. ``audit_verify`` holds the table against every
anchor: an anchored record that is gone, changed, or preceded by a different number of records
is reported.

Threat model (README "Audit trail"): the attacker controls the database (owner or superuser: can
disable triggers, rewrite, delete, truncate, restore) but neither the application's secret store
(``AUDIT_CHAIN_KEY``) nor the anchor directory, which production puts on a separate volume
opened append-only (``chattr +a``) and/or ships off-host (syslog, WORM object storage). Lines are
signed with the audit key (HMAC), so a line that was edited, or forged by someone who can write
the directory but lacks the key, is reported. Records newer than the latest anchor are protected
by the HMAC chain alone.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import logging
import os
from pathlib import Path

from django.conf import settings
from django.db.models import Max
from django.utils import timezone

from .audit import (
    CHAIN_V1_SHA256,
    ChainProblem,
    _walk,
    signing_key,
    verification_key,
)
from .models import AuditEvent

logger = logging.getLogger(__name__)
ANCHOR_FILE = "audit-anchors.jsonl"
ANCHOR_FORMAT = 1


@dataclasses.dataclass(frozen=True)
class Anchor:
    at: str  # ISO time the anchor was taken
    count: int  # records with id <= last_id
    last_id: int
    head: str  # hash of record last_id
    legacy_last_id: int  # id of the newest unkeyed (chain version 1) record, 0 if none
    key_id: str  # the audit key the line is signed with

    def payload(self) -> bytes:
        return json.dumps(
            {"v": ANCHOR_FORMAT, **dataclasses.asdict(self)},
            sort_keys=True,
            separators=(",", ":"),
        ).encode()


def anchor_path() -> Path:
    return Path(settings.MEDAI_AUDIT_ANCHOR_DIR) / ANCHOR_FILE


def _signature(anchor: Anchor, key: bytes) -> str:
    return hmac.new(key, anchor.payload(), hashlib.sha256).hexdigest()


def anchors_read() -> tuple[list[Anchor], list[ChainProblem]]:
    """Every anchor in the file, in order, with a problem for each line that does not verify.

    A problem's ``event_id`` is 0: it concerns the anchor file, not a record.
    """
    path = anchor_path()
    if not path.exists():
        return [], []
    anchors: list[Anchor] = []
    problems: list[ChainProblem] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            signature = data.pop("sig")
            if data.pop("v") != ANCHOR_FORMAT:
                raise ValueError("format")
            anchor = Anchor(**data)
        except (ValueError, TypeError, KeyError):
            problems.append(ChainProblem(0, f"anchor line {number} is unreadable"))
            continue
        key = verification_key(anchor.key_id)
        if key is None:
            problems.append(
                ChainProblem(0, f"anchor line {number} is signed with unknown key {anchor.key_id}")
            )
            continue
        if not hmac.compare_digest(_signature(anchor, key), str(signature)):
            problems.append(ChainProblem(0, f"anchor line {number} was altered (bad signature)"))
            continue
        if anchors and (anchor.last_id < anchors[-1].last_id or anchor.count < anchors[-1].count):
            problems.append(ChainProblem(0, f"anchor line {number} goes backwards"))
        anchors.append(anchor)
    return anchors, problems


def head_now() -> Anchor | None:
    """The chain's current head, or None while the trail is empty.

    Consistent without a lock: ids are drawn under the writers' advisory lock, so every record
    with an id below the newest committed one is committed too.
    """
    last = AuditEvent.objects.order_by("-id").values("id", "hash").first()
    if last is None:
        return None
    key_id, _ = signing_key()
    legacy = AuditEvent.objects.filter(chain_version=CHAIN_V1_SHA256).aggregate(m=Max("id"))["m"]
    return Anchor(
        at=timezone.now().isoformat(),
        count=AuditEvent.objects.filter(pk__lte=last["id"]).count(),
        last_id=last["id"],
        head=last["hash"],
        legacy_last_id=legacy or 0,
        key_id=key_id,
    )


def anchor_append(anchor: Anchor) -> None:
    """Append one signed line; O_APPEND, one write, fsync: never rewrites what is there."""
    _, key = signing_key()
    line = json.dumps(
        {**json.loads(anchor.payload()), "sig": _signature(anchor, key)}, separators=(",", ":")
    )
    path = anchor_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(fd, (line + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def audit_anchor_write(*, batch_size: int = 2000) -> tuple[Anchor | None, list[ChainProblem]]:
    """Check the records added since the latest anchor, then anchor the new head.

    Refuses to anchor (returns the problems, writes nothing) when the trail does not match the
    latest anchor: anchoring a tampered trail would bless it. Without any anchor yet, the whole
    chain is checked first. Nothing is written while the head has not moved.
    """
    anchors, problems = anchors_read()
    if problems:
        return None, problems
    latest = anchors[-1] if anchors else None
    head = head_now()  # taken first: the walk below reaches at least this far
    _, problems = _walk(anchors, start_after=latest, batch_size=batch_size)
    if problems:
        logger.error("audit trail does not match its anchor: %d problem(s)", len(problems))
        return None, problems
    if head is None or (latest is not None and head.last_id == latest.last_id):
        return latest, []
    anchor_append(head)
    return head, []
