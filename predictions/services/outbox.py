"""The advice outbox: the only writer of AdviceRequest.

Visits records a :class:`~visits.models.VisitEvent` in the visit's own transaction and calls its
subscribers there (visits/events.py); :func:`on_visit_event`, subscribed by the app config, turns
the event into an AdviceRequest in that same transaction, so a saved visit always has its request.
The broker is told after commit (fast path). If the broker is down the row stays pending, and the
relay (``manage.py relay_outbox``, Procfile "relay") hands it over later. The relay also sweeps
events that have no request yet (a subscriber that failed, or an event written by a process
without predictions loaded): one request per event, enforced by a unique constraint. Only the
request id travels on the broker.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone

from medai_site import live_events
from medai_site.after_response import after_response
from medai_site.audit import current_request_id
from predictions.models import Advice, AdviceRequest, AdviceWorker
from visits.models import Visit, VisitEvent

from . import advice_workers

logger = logging.getLogger(__name__)
RELAY_BATCH = 500  # requests per relay round: one round stays well under a second of work
# A request whose computation never finishes (its worker killed each time, an unexpected error)
# is redelivered by the broker and re-dispatched by the relay; after this many starts it is
# marked failed with a reason instead of cycling forever (the retry cap on redelivery).
MAX_COMPUTE_ATTEMPTS = 5
# The web dispatches a new request right after its commit; the relay leaves a pending request
# this long to it, so the two do not both send it (either would be harmless: the claim).
DISPATCH_GRACE_SECONDS = 2
# A claim older than the advice task's hard time limit (90 s, predictions/tasks.py) plus margin
# belongs to a computation that cannot still be running: anyone may take the request over.
CLAIM_SECONDS = 120


@transaction.atomic
def advice_request_create(*, visit: Visit, actor: object | None) -> AdviceRequest:
    """An explicit request (the API's POST): no visit event behind it."""
    request = AdviceRequest.objects.create(visit=visit, request_id=current_request_id.get())
    transaction.on_commit(
        lambda: after_response(lambda: advice_request_dispatch(request_id=request.pk))
    )
    return request


def advice_request_from_event(
    *, event: VisitEvent, dispatch: bool = True, new: bool = False
) -> AdviceRequest:
    """The one request for ``event``: created once, whoever (subscriber or relay) comes first.

    ``get_or_create`` on the unique ``event`` column: a concurrent creator's insert waits for the
    first one's commit, fails on the constraint, and reads the row the first one wrote.
    ``new``: the event was written in the caller's transaction, still uncommitted, so nobody else
    can have consumed it (the relay only sees committed events): one INSERT, without
    ``get_or_create``'s read and savepoint (three round trips fewer on every visit save). The
    unique constraint still holds the invariant.
    """
    if new:
        request = AdviceRequest.objects.create(
            event=event, visit_id=event.visit_id, request_id=event.request_id
        )
        created = True
    else:
        request, created = AdviceRequest.objects.get_or_create(
            event=event,
            defaults={"visit_id": event.visit_id, "request_id": event.request_id},
        )
    if created and dispatch:
        # After commit, and where the web serves a response, after it was sent: the client does
        # not wait for the broker. If the process dies first, the relay sends it (grace period).
        transaction.on_commit(
            lambda: after_response(lambda: advice_request_dispatch(request_id=request.pk))
        )
    return request


def on_visit_event(event: VisitEvent) -> None:
    """Visits' subscriber (registered in PredictionsConfig.ready): every event asks for advice.

    Called by ``visit_event_record`` right after it wrote the event, in the same transaction."""
    advice_request_from_event(event=event, new=True)


def advice_request_dispatch(*, request_id: int) -> bool:
    """Hand one pending request to the broker; False (and the row stays pending) if it is down."""
    from predictions.tasks import advice_compute

    try:
        advice_compute.apply_async(args=[request_id], retry=False)
    except Exception as exc:
        AdviceRequest.objects.filter(pk=request_id).update(
            dispatch_attempts=F("dispatch_attempts") + 1
        )
        logger.warning(
            "advice request %s not dispatched (%s); relay will retry",
            request_id,
            type(exc).__name__,
        )
        return False
    # DISPATCHED too: a re-dispatch by the relay restarts the clock, or every relay round would
    # send the same request again until it is done. A worker may have claimed it already
    # (COMPUTING): it keeps its status, but the dispatch is recorded all the same.
    AdviceRequest.objects.filter(
        pk=request_id,
        status__in=[
            AdviceRequest.Status.PENDING,
            AdviceRequest.Status.DISPATCHED,
            AdviceRequest.Status.COMPUTING,
        ],
    ).update(
        status=Case(
            When(status=AdviceRequest.Status.COMPUTING, then=Value(AdviceRequest.Status.COMPUTING)),
            default=Value(AdviceRequest.Status.DISPATCHED),
        ),
        dispatched_at=timezone.now(),
        dispatch_attempts=F("dispatch_attempts") + 1,
    )
    return True


def advice_requests_relay() -> int:
    """One relay round: requests for unconsumed visit events, then dispatch; count sent.

    Dispatches pending requests (those the web's own after-commit dispatch did not mark within
    :data:`DISPATCH_GRACE_SECONDS`), and re-sends requests the broker or a worker may have lost:

    * everything a lost advice worker held or may have fetched (its heartbeat went silent:
      services/advice_workers.py) — within seconds of the crash;
    * everything in flight when the broker restarted (a Redis that lost its memory or the last
      second of its append-only file) — :func:`broker_restarted` is told by the relay command;
    * a request dispatched ``MEDAI_ADVICE_REDISPATCH_SECONDS`` ago and still not done, or whose
      claim outlived the task's hard time limit (the last resort for anything else).

    A re-sent request computed twice is still stored and audited once (the claim).
    """
    unconsumed = VisitEvent.objects.filter(advice_request__isnull=True).order_by("pk")
    swept = [
        advice_request_from_event(event=event, dispatch=False).pk
        for event in unconsumed[:RELAY_BATCH]
    ]
    now = timezone.now()
    sent = 0
    for request_id in swept:  # nobody else will dispatch these: no grace
        if not advice_request_dispatch(request_id=request_id):
            return sent
        sent += 1
    for worker in AdviceWorker.objects.filter(beat_at__lt=advice_workers.lost_before(now)):
        resent = _resend_for_lost_worker(worker, now)
        if resent is None:
            return sent  # broker down: the worker's row stays, so the next round tries again
        sent += resent
        advice_workers.advice_worker_forget(worker=worker)
    # A claim that outlived the hard time limit: its computation is over, whatever happened.
    AdviceRequest.objects.filter(
        status=AdviceRequest.Status.COMPUTING,
        claimed_at__lt=now - timedelta(seconds=CLAIM_SECONDS),
    ).update(status=AdviceRequest.Status.DISPATCHED, claimed_by="", claimed_at=None)
    lost_before = now - timedelta(seconds=settings.MEDAI_ADVICE_REDISPATCH_SECONDS)
    grace = now - timedelta(seconds=DISPATCH_GRACE_SECONDS)
    waiting = (
        AdviceRequest.objects.filter(
            Q(status=AdviceRequest.Status.PENDING, created_at__lt=grace)
            | Q(status=AdviceRequest.Status.PENDING, dispatch_attempts__gt=0)
            | Q(status=AdviceRequest.Status.DISPATCHED, dispatched_at__lt=lost_before)
            | Q(status=AdviceRequest.Status.DISPATCHED, dispatched_at__isnull=True)
        )
        .exclude(pk__in=swept)
        .order_by("created_at")
        .values_list("pk", flat=True)[:RELAY_BATCH]
    )
    for request_id in waiting:
        if not advice_request_dispatch(request_id=request_id):
            break  # broker down: stop hammering it, try again next round
        sent += 1
    return sent


def _resend(queryset: Any, why: str) -> int | None:
    """Re-send every request in ``queryset``; None if the broker refused one (stop for now)."""
    ids = list(queryset.order_by("created_at").values_list("pk", flat=True))
    for request_id in ids:
        if not advice_request_dispatch(request_id=request_id):
            return None
    if ids:
        logger.warning("re-sent %d advice request(s): %s", len(ids), why)
    return len(ids)


def _resend_for_lost_worker(worker: AdviceWorker, now: datetime) -> int | None:
    """Release the lost worker's claims, then re-send those and every dispatched request.

    Any request dispatched before now may have been in the lost worker's hands (fetched, or in
    flight on its socket when it died: such a message is in neither Redis's queue nor its
    unacknowledged set), so all of them are re-sent once; the live worker that gets a request
    already claimed or done skips it.
    """
    held = AdviceRequest.objects.filter(
        status=AdviceRequest.Status.COMPUTING, claimed_by__startswith=f"{worker.name}:"
    )
    released = list(held.values_list("pk", flat=True))
    held.update(status=AdviceRequest.Status.DISPATCHED, claimed_by="", claimed_at=None)
    logger.warning(
        "advice worker %s lost (silent since %s); %d claimed request(s) released",
        worker.name,
        worker.beat_at.isoformat(),
        len(released),
    )
    return _resend(
        AdviceRequest.objects.filter(status=AdviceRequest.Status.DISPATCHED).filter(
            Q(pk__in=released) | Q(dispatched_at__lt=now) | Q(dispatched_at__isnull=True)
        ),
        f"worker {worker.name} lost",
    )


def advice_requests_resend_in_flight() -> int | None:
    """Re-send every dispatched request: the broker restarted (or the relay did) and may have
    lost them. None if the broker refused (call again)."""
    return _resend(
        AdviceRequest.objects.filter(status=AdviceRequest.Status.DISPATCHED),
        "broker restarted or relay started",
    )


# --- the worker's side: a request's computation starts, fails or completes ----------------------


def advice_request_start(
    *, request_id: int, claimant: str = "inline", takeover: bool = False
) -> AdviceRequest | None:
    """Claim the request for ``claimant``; None when there is nothing for it to compute.

    The claim is one conditional UPDATE (PostgreSQL re-checks its condition on the row's newest
    version once a concurrent claim commits): of two deliveries of one request (the web's
    dispatch and the relay's, a redelivery beside a re-send) one claims it and the other returns
    None. A request claimed by another process is taken over only when ``takeover`` (the broker
    redelivered the message or Celery retries it: its previous holder is gone) or the claim
    outlived the task's hard time limit. A finished request is returned as it is; one started
    :data:`MAX_COMPUTE_ATTEMPTS` times is failed with a reason and None returned.
    """
    own, _ = advice_requests_start(request_id=request_id, claimant=claimant, takeover=takeover)
    return own


def advice_requests_start(
    *, request_id: int, claimant: str = "inline", takeover: bool = False, more: int = 0
) -> tuple[AdviceRequest | None, list[AdviceRequest]]:
    """Claim the request as :func:`advice_request_start` does and, in the same statement, up to
    ``more`` other requests already waiting (dispatched, unclaimed), oldest first: what one
    advice task computes in one go (predictions/services/advice.py).

    Only what waits now is taken (no wait to fill a batch), and rows another worker is claiming
    are skipped (``FOR UPDATE SKIP LOCKED``), never waited for. A request claimed here keeps its
    own message on the broker: when that message arrives the request is done (or computing)
    and the delivery is a no-op, as any duplicate is. If this process dies mid-batch, its
    claims are released as any claim of a lost worker is (the relay, claim expiry); a pool
    process of the same worker, or this one, takes over what a dead sibling or a failed batch
    of its own left claimed when the request's message comes (:func:`claim_abandoned`).
    """
    now = timezone.now()
    own, claimed, extras = _claim(
        request_id=request_id, claimant=claimant, takeover=takeover, now=now, more=more
    )
    if own is None:
        advice_requests_release(request_ids=[r.pk for r in extras], claimant=claimant)
        raise AdviceRequest.DoesNotExist(f"advice request {request_id} does not exist")
    if claimed:
        return own, extras
    # Not claimed here: the row as it was (the same statement read it). Say why.
    if own.status in (AdviceRequest.Status.DONE, AdviceRequest.Status.FAILED):
        return own, extras
    if (
        not takeover
        and own.status == AdviceRequest.Status.COMPUTING
        and claim_abandoned(own.claimed_by, claimant)
    ):
        again, claimed, _ = _claim(request_id=request_id, claimant=claimant, takeover=True, now=now)
        if again is not None and claimed:
            return again, extras
        if again is not None:
            own = again
    if own.compute_attempts < MAX_COMPUTE_ATTEMPTS or (
        own.status == AdviceRequest.Status.COMPUTING and not takeover and _claim_live(own)
    ):
        logger.info("advice request %s is being computed elsewhere; skipped", request_id)
        return None, extras
    advice_request_fail(
        request_id=request_id,
        reason=(
            f"Advice computation started {own.compute_attempts} times without "
            "finishing (worker stopped or unexpected error each time); given up. "
            "See the worker log."
        ),
    )
    return None, extras


def claim_abandoned(holder: str, claimant: str) -> bool:
    """Whether ``holder``'s claim can no longer be computing, seen from ``claimant``: it is
    ``claimant``'s own (a pool process computes one task at a time, so a claim of its own that
    a message meets is left over from a batch that failed), or another pool process's of the
    same worker whose process is gone (killed mid-batch; the worker replaced it). Claimants are
    ``<worker row name>:<pid>`` (predictions/worker_heartbeat.py); pool processes of one worker
    share its process namespace.

    Two deployment assumptions (README "Advice pipeline"): the advice worker runs a prefork (or
    solo) pool, one task at a time per process (``-P threads`` would make a live claim look
    left over), and a worker row name is unique per process namespace (two containers with
    one hostname would take over each other's live claims). Either mistake costs a second
    computation whose store then finds the advice stored, never a second advice."""
    if not holder:
        return False
    if holder == claimant:
        return True
    worker, _, pid = holder.rpartition(":")
    mine, _, _ = claimant.rpartition(":")
    if not worker or worker != mine or not pid.isdigit() or int(pid) <= 0:
        return False
    try:
        os.kill(int(pid), 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except OSError:  # exists, but not ours to signal
        return False
    return False


def advice_requests_release(*, request_ids: list[int], claimant: str) -> int:
    """Hand back requests ``claimant`` claimed but will not compute (its batch failed): they are
    dispatched again, for their own messages (or the relay) to compute."""
    if not request_ids:
        return 0
    return AdviceRequest.objects.filter(
        pk__in=request_ids, status=AdviceRequest.Status.COMPUTING, claimed_by=claimant
    ).update(status=AdviceRequest.Status.DISPATCHED, claimed_by="", claimed_at=None)


def _claim_live(request: AdviceRequest) -> bool:
    return request.claimed_at is not None and request.claimed_at >= timezone.now() - timedelta(
        seconds=CLAIM_SECONDS
    )


# UPDATE ... RETURNING (PostgreSQL; SQLite 3.35+ for the local profile): the claim and the row
# it claimed in one round trip. Django's update() returns a count only.
_CLAIM_SQL = (
    "UPDATE {table} SET {status} = %s, {claimed_by} = %s, {claimed_at} = %s, "
    "{compute_attempts} = {compute_attempts} + 1 "
    "WHERE {id} = %s AND {compute_attempts} < %s AND ({status} IN (%s, %s) OR "
    "({status} = %s AND (%s OR {claimed_at} IS NULL OR {claimed_at} < %s))) "
    "RETURNING {returning}"
)
# PostgreSQL: the same claim, and the request as it stands when it is not claimable (the caller
# says why without a second read). batch_role: 0 the request claimed here, 2 the request as it is.
_CLAIM_PG_SQL = (
    "WITH own AS (UPDATE {table} SET {status} = %s, {claimed_by} = %s, {claimed_at} = %s, "
    "{compute_attempts} = {compute_attempts} + 1 "
    "WHERE {id} = %s AND {compute_attempts} < %s AND ({status} IN (%s, %s) OR "
    "({status} = %s AND (%s OR {claimed_at} IS NULL OR {claimed_at} < %s))) "
    "RETURNING {returning}) "
    "SELECT 0 AS batch_role, {returning} FROM own "
    "UNION ALL SELECT 2, {returning} FROM {table} "
    "WHERE {id} = %s AND NOT EXISTS (SELECT 1 FROM own)"
)
# ... and the batch's other requests (``more``): dispatched, unclaimed, oldest first, rows another
# worker is claiming skipped, never waited for. A second data-modifying CTE of the same
# statement, never on the same row as ``own`` (excluded by id). batch_role 1: another request
# claimed here.
_CLAIM_BATCH_SQL = (
    "WITH own AS (UPDATE {table} SET {status} = %s, {claimed_by} = %s, {claimed_at} = %s, "
    "{compute_attempts} = {compute_attempts} + 1 "
    "WHERE {id} = %s AND {compute_attempts} < %s AND ({status} IN (%s, %s) OR "
    "({status} = %s AND (%s OR {claimed_at} IS NULL OR {claimed_at} < %s))) "
    "RETURNING {returning}), "
    "more AS (UPDATE {table} SET {status} = %s, {claimed_by} = %s, {claimed_at} = %s, "
    "{compute_attempts} = {compute_attempts} + 1 "
    "WHERE {id} IN (SELECT {id} FROM {table} WHERE {status} = %s AND {id} <> %s "
    "AND {compute_attempts} < %s ORDER BY {id} LIMIT %s FOR UPDATE SKIP LOCKED) "
    "RETURNING {returning}) "
    "SELECT 0 AS batch_role, {returning} FROM own "
    "UNION ALL SELECT 2, {returning} FROM {table} "
    "WHERE {id} = %s AND NOT EXISTS (SELECT 1 FROM own) "
    "UNION ALL SELECT 1, {returning} FROM more"
)


def _claim(
    *, request_id: int, claimant: str, takeover: bool, now: datetime, more: int = 0
) -> tuple[AdviceRequest | None, bool, list[AdviceRequest]]:
    """The claim itself: one statement that also returns the claimed row (no second read).

    Returns the request (None if it does not exist), whether it was claimed here, and the other
    requests claimed with it (up to ``more``; PostgreSQL only, where the statement also returns
    the request as it is when it was not claimable: one round trip in every case).

    Claimable: pending or dispatched; or computing when ``takeover`` or its claim is missing or
    older than :data:`CLAIM_SECONDS`; and started fewer than :data:`MAX_COMPUTE_ATTEMPTS` times.
    """
    ops = connection.ops
    column = {f.name: ops.quote_name(f.column) for f in AdviceRequest._meta.concrete_fields}
    postgres = connection.vendor == "postgresql"
    batched = postgres and more > 0
    sql = (_CLAIM_BATCH_SQL if batched else _CLAIM_PG_SQL if postgres else _CLAIM_SQL).format(
        table=ops.quote_name(AdviceRequest._meta.db_table),
        returning=", ".join(column.values()),
        **column,
    )
    claim = [AdviceRequest.Status.COMPUTING, claimant, ops.adapt_datetimefield_value(now)]
    params: list[Any] = [
        *claim,
        request_id,
        MAX_COMPUTE_ATTEMPTS,
        AdviceRequest.Status.PENDING,
        AdviceRequest.Status.DISPATCHED,
        AdviceRequest.Status.COMPUTING,
        takeover,
        ops.adapt_datetimefield_value(now - timedelta(seconds=CLAIM_SECONDS)),
    ]
    if not postgres:
        # Identifiers come from the model's own metadata; every value is a parameter.
        claimed = list(AdviceRequest.objects.raw(sql, params))
        if claimed:
            return claimed[0], True, []
        return AdviceRequest.objects.filter(pk=request_id).first(), False, []
    if batched:
        params += [*claim, AdviceRequest.Status.DISPATCHED, request_id, MAX_COMPUTE_ATTEMPTS, more]
    params.append(request_id)
    rows = list(AdviceRequest.objects.raw(sql, params))
    roles = [getattr(r, "batch_role", 0) for r in rows]
    own = next((r for r, role in zip(rows, roles, strict=True) if role in (0, 2)), None)
    own_claimed = 0 in roles
    return own, own_claimed, [r for r, role in zip(rows, roles, strict=True) if role == 1]


def advice_topic(visit_id: int) -> str:
    """The live-event topic of a visit's advice: ids only (medai_site.live_events)."""
    return f"advice-visit-{int(visit_id)}"


def _announce(visit_id: int) -> None:
    """After commit, wake the visit pages waiting for this advice (their event streams)."""
    transaction.on_commit(lambda: live_events.publish(advice_topic(visit_id)))


def advice_request_announce(*, visit_id: int) -> None:
    """A request of ``visit_id`` was completed in the caller's statement (the advice service
    stores advice and completes its request in one, predictions/services/advice.py)."""
    _announce(visit_id)


def advice_requests_announce(*, visit_ids: list[int]) -> None:
    """Requests of ``visit_ids`` were completed in the caller's statement (an advice batch):
    after commit, their pages are woken with one round trip to Redis."""
    topics = [advice_topic(visit_id) for visit_id in visit_ids]
    transaction.on_commit(lambda: live_events.publish_many(topics))


def advice_request_fail(*, request_id: int, reason: str) -> None:
    AdviceRequest.objects.filter(pk=request_id).exclude(status=AdviceRequest.Status.DONE).update(
        status=AdviceRequest.Status.FAILED, error=reason[:2000], finished_at=timezone.now()
    )
    for visit_id in AdviceRequest.objects.filter(pk=request_id).values_list("visit_id", flat=True):
        _announce(visit_id)


def advice_request_skip(*, request_id: int, claimant: str, reason: str) -> bool:
    """Mark the request done without advice (the visit records too little for any: see
    predictions/minimum_data.py), with ``reason``, if ``claimant`` still holds it."""
    done = bool(
        AdviceRequest.objects.filter(
            pk=request_id, status=AdviceRequest.Status.COMPUTING, claimed_by=claimant
        ).update(
            status=AdviceRequest.Status.DONE, advice=None, finished_at=timezone.now(), error=reason
        )
    )
    if done:
        for visit_id in AdviceRequest.objects.filter(pk=request_id).values_list(
            "visit_id", flat=True
        ):
            _announce(visit_id)
    return done


def advice_request_complete(*, request_id: int, advice: Advice, claimant: str) -> bool:
    """Mark the request done with ``advice`` if ``claimant`` still holds it; False otherwise
    (its claim was released or taken over: the caller rolls its work back, the holder stores)."""
    done = bool(
        AdviceRequest.objects.filter(
            pk=request_id, status=AdviceRequest.Status.COMPUTING, claimed_by=claimant
        ).update(
            status=AdviceRequest.Status.DONE, advice=advice, finished_at=timezone.now(), error=""
        )
    )
    if done:
        _announce(advice.visit_id)
    return done
