"""Computing advice for a visit: the only writer of Advice.

Every active model, the clinical rules and similar past visits make one typed payload
(predictions/payload.py). Idempotent by construction: advice is keyed by (visit, hash of inputs,
models used). A request whose inputs and models already have advice links to it instead of
computing again; a visit whose inputs changed gets new advice and the previous one is marked
superseded. The request's own state is written by the outbox service.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

import numpy as np
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from medai_site.audit import audit_record, audit_record_each, current_request_id
from medai_site.compiled_query import CompiledQuery
from medai_site.errors import AdviceFailed
from medai_site.models import AuditEvent
from predictions import advice_messages, why
from predictions.advice_inputs import visit_for_advice, visits_for_advice
from predictions.medication_safety import (
    conflict_alerts,
    plan_drugs,
    visit_allergies,
    visit_drug_conflicts,
)
from predictions.minimum_data import missing_for_advice, missing_reason
from predictions.ml.artifacts import load_model
from predictions.ml.errors import EngineError
from predictions.models import Advice, AdviceRequest, ModelVersion, PredictionTask
from predictions.payload import (
    AdvicePayload,
    Alert,
    Explanation,
    ModelUsed,
    RankedDiagnosis,
    Risk,
    TextWord,
    payload_dumps,
)
from predictions.rules import SEVERITY_ORDER, ObservationFact, evaluate_rules
from predictions.similar_cases import similar_cases_many
from predictions.visit_records import OTHER_CLASS, input_hash, visit_record
from predictions.wording import category_display
from visits.models import Visit

from . import outbox
from .outbox import MAX_COMPUTE_ATTEMPTS

__all__ = ["MAX_COMPUTE_ATTEMPTS", "RULES_VERSION", "advice_compute"]

logger = logging.getLogger(__name__)
RULES_VERSION = 4  # bump when rules or the wording of reasons change: advice is recomputed
TOP_DIAGNOSES = 5
# Storing clashes with another worker's advice at most once in practice (it then finds that
# advice); a third clash is a fault for the task's retry to handle.
STORE_ATTEMPTS = 3


def _active(task: PredictionTask) -> ModelVersion:
    """The task's active version; _active_tasks() keeps only tasks that have one."""
    if task.active_version is None:
        raise AdviceFailed(f"{task.slug} has no active version")
    return task.active_version


# ModelVersion rows are immutable (written once by training, never edited), so a worker reads each
# version's row (metrics, report, plots: the bulk of the bytes) once. Which version is active,
# and whether a task is switched on, is read on every advice: a rollback or the kill switch
# takes effect with the very next advice.
_versions: dict[int, ModelVersion] = {}
_versions_lock = threading.Lock()


def _active_tasks_query() -> QuerySet[PredictionTask]:
    return (
        PredictionTask.objects.filter(enabled=True, active_version__isnull=False)
        # Forecasts read a patient's whole course; the chart's "Course and outlook" panel shows
        # them (predictions/forecasting.py). Visit advice uses the per-visit models only.
        .exclude(kind=PredictionTask.Kind.FORECAST)
        .only("id", "slug", "name", "kind", "config", "enabled", "active_version_id")
        # Two short columns of the version (a join, not its row) tell a cached row that no
        # longer matches the database (a test database flushed and its ids reused).
        .annotate(
            artifact=F("active_version__artifact_path"),
            artifact_sha256=F("active_version__artifact_sha256"),
        )
        .order_by("slug")
    )


# Compiled once per process (the same statement on every advice; only the SQL text is kept:
# every call reads the tasks afresh).
_ACTIVE_TASKS = CompiledQuery(_active_tasks_query, parameters=0)


