"""The feature-row cache: a visit's feature row is computed once per inputs and featuriser.

Re-scoring spends its time building the frame (decrypting free text) and featurising, not in the
model. So each visit's row is kept (``FeatureRowBlock``, one encrypted block per range of visit
ids) with the version of the visit's inputs it was computed from, under a key naming the
featuriser. A row is reused only when the visit's inputs version *now* equals the stored one and
the featuriser is the same; otherwise it is computed again and the block rewritten.

The inputs version (``VisitInputsVersion``) is kept by PostgreSQL triggers: any write to what
the featuriser reads (age, the patient's sex, the visit type, the two free-text columns, any
observation) gives the visit a new value from one sequence, whoever wrote it. A re-save of
unchanged text also changes it (the ciphertext changes): that costs one recomputation, never a
stale row. Versions are read before the rows are built, so a visit edited in between is stored
with its older version and computed again next time. Checking a chunk of 10,000 visits one by
one reads 10,000 pairs of integers (tens of milliseconds); hashing their inputs instead (the
first design) cost the database about 30 microseconds a visit, ten times the model's own time.
So a block is first checked whole (``block_still_current``): the database digests the range's
(id, version) pairs and returns 32 bytes; only when they differ from the block's own pairs are
the pairs read to find which visits changed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.conf import settings
from django.db import connection
from django.utils import timezone
from scipy import sparse

from medai_site.blob_encryption import decrypt_blob, encrypt_blob
from medai_site.errors import DecryptionFailed
from predictions.ml import feature_rows
from predictions.ml.dataset import apply_plans
from predictions.ml.pipeline import TrainedModel
from predictions.models import FeatureRowBlock, ModelVersion, VisitInputsVersion
from predictions.visit_records import visits_frame
from visits.models import Visit

logger = logging.getLogger(__name__)

# Bump when the way rows are built or packed changes: every cached row is then computed again.
FEATURE_ROW_VERSION = "2"  # 2: inputs versions instead of digests of the inputs
# Sequence values start at 1: a visit stamped with this is featurised on every run.
UNVERSIONED = -1


_UNVERSIONED_STAMP = np.array([UNVERSIONED, 0], dtype="<i8").tobytes()


@dataclass(frozen=True)
class FeatureRows:
    """The rows of one range of visits, ready for ``predict_proba``."""

    ids: np.ndarray
    matrix: Any
    cache_hits: int
    computed: int


def featuriser_key(version: ModelVersion) -> str:
    """Names the fitted featuriser: it is saved inside the version's artifact, so the artifact's
    sha256 identifies it (a new version, even with an equal featuriser, starts a new cache)."""
    name = f"feature-rows:{FEATURE_ROW_VERSION}:{version.artifact_sha256}"
    return hashlib.sha256(name.encode()).hexdigest()


def _versions_sql() -> str:
    visit, versions = Visit._meta.db_table, VisitInputsVersion._meta.db_table
    return f"""
        SELECT v.id, s.version
          FROM {visit} v LEFT JOIN {versions} s ON s.visit_id = v.id
         WHERE v.id BETWEEN %(first)s AND %(last)s
         ORDER BY v.id
    """  # noqa: S608  # nosec B608  # table names from model metadata; values are parameters


def _binary_cursor() -> Any:
    """A cursor on the connection's current transaction returning binary values: a block of
    rows comes as its bytes, not as hex text twice its size to decode (a block of 5,000 rows
    read in about a tenth of the time)."""
    import psycopg

    connection.ensure_connection()
    return psycopg.Cursor(connection.connection)


def binary_query(sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Rows of ``sql``, bytea values as ``bytes`` both ways on PostgreSQL: results in binary,
    and ``bytes`` parameters bound apart from the statement in binary. (Django's cursor writes
    a parameter into the statement's text: a megabyte of scores went as two megabytes of hex
    for PostgreSQL to parse, 17 ms to insert against 5.)"""
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return list(cursor.fetchall())
    with _binary_cursor() as cursor:
        cursor.execute(sql, params, binary=True)
        return list(cursor.fetchall())


