"""Re-scoring every stored visit as a Celery group of chunks, so more workers make it faster.

``scoring_run_start`` splits the visits into chunks of ids aligned on ``chunk_visits``
(``1..C``, ``C+1..2C``, ...: the same chunks every run, so each maps to one block of the feature
cache) and, after commit, sends one ``scoring_chunk_compute`` task per non-empty chunk as a
Celery group. Any worker consuming the ``scoring`` queue takes chunks; each chunk reads its rows
from the feature cache (``services.feature_cache``, computing what is missing), runs the
active version's ``predict_proba`` once, and stores the chunk's scores as one encrypted row.
Completion is counted in the database (no result backend): the chunk that brings the count of
stored chunks to ``chunks_total`` marks the run done, under a lock on the run's row.

A chunk is idempotent: a redelivered task finds its chunk stored and returns.
"""

from __future__ import annotations

import struct
import time
from typing import Any

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from medai_site.audit import audit_record
from medai_site.blob_encryption import decrypt_blob, encrypt_blob
from medai_site.compiled_query import mark_saved
from medai_site.errors import InvalidInput, ModelUnavailable
from medai_site.models import AuditEvent
from predictions.ml.artifacts import load_model
from predictions.models import PredictionTask, ScoringChunk, ScoringRun
from visits.models import Visit

from .feature_cache import (
    binary_query,
    feature_cache_prune,
    feature_rows_for_range,
    featuriser_key,
)

# Chunk size (settings.MEDAI_SCORING_CHUNK_VISITS, 10,000 by default): large enough that a
# task's fixed costs (broker, queries, the model call) stay small beside its rows, small enough
# that two workers get several chunks each of 100,000 visits.
MAX_CHUNK_VISITS = 200_000
_SCORES = struct.Struct("<4sQQ")  # magic, rows, classes
_SCORES_MAGIC = b"SCB1"


def chunk_ranges(chunk_visits: int) -> list[tuple[int, int]]:
    """The non-empty chunks ``(first id, last id)`` of ``chunk_visits`` aligned ids."""
    return [bounds for bounds, _ in _chunks_counted(chunk_visits)]


def _chunks_counted(chunk_visits: int) -> list[tuple[tuple[int, int], int]]:
    """Each non-empty chunk with its number of visits: one scan gives the run its chunks and
    its total."""
    table = Visit._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT (id - 1) / %s, count(*) FROM {table} GROUP BY 1 ORDER BY 1",  # noqa: S608  # nosec B608  # table name from model metadata; the value is a parameter
            [chunk_visits],
        )
        found = [(int(k), int(n)) for k, n in cursor.fetchall()]
    return [((k * chunk_visits + 1, (k + 1) * chunk_visits), n) for k, n in found]


def scoring_run_start(
    *, task: PredictionTask, actor: Any = None, chunk_visits: int | None = None
) -> ScoringRun:
    """Re-score every stored visit with ``task``'s active version; returns the running run."""
    if task.kind == PredictionTask.Kind.FORECAST:
        raise InvalidInput(
            f"Task '{task.slug}' forecasts patients' timelines; batch scoring scores visits.",
            fields={"task": ["A forecast task cannot be batch-scored."]},
        )
    version = task.active_version
    if version is None or not task.enabled:
        raise ModelUnavailable(f"Task '{task.slug}' has no enabled active model version.")
    chunk = settings.MEDAI_SCORING_CHUNK_VISITS if chunk_visits is None else chunk_visits
    if not 1 <= chunk <= MAX_CHUNK_VISITS:
        raise InvalidInput(
            f"Chunk size must be between 1 and {MAX_CHUNK_VISITS:,} visits, not {chunk}.",
            fields={"chunk_visits": [f"Between 1 and {MAX_CHUNK_VISITS:,}."]},
        )
    counted = _chunks_counted(chunk)
    ranges = [bounds for bounds, _ in counted]
    with transaction.atomic():
        run = ScoringRun.objects.create(
            task=task,
            version=version,
            chunk_visits=chunk,
            chunks_total=len(ranges),
            visits_total=sum(n for _, n in counted),
            started_by=actor,
            status=ScoringRun.Status.RUNNING if ranges else ScoringRun.Status.DONE,
            finished_at=None if ranges else timezone.now(),
        )
        # Blocks of featurisers that no active version uses can never be hit again.
        active = PredictionTask.objects.filter(active_version__isnull=False).select_related(
            "active_version"
        )
        feature_cache_prune(
            keep=[featuriser_key(t.active_version) for t in active if t.active_version is not None]
        )
        # Every patient's visits are read (free text decrypted) to score them: who started it
        # and when is in the audit trail, like a training snapshot's export.
        audit_record(actor=actor, action=AuditEvent.Action.CREATE, obj=run)
        if ranges:
            transaction.on_commit(lambda: _dispatch(run.pk, ranges))
    return run


def _dispatch(run_id: int, ranges: list[tuple[int, int]]) -> None:
    from celery import group

    from predictions.tasks import scoring_chunk_compute

    # Ids only on the broker: the run and the chunk's id range.
    group(scoring_chunk_compute.si(run_id, first, last) for first, last in ranges).apply_async()