def _active_tasks() -> list[PredictionTask]:
    rows: list[Any] = _ACTIVE_TASKS.many()  # tasks with the annotations above
    tasks: list[PredictionTask] = []
    stale: set[int] = set()
    for task in rows:
        version_id = task.active_version_id
        if version_id is None:  # filtered out above; for the type checker
            continue
        cached = _versions.get(version_id)
        if cached is None or (cached.artifact_path, cached.artifact_sha256) != (
            task.artifact,
            task.artifact_sha256,
        ):
            stale.add(version_id)
        tasks.append(task)
    if stale:
        with _versions_lock:
            _versions.update((v.pk, v) for v in ModelVersion.objects.filter(pk__in=stale))
    for active in tasks:
        # Set through the descriptor's cache: no query, and the instance is the cached one.
        PredictionTask.active_version.field.set_cached_value(
            active, _versions[active.active_version_id or 0]
        )
    return tasks


def versions_forget() -> None:
    """Tests (and a worker freeing memory) drop the cached version rows."""
    with _versions_lock:
        _versions.clear()


# Requests this process completed as the others of a batch, whose own messages are still to come:
# request id -> the advice it was completed with. Their message then finds it here and is done
# without a statement: a done request stays done (nothing reopens it) with that advice, exactly
# what the claim would have found. An entry leaves when its message comes; the bound only
# matters for messages that never come (a purged queue). Kept only outside an advice worker
# (eager tasks, tests): there the worker's main process acknowledges those messages itself.
_finished: OrderedDict[int, Advice] = OrderedDict()
_finished_lock = threading.Lock()
FINISHED_KEPT = 1024


def _finished_add(done: dict[int, Advice]) -> None:
    # In an advice worker the main process acknowledges their messages without this process
    # (advice_messages.py): nothing to keep here.
    if advice_messages.note(done):
        return
    with _finished_lock:
        _finished.update(done)
        while len(_finished) > FINISHED_KEPT:
            _finished.popitem(last=False)


def _finished_pop(request_id: int) -> Advice | None:
    with _finished_lock:
        return _finished.pop(request_id, None)


def finished_forget() -> None:
    """Tests drop what earlier ones completed in batches (their databases are gone)."""
    with _finished_lock:
        _finished.clear()


def _models_key(tasks: list[PredictionTask]) -> str:
    """The models an advice is computed with, as stored in Advice.models_key: with the inputs'
    digest, what makes advice the same advice (one row per visit, digest and models)."""
    return ",".join(f"{t.slug}:{_active(t).number}" for t in tasks) or "rules-only"


def _inputs_digest(visit: Visit, record: dict) -> str:
    """The digest of everything advice reads from the visit: its record, the patient's
    allergies, the doctor's plan, and the rules' version (a change to any is new advice)."""
    return input_hash(
        record,
        extra={
            "allergies": [(a.substance, a.severity) for a in visit_allergies(visit)],
            "plan_drugs": plan_drugs(visit),
            "rules": RULES_VERSION,
        },
    )


def _allergy_names(visit: Visit) -> list[str]:
    """The substances the rules check the suggestions against."""
    return sorted(a.substance for a in visit.patient.allergies.all())


class _ClaimLost(Exception):
    """The request's claim was released or taken over while this process computed it."""


def advice_compute(
    *, request_id: int, claimant: str = "inline", takeover: bool = False, batch: int = 1
) -> Advice | None:
    """Compute (or find) the advice for one request; the request ends done or failed.

    ``claimant`` names the computing process; of several deliveries of one request only the one
    holding the claim stores, completes and audits it (outbox.advice_request_start).

    ``batch`` > 1 (the advice task): up to ``batch - 1`` other requests already waiting are
    claimed with this one and computed in the same go, with one read, one store and one audit
    insert for all (:func:`_compute_batch`); their own messages then find them done.
    """
    if batch > 1 and (done := _finished_pop(request_id)) is not None:
        return done  # completed by an earlier batch of this process: the message is a no-op
    request, others = outbox.advice_requests_start(
        request_id=request_id, claimant=claimant, takeover=takeover, more=batch - 1
    )
    if others:
        return _compute_batch(request, others, claimant=claimant)
    if request is None:
        return None
    if request.status in (AdviceRequest.Status.DONE, AdviceRequest.Status.FAILED):
        return request.advice  # a redelivered message for finished work
    return _compute_claimed(request, claimant=claimant)


