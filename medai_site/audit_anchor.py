"""Anchoring the heads of the audit chain's lanes outside the database.

A hash chain proves that records fit together, not that the newest ones are still there: someone
who can delete rows (the table's owner with the trigger disabled, a restore from an old backup)
can cut the tail or empty the table and leave a chain that verifies. So, at intervals (beat,
``MEDAI_AUDIT_ANCHOR_SECONDS``) and after every successful ``audit_verify``, the head of every
lane (:mod:`.audit`: the trail is several independent chains) — per lane its number, the latest
record's id and hash, and the number of the lane's records up to it — with the id of the last
unkeyed legacy record and the time, is appended as one signed JSON line (format 2) to
``MEDAI_AUDIT_ANCHOR_DIR/audit-anchors.jsonl``. ``audit_verify`` holds the table against every
anchor: an anchored record that is gone, changed, moved to another lane, or preceded in its lane
by a different number of records is reported. Lines of format 1, written before lanes, name one
head with the count of all records up to it: they describe lane 0, which is what the whole chain
became, and keep verifying as such.

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
from django.db.models import Count, Max
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
ANCHOR_FORMAT_SINGLE = 1  # before lanes: one head, the count of every record up to it
ANCHOR_FORMAT = 2  # one head per lane


@dataclasses.dataclass(frozen=True)
class LaneHead:
    lane: int
    last_id: int  # the lane's newest record when the anchor was taken
    head: str  # hash of record last_id
    count: int  # records of the lane with id <= last_id


@dataclasses.dataclass(frozen=True)
class Anchor:
    at: str  # ISO time the anchor was taken
    heads: tuple[LaneHead, ...]  # by lane; a lane with no record yet is absent
    legacy_last_id: int  # id of the newest unkeyed (chain version 1) record, 0 if none
    key_id: str  # the audit key the line is signed with
    format: int = ANCHOR_FORMAT

    @property
    def last_id(self) -> int:
        """The newest record any lane's head names."""
        return max(head.last_id for head in self.heads)

    @property
    def count(self) -> int:
        """Records the anchor vouches for, over all lanes."""
        return sum(head.count for head in self.heads)

    def head_of(self, lane: int) -> LaneHead | None:
        return next((head for head in self.heads if head.lane == lane), None)

    def payload(self) -> bytes:
        """The signed bytes; a format-1 line's exactly as it was written before lanes."""
        if self.format == ANCHOR_FORMAT_SINGLE:
            (head,) = self.heads
            data: dict[str, object] = {
                "at": self.at,
                "count": head.count,
                "last_id": head.last_id,
                "head": head.head,
                "legacy_last_id": self.legacy_last_id,
                "key_id": self.key_id,
            }
        else:
            data = {
                "at": self.at,
                "heads": [[h.lane, h.last_id, h.head, h.count] for h in self.heads],
                "legacy_last_id": self.legacy_last_id,
                "key_id": self.key_id,
            }
        return json.dumps(
            {"v": self.format, **data}, sort_keys=True, separators=(",", ":")
        ).encode()

    @classmethod
    def from_line(cls, data: dict[str, object]) -> Anchor:
        """The anchor of one parsed line (without its signature); ValueError/TypeError/KeyError
        when it is not one."""
        version = data.pop("v")
        if version == ANCHOR_FORMAT_SINGLE:
            heads = (
                LaneHead(
                    lane=0,
                    last_id=_int(data.pop("last_id")),
                    head=str(data.pop("head")),
                    count=_int(data.pop("count")),
                ),
            )
        elif version == ANCHOR_FORMAT:
            raw = data.pop("heads")
            if not isinstance(raw, list) or not raw:
                raise ValueError("heads")
            heads = tuple(
                LaneHead(lane=_int(lane), last_id=_int(last), head=str(head), count=_int(count))
                for lane, last, head, count in raw
            )
            if len({h.lane for h in heads}) != len(heads):
                raise ValueError("a lane twice")
        else:
            raise ValueError("format")
        anchor = cls(
            at=str(data.pop("at")),
            heads=heads,
            legacy_last_id=_int(data.pop("legacy_last_id")),
            key_id=str(data.pop("key_id")),
            format=ANCHOR_FORMAT_SINGLE if version == ANCHOR_FORMAT_SINGLE else ANCHOR_FORMAT,
        )
        if data:
            raise ValueError("unknown fields")
        return anchor


def _int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError("not an integer")
    return value


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
            anchor = Anchor.from_line(data)
        except (ValueError, TypeError, KeyError, AttributeError):
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
        if anchors and _goes_backwards(anchors[-1], anchor):
            problems.append(ChainProblem(0, f"anchor line {number} goes backwards"))
        anchors.append(anchor)
    return anchors, problems


def _goes_backwards(before: Anchor, after: Anchor) -> bool:
    """A lane the earlier anchor named is missing from the later one, or its head or count went
    down: lines were reordered, or a later one was forged from an old state."""
    for old in before.heads:
        new = after.head_of(old.lane)
        if new is None or new.last_id < old.last_id or new.count < old.count:
            return True
    return False


def head_now() -> Anchor | None:
    """Every lane's current head, or None while the trail is empty.

    Consistent without a lock: the newest id and the count of each lane come from one
    statement (one snapshot), and within a lane ids are drawn under the lane's lock, so a lane
    record committed later has a higher id than the lane's head seen here.
    """
    lanes = list(
        AuditEvent.objects.order_by()
        .values("lane")
        .annotate(last_id=Max("id"), count=Count("id"))
        .order_by("lane")
    )
    if not lanes:
        return None
    hashes = dict(
        AuditEvent.objects.filter(pk__in=[row["last_id"] for row in lanes]).values_list(
            "id", "hash"
        )
    )
    key_id, _ = signing_key()
    legacy = AuditEvent.objects.filter(chain_version=CHAIN_V1_SHA256).aggregate(m=Max("id"))["m"]
    return Anchor(
        at=timezone.now().isoformat(),
        heads=tuple(
            LaneHead(
                lane=row["lane"],
                last_id=row["last_id"],
                head=hashes[row["last_id"]],
                count=row["count"],
            )
            for row in lanes
        ),
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
    chain is checked first. Nothing is written while no lane's head has moved.
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
    if head is None or (latest is not None and _same_heads(head, latest)):
        return latest, []
    anchor_append(head)
    return head, []


def _same_heads(one: Anchor, other: Anchor) -> bool:
    return {(h.lane, h.last_id) for h in one.heads} == {(h.lane, h.last_id) for h in other.heads}