def _scores_context(run_id: int, first_visit_id: int) -> bytes:
    return f"{ScoringChunk._meta.db_table}:{run_id}:{first_visit_id}".encode()


def pack_scores(ids: np.ndarray, proba: np.ndarray) -> bytes:
    header = _SCORES.pack(_SCORES_MAGIC, len(ids), proba.shape[1] if proba.ndim == 2 else 0)
    return (
        header
        + np.ascontiguousarray(ids, dtype="<i8").tobytes()
        + np.ascontiguousarray(proba, dtype="<f8").tobytes()
    )


def unpack_scores(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    magic, n, k = _SCORES.unpack_from(data)
    if magic != _SCORES_MAGIC or len(data) != _SCORES.size + 8 * n + 8 * n * k:
        raise ValueError("not a block of scores")
    ids = np.frombuffer(data, dtype="<i8", count=n, offset=_SCORES.size)
    proba = np.frombuffer(data, dtype="<f8", count=n * k, offset=_SCORES.size + 8 * n)
    return ids, proba.reshape(n, k)


def chunk_scores(chunk: ScoringChunk) -> tuple[np.ndarray, np.ndarray]:
    """(visit ids, probabilities) of one stored chunk."""
    plain = decrypt_blob(chunk.payload, context=_scores_context(chunk.run_id, chunk.first_visit_id))
    return unpack_scores(plain)


def scoring_chunk_compute(
    *, run_id: int, first_visit_id: int, last_visit_id: int
) -> ScoringChunk | None:
    """Score the visits with ids in the range for the run; None if the run is gone or the
    chunk is already stored (a redelivered task)."""
    # Only what a chunk uses: the version's row carries its report and plots (some 18 KB of
    # JSON to parse, a tenth of a cached chunk's database time).
    run = (
        ScoringRun.objects.select_related("version")
        .only(
            "id",
            "chunks_total",
            "version__id",
            "version__artifact_path",
            "version__artifact_sha256",
        )
        .filter(pk=run_id)
        .first()
    )
    if run is None:
        return None
    if ScoringChunk.objects.filter(run=run, first_visit_id=first_visit_id).exists():
        return None
    started = time.perf_counter()
    version = run.version
    model = load_model(version.artifact_path, version.artifact_sha256)
    rows = feature_rows_for_range(
        version=version, model=model, first_visit_id=first_visit_id, last_visit_id=last_visit_id
    )
    if len(rows.ids):
        proba = model.model.predict_proba(rows.matrix)
    else:
        proba = np.zeros((0, len(model.classes)))
    payload = encrypt_blob(
        pack_scores(rows.ids, proba), context=_scores_context(run.pk, first_visit_id)
    )
    with transaction.atomic():
        # The lock orders the chunks' completions (and a redelivered duplicate): each counts
        # the chunks committed before it.
        ScoringRun.objects.select_for_update().get(pk=run.pk)
        if ScoringChunk.objects.filter(run=run, first_visit_id=first_visit_id).exists():
            return None
        chunk = _chunk_insert(
            run=run,
            first_visit_id=first_visit_id,
            last_visit_id=last_visit_id,
            visits=len(rows.ids),
            cache_hits=rows.cache_hits,
            compute_ms=round((time.perf_counter() - started) * 1000, 2),
            payload=payload,
        )
        if ScoringChunk.objects.filter(run=run).count() >= run.chunks_total:
            ScoringRun.objects.filter(pk=run.pk, status=ScoringRun.Status.RUNNING).update(
                status=ScoringRun.Status.DONE, finished_at=timezone.now()
            )
    return chunk


def _chunk_insert(
    *,
    run: ScoringRun,
    first_visit_id: int,
    last_visit_id: int,
    visits: int,
    cache_hits: int,
    compute_ms: float,
    payload: bytes,
) -> ScoringChunk:
    """``ScoringChunk.objects.create`` with the payload (a megabyte of scores per 10,000
    visits) bound as a binary parameter on PostgreSQL, not written into the statement as hex."""
    fields = {
        "first_visit_id": first_visit_id,
        "last_visit_id": last_visit_id,
        "visits": visits,
        "cache_hits": cache_hits,
        "compute_ms": compute_ms,
        "payload": payload,
    }
    if connection.vendor != "postgresql":
        return ScoringChunk.objects.create(run=run, **fields)
    created_at = timezone.now()
    values = {"run": run.pk, "created_at": created_at, **fields}
    meta = ScoringChunk._meta
    column = {f.name: f.column for f in meta.concrete_fields}
    columns = ", ".join(column[name] for name in values)
    placeholders = ", ".join(f"%({name})s" for name in values)
    ((pk,),) = binary_query(
        f"INSERT INTO {meta.db_table} ({columns}) VALUES ({placeholders}) RETURNING id",  # noqa: S608  # nosec B608  # names from model metadata; values are parameters
        values,
    )
    chunk = ScoringChunk(run=run, created_at=created_at, **fields)
    mark_saved(chunk, pk, connection.alias)
    return chunk