def _compute_claimed(request: AdviceRequest, *, claimant: str) -> Advice | None:
    """The advice of one request this process holds the claim of, computed alone."""
    request_id = request.pk
    # Continue the id of the page/API request that saved the visit, else the request's own: logs
    # and the ADVICE audit record join up with it (the claim returned the row: no extra read).
    # Set for every request, since a batch computes several here one after another.
    current_request_id.set(_log_request_id(request))
    # One statement (predictions/advice_inputs.py): the visit, its patient's sex, observations
    # and allergies; only the texts advice reads are decrypted.
    visit = visit_for_advice(request.visit_id)
    missing = missing_for_advice(visit)
    if missing:
        # Too little recorded for advice: none is computed, and no earlier advice stays current
        # (the visit was emptied since).
        with transaction.atomic():
            if outbox.advice_request_skip(
                request_id=request_id, claimant=claimant, reason=missing_reason(missing)
            ):
                Advice.objects.filter(visit=visit, superseded=False).update(superseded=True)
        return None
    started = time.perf_counter()
    record = visit_record(visit)
    tasks = _active_tasks()
    models_key = _models_key(tasks)
    allergies = _allergy_names(visit)
    digest = _inputs_digest(visit, record)

    advice, others_current = _existing(visit, digest, models_key)
    if advice is None:
        try:
            payload = _payload(visit, record, tasks, allergies)
        except AdviceFailed as exc:
            outbox.advice_request_fail(request_id=request_id, reason=exc.message)
            return None
        compute_ms = (time.perf_counter() - started) * 1000
    # One transaction stores the advice, marks the request done and audits it: a worker dying
    # here leaves either all of it or none (then the request is computed again). Only the
    # claim's holder commits it, so one request has one advice and one ADVICE audit record.
    for attempt in range(STORE_ATTEMPTS):
        stored = advice
        try:
            with transaction.atomic():
                if stored is None:
                    # New advice: inserted and the request completed in one statement.
                    stored, completed = _store(
                        visit,
                        digest,
                        models_key,
                        tasks,
                        payload,
                        compute_ms,
                        others_current,
                        request_id=request_id,
                        claimant=claimant,
                    )
                else:
                    _make_current(stored)
                    completed = outbox.advice_request_complete(
                        request_id=request_id, advice=stored, claimant=claimant
                    )
                if not completed:
                    raise _ClaimLost
                audit_record(
                    actor=None,
                    action=AuditEvent.Action.ADVICE,
                    obj=stored,
                    patient_id=visit.patient_id,
                    interface=AuditEvent.Interface.WORKER,
                )
        except _ClaimLost:
            logger.info("advice request %s was taken over while computed here; dropped", request_id)
            return None
        except IntegrityError:
            # Another worker stored the same advice (same inputs, same models), or another
            # current advice for the visit, since we looked: the whole transaction rolled back
            # (no savepoint around the INSERT: two statements fewer per advice). Look again and
            # use that advice, or supersede the other; the task retries if it keeps clashing.
            found, others_current = _existing(visit, digest, models_key)
            # (An advice found before that is gone now: nothing computed to store; retry.)
            if attempt == STORE_ATTEMPTS - 1 or (found is None and advice is not None):
                raise
            advice = found
            continue
        return stored
    raise AssertionError("unreachable")  # the loop returns or raises


@dataclass
class _Item:
    """One request of a batch on its way to stored advice."""

    request: AdviceRequest
    visit: Visit
    record: dict = field(default_factory=dict)
    digest: str = ""
    allergies: list[str] = field(default_factory=list)
    others_current: bool = False
    payload: AdvicePayload | None = None
    search: _Search | None = None
    compute_ms: float = 0.0
    advice: Advice | None = None

    @property
    def request_id(self) -> str:
        return _log_request_id(self.request)


def _log_request_id(request: AdviceRequest) -> str:
    """The id an advice's logs and audit record carry: the saving page/API request's, else the
    advice request's own."""
    return request.request_id or f"advice-request-{request.pk}"