def visit_input_stamps(first_visit_id: int, last_visit_id: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids ascending, 16-byte stamps of their inputs versions) of the visits with ids in the
    range, as stored now. A visit without a version (its row missing: triggers disabled while
    it was written) gets ``UNVERSIONED``, which is never reused."""
    rows = binary_query(_versions_sql(), {"first": first_visit_id, "last": last_visit_id})
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    versions = np.fromiter(
        (UNVERSIONED if r[1] is None else r[1] for r in rows), dtype=np.int64, count=len(rows)
    )
    # The version fills the first 8 bytes of the block format's 16-byte per-visit digest.
    stamps = np.zeros((len(rows), 2), dtype="<i8")
    stamps[:, 0] = versions
    return ids, stamps.view(f"S{feature_rows.DIGEST_BYTES}").reshape(len(rows))


def _fingerprint_sql() -> str:
    visit, versions = Visit._meta.db_table, VisitInputsVersion._meta.db_table
    blocks = FeatureRowBlock._meta.db_table
    # The pairs as 16 bytes each (int8send: 8 big-endian bytes per value, as block_fingerprint
    # packs them), digested in the order the ordered subquery gives: PostgreSQL 15 sorts again
    # for an aggregate's own ORDER BY (half the query's time), and another order can only make
    # the digests differ (a miss, then the per-visit check), never make them equal. A visit
    # without a version row has a NULL pair, which string_agg skips: it is counted apart. The
    # range is on both tables so each is read by its primary key's index, merged in id order.
    return f"""
        SELECT count(*), count(pair), sha256(string_agg(pair, ''::bytea)),
               (SELECT updated_at FROM {blocks}
                 WHERE featuriser_key = %(key)s AND first_visit_id = %(first)s)
          FROM (SELECT int8send(v.id) || int8send(s.version) AS pair
                  FROM {visit} v
                  LEFT JOIN {versions} s
                    ON s.visit_id = v.id AND s.visit_id BETWEEN %(first)s AND %(last)s
                 WHERE v.id BETWEEN %(first)s AND %(last)s
                 ORDER BY v.id) AS pairs
    """  # noqa: S608  # nosec B608  # table names from model metadata; values are parameters


def block_fingerprint(ids: np.ndarray, digests: np.ndarray) -> bytes:
    """SHA-256 of a block's (visit id, inputs version) pairs in id order, as ``_fingerprint_sql``
    computes it from the database."""
    versions = digests.view("<i8").reshape(len(digests), 2)[:, 0] if len(digests) else digests
    pairs = np.empty((len(ids), 2), dtype=">i8")
    pairs[:, 0] = ids
    pairs[:, 1] = versions
    return hashlib.sha256(pairs.tobytes()).digest()


@dataclass(frozen=True)
class RangeFingerprint:
    """What the database says of a range of visit ids now: how many visits, how many of them
    have an inputs version, and the SHA-256 of their (id, version) pairs in id order."""

    visits: int
    versioned: int
    digest: bytes | None
    # When the range's block under the featuriser key asked for was written (None: no block).
    stored_at: dt.datetime | None = None


def range_fingerprint(
    first_visit_id: int, last_visit_id: int, key: str = ""
) -> RangeFingerprint | None:
    """The range's fingerprint (one aggregate query, 32 bytes back) and when its block under
    ``key`` was written; None off PostgreSQL (the digest uses its sha256 and int8send: there
    the per-visit check decides alone)."""
    if connection.vendor != "postgresql":
        return None
    found = binary_query(
        _fingerprint_sql(), {"first": first_visit_id, "last": last_visit_id, "key": key}
    )
    visits, versioned, digest, stored_at = found[0]
    return RangeFingerprint(
        int(visits), int(versioned), None if digest is None else bytes(digest), stored_at
    )


def block_matches(block: feature_rows.RowBlock, now: RangeFingerprint | None) -> bool:
    """Whether every row of ``block`` is valid for the range whose fingerprint is ``now``,
    without moving the range's 10,000 (id, version) pairs to Python.

    Why it is exact: the block is valid as a whole iff the range's visits now are exactly its
    ids, each with the inputs version its row was stamped with (``reuse`` checks the same
    per visit). The database returns the SHA-256 of the range's (id, version) pairs in id order
    and how many visits have a version; equal digests mean equal lists (a collision of SHA-256
    aside): an edit (the visit's version moves to a value never used before), a deletion or an
    insertion (the list loses or gains a pair) each make the digests differ, whatever else
    changed with them. A visit without a version row is counted apart (its pair is NULL, left
    out of the digest): the counts differ. A block holding an unversioned row is never accepted
    here, as ``reuse`` never reuses such a row. Any doubt (another order, another count) is a
    miss, and the per-visit check decides.

    Why not the cheaper (number of visits, highest version): versions come from one sequence
    but are committed in any order. A transaction that took value 100 for visit X and commits
    after another committed 101 leaves the range's count and maximum as a block stored in
    between saw them, and X's stale row would be served on every run until the next edit.
    """
    if now is None or now.digest is None or not len(block.ids):
        return False
    if bool((block.digests == _UNVERSIONED_STAMP).any()):
        return False
    return now.visits == now.versioned == len(block.ids) and now.digest == block_fingerprint(
        block.ids, block.digests
    )


def block_still_current(
    block: feature_rows.RowBlock, first_visit_id: int, last_visit_id: int
) -> bool:
    """Whether every row of ``block`` is valid for the visits with ids in the range now."""
    return block_matches(block, range_fingerprint(first_visit_id, last_visit_id))


class _RecentBlocks:
    """The blocks this process read or wrote lately, as stored (encrypted: no clinical value
    is kept in clear between tasks), least recently used dropped first beyond
    ``MEDAI_FEATURE_CACHE_PROCESS_MB``.

    Reading a block from PostgreSQL is most of a cached chunk's time (about 19 MB per 10,000
    visits of sparse text rows, out of TOAST, over the socket), decrypting it a tenth of that.
    A kept block stands for the stored one only while both hold: the table's block was written
    at the same instant as the kept copy (``updated_at``: so it is that very write, not one a
    restored database or a rolled-back test no longer has), and the block's own (id, version)
    pairs give the digest the database gives for the range now (``block_matches``, checked on
    the decrypted block as for a stored one). Any other case reads the table as before."""

    def __init__(self) -> None:
        # (key, first visit id) -> (digest of its pairs, when the stored copy was written, payload)
        self._blocks: OrderedDict[tuple[str, int], tuple[bytes, dt.datetime, bytes]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: str, first_visit_id: int, now: RangeFingerprint | None) -> bytes | None:
        """The kept payload of the range's block if the database says it is the stored one and
        its pairs are the range's now (by their digest), else None."""
        if now is None or now.digest is None or now.stored_at is None:
            return None
        with self._lock:
            kept = self._blocks.get((key, first_visit_id))
            if kept is None or kept[0] != now.digest or kept[1] != now.stored_at:
                return None
            self._blocks.move_to_end((key, first_visit_id))
            return kept[2]

    def put(
        self,
        key: str,
        first_visit_id: int,
        *,
        digest: bytes,
        stored_at: dt.datetime,
        payload: bytes,
    ) -> None:
        budget = settings.MEDAI_FEATURE_CACHE_PROCESS_MB * 1_000_000
        with self._lock:
            self._drop((key, first_visit_id))
            if len(payload) > budget:
                return
            self._blocks[(key, first_visit_id)] = (digest, stored_at, payload)
            self._bytes += len(payload)
            while self._bytes > budget:
                self._drop(next(iter(self._blocks)))

    def forget(self, key: str, first_visit_id: int) -> None:
        with self._lock:
            self._drop((key, first_visit_id))

    def clear(self) -> None:
        with self._lock:
            self._blocks.clear()
            self._bytes = 0

    def _drop(self, name: tuple[str, int]) -> None:
        kept = self._blocks.pop(name, None)
        if kept is not None:
            self._bytes -= len(kept[2])