def _compute_batch(
    own: AdviceRequest | None, others: list[AdviceRequest], *, claimant: str
) -> Advice | None:
    """The message's own request (if claimed here) and ``others`` claimed with it, computed in
    one go; the own request's advice is returned as :func:`advice_compute` returns it.

    If the batch fails (an unexpected error, the database gone), the others this process still
    holds are handed back (dispatched again: their own messages, or the relay, compute them) and
    the error is raised for the own request as a failed computation of it alone is.
    """
    own_id = own.pk if own is not None and own.status == AdviceRequest.Status.COMPUTING else None
    requests = ([own] if own is not None and own_id is not None else []) + others
    try:
        results = _compute_many(requests, claimant=claimant, own_id=own_id)
    except BaseException:
        with contextlib.suppress(Exception):  # the database may be what failed: claims expire
            outbox.advice_requests_release(request_ids=[r.pk for r in others], claimant=claimant)
        raise
    if own is None:
        return None
    if own_id is None:
        return own.advice  # a redelivered message for finished work
    return results.get(own_id)


def _compute_many(
    requests: list[AdviceRequest], *, claimant: str, own_id: int | None
) -> dict[int, Advice | None]:
    """Advice for several claimed requests: one read of their visits, one look for advice
    already stored, one similar-case statement, and one transaction that stores every new advice
    and completes its request (one statement) and audits them (one insert), as many statements
    as one advice takes alone (tests/predictions/test_advice_queries.py).

    What the batch does not store as new advice (a visit with too little recorded, advice found
    already stored, a second request of one visit, a batch whose store clashed or lost a claim)
    is computed alone by the one-request path, which handles each of those cases."""
    results: dict[int, Advice | None] = {}
    visits = visits_for_advice(list(dict.fromkeys(r.visit_id for r in requests)))
    alone: list[AdviceRequest] = []
    items: list[_Item] = []
    for request in requests:
        visit = visits.pop(request.visit_id, None)  # a visit's first request only
        if visit is None or missing_for_advice(visit):
            alone.append(request)
        else:
            items.append(_Item(request=request, visit=visit))
    tasks = _active_tasks()
    models_key = _models_key(tasks)
    for item in items:
        started = time.perf_counter()
        item.record = visit_record(item.visit)
        item.allergies = _allergy_names(item.visit)
        item.digest = _inputs_digest(item.visit, item.record)
        item.compute_ms = (time.perf_counter() - started) * 1000
    found = _existing_many(items, models_key)
    fresh: list[_Item] = []
    for item in items:
        same, item.others_current = found[item.visit.pk]
        if same is not None:
            alone.append(item.request)  # link to it: the one-request path makes it current
            continue
        current_request_id.set(item.request_id)
        started = time.perf_counter()
        try:
            item.payload, item.search = _payload_parts(
                item.visit, item.record, tasks, item.allergies
            )
        except AdviceFailed as exc:
            outbox.advice_request_fail(request_id=item.request.pk, reason=exc.message)
            results[item.request.pk] = None
            continue
        item.compute_ms += (time.perf_counter() - started) * 1000
        fresh.append(item)
    searched = [item for item in fresh if item.search is not None]
    started = time.perf_counter()
    cases = similar_cases_many([item.search for item in searched if item.search is not None])
    share = (time.perf_counter() - started) * 1000 / max(len(searched), 1)
    for item, similar in zip(searched, cases, strict=True):
        if item.payload is not None:
            item.payload = replace(item.payload, similar_cases=similar)
        item.compute_ms += share
    if fresh:
        if _store_batch(fresh, tasks, models_key, claimant=claimant):
            results.update((item.request.pk, item.advice) for item in fresh)
        else:
            alone.extend(item.request for item in fresh)
    failure: BaseException | None = None
    for request in sorted(alone, key=lambda r: r.pk):
        try:
            results[request.pk] = _compute_claimed(request, claimant=claimant)
        except Exception as exc:
            if request.pk == own_id:
                failure = exc  # raised for the message's own request once the others are done
                continue
            logger.warning(
                "advice request %s failed in a batch (%s); handed back",
                request.pk,
                type(exc).__name__,
            )
            outbox.advice_requests_release(request_ids=[request.pk], claimant=claimant)
    _finished_add(
        {pk: advice for pk, advice in results.items() if pk != own_id and advice is not None}
    )
    if failure is not None:
        raise failure
    return results