RECENT_BLOCKS = _RecentBlocks()


def _context(key: str, first_visit_id: int) -> bytes:
    return f"{FeatureRowBlock._meta.db_table}:{key}:{first_visit_id}".encode()


def _stored_payload(key: str, first_visit_id: int) -> tuple[bytes, dt.datetime] | None:
    """(payload, when it was written) of the range's stored block."""
    table = FeatureRowBlock._meta.db_table
    found = binary_query(
        f"SELECT payload, updated_at FROM {table} WHERE featuriser_key = %(key)s AND first_visit_id = %(first)s",  # noqa: S608  # nosec B608  # table name from model metadata; values are parameters
        {"key": key, "first": first_visit_id},
    )
    return (bytes(found[0][0]), found[0][1]) if found else None


def _unpacked(key: str, first_visit_id: int, payload: bytes) -> feature_rows.RowBlock | None:
    try:
        return feature_rows.unpack(decrypt_blob(payload, context=_context(key, first_visit_id)))
    except (DecryptionFailed, feature_rows.RowBlockFormatError) as exc:
        # A cache: a block under a retired key, or unreadable, is recomputed and replaced.
        logger.warning(
            "feature rows %s from visit %s unreadable (%s): recomputed",
            key[:12],
            first_visit_id,
            type(exc).__name__,
        )
        return None


def _cached_block(key: str, first_visit_id: int) -> feature_rows.RowBlock | None:
    stored = _stored_payload(key, first_visit_id)
    return None if stored is None else _unpacked(key, first_visit_id, stored[0])


def _featurise(
    model: TrainedModel, ids: np.ndarray | None, whole_range: tuple[int, int] | None
) -> Any:
    """(ids found, features) of the visits ``ids`` (or of every visit in ``whole_range``): the
    frame decrypts their free text."""
    if whole_range is not None:
        visits = Visit.objects.filter(pk__gte=whole_range[0], pk__lte=whole_range[1])
    else:
        visits = Visit.objects.filter(pk__in=[] if ids is None else ids.tolist())
    frame = visits_frame(visits)
    found = frame.index.to_numpy(dtype=np.int64)
    if not len(found):
        return found, None
    return found, model.featurizer.transform(apply_plans(frame, model.plans))


def feature_rows_for_range(
    *, version: ModelVersion, model: TrainedModel, first_visit_id: int, last_visit_id: int
) -> FeatureRows:
    """The feature rows of every visit with an id in the range, from the cache where still
    valid; computes (and caches) the others."""
    featurizer = model.featurizer
    if featurizer.is_sequence:
        # Token sequences (neural text models) are not rows of numbers: nothing to cache.
        found, matrix = _featurise(model, None, (first_visit_id, last_visit_id))
        return FeatureRows(found, matrix, 0, len(found))
    key = featuriser_key(version)
    now = range_fingerprint(first_visit_id, last_visit_id, key)
    cached, current = None, False
    kept = RECENT_BLOCKS.get(key, first_visit_id, now)
    if kept is not None:
        cached = _unpacked(key, first_visit_id, kept)
        current = cached is not None and block_matches(cached, now)
        if not current:
            RECENT_BLOCKS.forget(key, first_visit_id)
    if not current:
        stored = _stored_payload(key, first_visit_id)
        cached = None if stored is None else _unpacked(key, first_visit_id, stored[0])
        current = cached is not None and block_matches(cached, now)
        if current and stored is not None and now is not None and now.digest is not None:
            payload, stored_at = stored
            RECENT_BLOCKS.put(
                key, first_visit_id, digest=now.digest, stored_at=stored_at, payload=payload
            )
    if current and cached is not None:
        # The usual re-run: nothing in the range changed, one aggregate query said so.
        rows = cached.rows if featurizer.is_sparse else cached.rows.toarray()
        return FeatureRows(cached.ids, rows, len(cached.ids), 0)
    ids, digests = visit_input_stamps(first_visit_id, last_visit_id)
    positions = feature_rows.reuse(cached, ids, digests)
    positions[digests == _UNVERSIONED_STAMP] = -1
    missing = ids[positions < 0]
    fresh = sparse.csr_matrix((0, featurizer.n_features), dtype=np.float64)
    if len(missing):
        whole = (first_visit_id, last_visit_id) if len(missing) == len(ids) else None
        found, matrix = _featurise(model, missing, whole)
        if len(found) != len(missing) or not np.array_equal(found, missing):
            # Visits deleted (or added) since the versions were read: score what both saw.
            keep = np.isin(ids, found) | (positions >= 0)
            ids, digests, positions = ids[keep], digests[keep], positions[keep]
            missing = ids[positions < 0]
            if matrix is not None:
                matrix = feature_rows.as_rows(matrix)[np.flatnonzero(np.isin(found, missing))]
        if matrix is not None:
            fresh = feature_rows.as_rows(matrix)
    block = feature_rows.assemble(cached, positions, ids, digests, fresh)
    if block is not cached and len(block.ids):
        payload, stored_at = _store(key, first_visit_id, last_visit_id, block)
        # Kept under its own pairs' digest: the next run finds it if nothing changes meanwhile.
        RECENT_BLOCKS.put(
            key,
            first_visit_id,
            digest=block_fingerprint(block.ids, block.digests),
            stored_at=stored_at,
            payload=payload,
        )
    rows = block.rows if featurizer.is_sparse else block.rows.toarray()
    hits = int((positions >= 0).sum())
    return FeatureRows(block.ids, rows, hits, len(block.ids) - hits)