def _existing_many(items: list[_Item], models_key: str) -> dict[int, tuple[Advice | None, bool]]:
    """:func:`_existing` for every visit of a batch (distinct visits), in one query."""
    return _existing_by_visit({item.visit.pk: item.digest for item in items}, models_key)


def _existing_by_visit(
    digests: dict[int, str], models_key: str
) -> dict[int, tuple[Advice | None, bool]]:
    """By visit id (``digests``: visit id -> its inputs' digest), the advice already stored for
    those inputs and models, if any, and whether the visit has another current advice (to
    supersede): one query, without reading the payloads. The one place both paths look."""
    rows: dict[int, list[Advice]] = {visit_id: [] for visit_id in digests}
    if digests and connection.vendor == "postgresql":
        # A statement written once per process (building this filter with the ORM cost more
        # CPU than the database's answer); instances built as only() builds them.
        with connection.cursor() as cursor:
            cursor.execute(
                _existing_sql(),
                [list(rows), False, sorted(set(digests.values())), models_key],
            )
            found_rows = cursor.fetchall()
        names = [f.attname for f in Advice._meta.concrete_fields if f.attname in _EXISTING_FIELDS]
        for values in found_rows:
            advice = Advice.from_db(connection.alias, names, values)
            rows[advice.visit_id].append(advice)
    elif digests:
        for advice in (
            Advice.objects.filter(visit_id__in=list(rows))
            .filter(
                Q(superseded=False) | Q(input_hash__in=set(digests.values()), models_key=models_key)
            )
            .only(*_EXISTING_FIELDS)
        ):
            rows[advice.visit_id].append(advice)
    found: dict[int, tuple[Advice | None, bool]] = {}
    for visit_id, digest in digests.items():
        stored = rows[visit_id]
        same = next(
            (a for a in stored if a.input_hash == digest and a.models_key == models_key), None
        )
        found[visit_id] = (same, any(a is not same and not a.superseded for a in stored))
    return found


_EXISTING_FIELDS = ("id", "visit_id", "input_hash", "models_key", "superseded")


@lru_cache(maxsize=1)
def _existing_sql() -> str:
    """Advice of the visits (``= ANY``) that is current or has one of the inputs' hashes with
    these models; its columns in the model's field order (as Model.from_db takes them)."""
    q = connection.ops.quote_name
    meta = Advice._meta
    fields = [f for f in meta.concrete_fields if f.attname in _EXISTING_FIELDS]
    column = {f.attname: q(f.column) for f in fields}
    return (
        f"SELECT {', '.join(column.values())} FROM {q(meta.db_table)} "  # noqa: S608  # nosec B608  # names only
        f"WHERE {column['visit_id']} = ANY(%s) AND ({column['superseded']} = %s "
        f"OR ({column['input_hash']} = ANY(%s) AND {column['models_key']} = %s))"
    )


def _store_batch(
    items: list[_Item], tasks: list[PredictionTask], models_key: str, *, claimant: str
) -> bool:
    """Store every item's new advice, complete its request and audit it, in one transaction;
    False (nothing stored) when that cannot be done for all of them at once: advice stored by
    another worker meanwhile (a constraint clash) or a claim taken over since. Each request is
    then computed alone, which handles either case."""
    try:
        with transaction.atomic():
            superseding = [item.visit.pk for item in items if item.others_current]
            if superseding:
                Advice.objects.filter(visit_id__in=superseding, superseded=False).update(
                    superseded=True
                )
            if _store_many(items, tasks, models_key, claimant=claimant) != len(items):
                raise _ClaimLost
            audit_record_each(
                actor=None,
                action=AuditEvent.Action.ADVICE,
                records=[
                    (item.advice, item.visit.patient_id, item.request_id)
                    for item in items
                    if item.advice is not None
                ],
                interface=AuditEvent.Interface.WORKER,
            )
    except (_ClaimLost, IntegrityError) as exc:
        logger.info(
            "advice batch of %d not stored as one (%s); each computed alone",
            len(items),
            type(exc).__name__,
        )
        for item in items:
            item.advice = None
        return False
    outbox.advice_requests_announce(visit_ids=[item.visit.pk for item in items])
    return True