def _store(
    key: str, first_visit_id: int, last_visit_id: int, block: feature_rows.RowBlock
) -> tuple[bytes, dt.datetime]:
    """Writes the block (replacing the range's); returns (the payload, its ``updated_at``) as
    stored."""
    payload = encrypt_blob(feature_rows.pack(block), context=_context(key, first_visit_id))
    # One statement, safe against a concurrent run writing the same block (last writer wins;
    # both wrote valid rows for the versions they read).
    if connection.vendor == "postgresql":
        # The payload as a binary parameter (binary_query), not as hex in the statement.
        ((stored_at,),) = binary_query(
            f"""
            INSERT INTO {FeatureRowBlock._meta.db_table}
                   (featuriser_key, first_visit_id, last_visit_id, visits, payload, updated_at)
            VALUES (%(key)s, %(first)s, %(last)s, %(visits)s, %(payload)s, %(now)s)
            ON CONFLICT (featuriser_key, first_visit_id) DO UPDATE
               SET last_visit_id = EXCLUDED.last_visit_id, visits = EXCLUDED.visits,
                   payload = EXCLUDED.payload, updated_at = EXCLUDED.updated_at
            RETURNING updated_at
            """,  # noqa: S608  # nosec B608  # table name from model metadata; values are parameters
            {
                "key": key,
                "first": first_visit_id,
                "last": last_visit_id,
                "visits": len(block.ids),
                "payload": payload,
                "now": timezone.now(),
            },
        )
        return payload, stored_at
    (written,) = FeatureRowBlock.objects.bulk_create(
        [
            FeatureRowBlock(
                featuriser_key=key,
                first_visit_id=first_visit_id,
                last_visit_id=last_visit_id,
                visits=len(block.ids),
                payload=payload,
            )
        ],
        update_conflicts=True,
        unique_fields=["featuriser_key", "first_visit_id"],
        update_fields=["last_visit_id", "visits", "payload", "updated_at"],
    )
    # auto_now set it before the insert, and the update on conflict writes that same value.
    return payload, written.updated_at


def feature_cache_prune(*, keep: list[str]) -> int:
    """Delete the blocks of featurisers no active version uses any more; returns how many."""
    deleted, _ = FeatureRowBlock.objects.exclude(featuriser_key__in=keep).delete()
    return int(deleted)