def _store_many(
    items: list[_Item], tasks: list[PredictionTask], models_key: str, *, claimant: str
) -> int:
    """Insert the items' advice with their versions and complete their requests (if
    ``claimant`` still holds them): one statement for the whole batch (PostgreSQL: batches are
    claimed there only). How many requests were completed; each item gets its advice."""
    for item in items:
        if item.payload is None:  # fresh items carry their payload; for the type checker
            raise AssertionError("an item without payload in a batch's store")
        item.advice = _new_advice(
            item.visit, item.digest, models_key, item.payload, item.compute_ms
        )
    return _insert_completing(
        [(item.advice, item.request.pk) for item in items if item.advice is not None],
        [_active(t).pk for t in tasks],
        claimant=claimant,
    )


def _new_advice(
    visit: Visit, digest: str, models_key: str, payload: AdvicePayload, compute_ms: float
) -> Advice:
    """The unsaved Advice row of a payload (both paths store what this builds)."""
    return Advice(
        visit=visit,
        input_hash=digest,
        models_key=models_key,
        payload=payload_dumps(payload),
        abstained=payload.abstained,
        alert_count=len(payload.alerts),
        critical_alert_count=len(payload.critical_alerts),
        compute_ms=compute_ms,
    )


def _insert_completing(
    advices: list[tuple[Advice, int]], version_ids: list[int], *, claimant: str
) -> int:
    """Insert each (advice, request id)'s advice (distinct visits) with ``version_ids`` and
    complete its request if ``claimant`` still holds it: one statement (PostgreSQL) whatever the
    count, for one advice or a batch. How many requests were completed; each advice gets its
    primary key."""
    fields = [f for f in Advice._meta.concrete_fields if not f.primary_key]
    values: list[Any] = []
    for advice, _request_id in advices:
        values += [f.get_db_prep_save(f.pre_save(advice, True), connection) for f in fields]
    with connection.cursor() as cursor:
        cursor.execute(
            _store_many_sql(len(advices)),
            [
                *values,
                version_ids,
                AdviceRequest.Status.DONE,
                timezone.now(),
                [request_id for _advice, request_id in advices],
                [advice.visit_id for advice, _request_id in advices],
                AdviceRequest.Status.COMPUTING,
                claimant,
            ],
        )
        rows = cursor.fetchall()
    ids = {visit_id: advice_id for advice_id, visit_id, _completed in rows}
    for advice, _request_id in advices:
        advice.pk = ids[advice.visit_id]
        advice._state.adding = False
        advice._state.db = connection.alias
    return int(rows[0][2]) if rows else 0


@lru_cache(maxsize=64)
def _store_many_sql(count: int) -> str:
    """The statement storing ``count`` advice of distinct visits, written once per process and
    count from the models' tables and columns (values are parameters): INSERT them, INSERT their
    versions, UPDATE their requests (each joined to its visit's new advice)."""
    q = connection.ops.quote_name
    meta, request = Advice._meta, AdviceRequest._meta
    through = Advice.model_versions.through._meta
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    columns = ", ".join(q(f.column) for f in fields)
    rows = ", ".join([f"({', '.join(['%s'] * len(fields))})"] * count)
    pk, visit = q(meta.pk.column), q(meta.get_field("visit").column)
    table = q(request.db_table)

    def col(m: Any, name: str) -> str:
        return q(m.get_field(name).column)

    return (
        f"WITH a AS (INSERT INTO {q(meta.db_table)} ({columns}) "  # noqa: S608  # nosec B608  # names only
        f"VALUES {rows} RETURNING {pk}, {visit}), "
        f"v AS (INSERT INTO {q(through.db_table)} "
        f"({col(through, 'advice')}, {col(through, 'modelversion')}) "
        f"SELECT a.{pk}, version FROM a, unnest(%s::bigint[]) "
        f"WITH ORDINALITY AS versions (version, position) ORDER BY a.{pk}, position), "
        f"r AS (UPDATE {table} SET {col(request, 'status')} = %s, "
        f"{col(request, 'advice')} = a.{pk}, "
        f"{col(request, 'finished_at')} = %s, {col(request, 'error')} = '' "
        "FROM a, unnest(%s::bigint[], %s::bigint[]) AS m (request, visit) "
        f"WHERE {table}.{q(request.pk.column)} = m.request AND a.{visit} = m.visit "
        f"AND {table}.{col(request, 'status')} = %s "
        f"AND {table}.{col(request, 'claimed_by')} = %s RETURNING 1) "
        f"SELECT a.{pk}, a.{visit}, (SELECT count(*) FROM r) FROM a"
    )


def _make_current(advice: Advice) -> None:
    """Advice found again for earlier inputs (a visit edited back) becomes current once more."""
    if advice.superseded:
        Advice.objects.filter(visit_id=advice.visit_id, superseded=False).update(superseded=True)
        Advice.objects.filter(pk=advice.pk).update(superseded=False)


def _existing(visit: Visit, digest: str, models_key: str) -> tuple[Advice | None, bool]:
    """The advice already stored for these inputs and models, if any, and whether the visit has
    another current advice (to supersede): the batch's look, for one visit."""
    return _existing_by_visit({visit.pk: digest}, models_key)[visit.pk]


def _store(
    visit: Visit,
    digest: str,
    models_key: str,
    tasks: list[PredictionTask],
    payload: AdvicePayload,
    compute_ms: float,
    others_current: bool = True,
    *,
    request_id: int,
    claimant: str,
) -> tuple[Advice, bool]:
    """Insert the advice and its versions (superseding the current one first) and complete the
    request if ``claimant`` still holds it, inside the caller's transaction: the advice and
    whether the request was completed (if not, the caller rolls back). A clash (IntegrityError)
    aborts that transaction, and the caller looks again (advice_compute)."""
    if others_current:
        Advice.objects.filter(visit=visit, superseded=False).update(superseded=True)
    advice = _new_advice(visit, digest, models_key, payload, compute_ms)
    version_ids = [_active(t).pk for t in tasks]
    if connection.vendor != "postgresql":  # the local profile's SQLite: three statements
        advice.save(force_insert=True)
        # A new row has no versions yet: one INSERT (set() would read the current ones first).
        Advice.model_versions.through.objects.bulk_create(
            Advice.model_versions.through(advice_id=advice.pk, modelversion_id=version_id)
            for version_id in version_ids
        )
        completed = outbox.advice_request_complete(
            request_id=request_id, advice=advice, claimant=claimant
        )
        return advice, completed
    # One round trip instead of three: on a loaded machine each costs a wait for the database
    # process to be scheduled, more than the statement itself (tests/bench/
    # bench_advice_throughput.py). The batch's statement, with one row.
    completed = bool(_insert_completing([(advice, request_id)], version_ids, claimant=claimant))
    if completed:
        outbox.advice_request_announce(visit_id=visit.pk)
    return advice, completed


def _text_evidence(text: dict | None) -> dict:
    """The engine's text explanation as payload fields (words kept where they stand)."""
    if not text:
        return {}
    words = [
        TextWord(
            column=w["column"],
            text=w["text"],
            start=w["start"],
            end=w["end"],
            negated=w.get("negated", False),
            uncertain=w.get("uncertain", False),
            contribution=round(float(w["contribution"]), 6),
        )
        for w in text.get("words", [])
    ]
    return {"text_method": text.get("method", ""), "text_words": words}


def _load(version: ModelVersion, task: PredictionTask):
    """The version's fitted model; an engine error becomes the app's AdviceFailed."""
    try:
        return load_model(version.artifact_path, version.artifact_sha256)
    except (EngineError, OSError) as exc:
        raise AdviceFailed(
            f"Model {task.slug} v{version.number} cannot be used: {exc}. "
            "An admin should roll back or switch the model off."
        ) from exc


def _payload(
    visit: Visit, record: dict, tasks: list[PredictionTask], allergies: list[str]
) -> AdvicePayload:
    payload, search = _payload_parts(visit, record, tasks, allergies)
    if search is None:
        return payload
    return replace(payload, similar_cases=similar_cases_many([search])[0])


_Search = tuple[ModelVersion, np.ndarray, str]


def _payload_parts(
    visit: Visit, record: dict, tasks: list[PredictionTask], allergies: list[str]
) -> tuple[AdvicePayload, _Search | None]:
    """The payload without its similar past cases, and the search that finds them (a batch
    runs the searches of all its visits in one statement: similar_cases_many)."""
    diagnoses: list[RankedDiagnosis] = []
    risks: list[Risk] = []
    models: list[ModelUsed] = []
    explanation: Explanation | None = None
    abstained, abstain_reasons = False, []
    differential_vector = None
    differential_version = None
    entered = why.entered_values(visit)
    leaned_on: list[str] = []  # unmeasured inputs the differential model leaned on
    for task in tasks:
        version = _active(task)
        model = _load(version, task)
        prediction = model.predict_one(record)
        models.append(
            ModelUsed(
                task=task.slug,
                task_name=task.name,
                version=version.number,
                version_id=version.pk,
                algorithm=version.algorithm,
            )
        )
        if prediction.abstain:
            abstained = True
            abstain_reasons.extend(why.abstain_texts(task.name, prediction.abstain_reasons or []))
        contributions, unmeasured = why.reasons(prediction.contributions, record, entered)
        if task.kind == PredictionTask.Kind.DIFFERENTIAL:
            leaned_on = unmeasured
            for rank, (label, probability) in enumerate(prediction.ranked[:TOP_DIAGNOSES], start=1):
                # The engine's class names are normalised to lower case; codes are upper case.
                category = label if label == OTHER_CLASS else label.upper()
                diagnoses.append(
                    RankedDiagnosis(
                        code=category,
                        display=category_display(category),
                        probability=round(probability, 4),
                        rank=rank,
                    )
                )
            explanation = Explanation(
                task=task.slug,
                predicted=prediction.predicted,
                scale=prediction.scale,
                baseline=prediction.baseline,
                contributions=contributions,
                **_text_evidence(prediction.text),
            )
            differential_vector = np.array(
                [prediction.probabilities[c] for c in model.classes], dtype=np.float32
            )
            differential_version = version
        else:
            positive = "1" if "1" in prediction.probabilities else model.classes[-1]
            risks.append(
                Risk(
                    task=task.slug,
                    name=task.name,
                    label=task.config.get("label", task.name),
                    probability=round(prediction.probabilities[positive], 4),
                    version=version.number,
                    abstain=prediction.abstain,
                    contributions=contributions,
                )
            )
    facts = {
        obs.definition.code: ObservationFact(
            code=obs.definition.code,
            display=obs.definition.display,
            value=obs.value,
            unit=obs.definition.unit,
            interpretation=obs.interpretation,
            critical_low=obs.definition.critical_low,
            critical_high=obs.definition.critical_high,
        )
        for obs in visit.observations.all()
    }
    alerts = evaluate_rules(
        facts=facts,
        free_text=f"{visit.chief_complaint}\n{visit.history_present_illness}\n{visit.physical_exam}",
        suggested_codes=[d.code for d in diagnoses[:3] if d.code != OTHER_CLASS],
        allergies=allergies,
    )
    # The doctor's own plan against the allergies, whatever the models suggest.
    alerts = sorted(
        alerts + conflict_alerts(visit_drug_conflicts(visit)),
        key=lambda a: (SEVERITY_ORDER[a["severity"]], a["rule"]),
    )
    search = (
        (differential_version, differential_vector, str(visit.patient_id))
        if differential_version is not None and differential_vector is not None
        else None
    )
    payload = AdvicePayload(
        visit_id=visit.pk,
        computed_at=timezone.now().isoformat(),
        diagnoses=diagnoses,
        risks=risks,
        explanation=explanation,
        abstained=abstained,
        abstain_reasons=abstain_reasons,
        alerts=[Alert(**a) for a in alerts],
        not_measured=why.would_help(leaned_on, [a["rule"] for a in alerts], entered),
        models=models,
        rules_version=RULES_VERSION,
    )
    return payload, search
