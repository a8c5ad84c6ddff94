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
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from medai_site import live_events
from medai_site.audit import current_request_id
from predictions.models import Advice, AdviceRequest
from visits.models import Visit, VisitEvent

logger = logging.getLogger(__name__)
RELAY_BATCH = 500  # requests per relay round: one round stays well under a second of work
# A request whose computation never finishes (its worker killed each time, an unexpected error)
# is redelivered by the broker and re-dispatched by the relay; after this many starts it is
# marked failed with a reason instead of cycling forever (the retry cap on redelivery).
MAX_COMPUTE_ATTEMPTS = 5


@transaction.atomic
def advice_request_create(*, visit: Visit, actor: object | None) -> AdviceRequest:
    """An explicit request (the API's POST): no visit event behind it."""
    request = AdviceRequest.objects.create(visit=visit, request_id=current_request_id.get())
    transaction.on_commit(lambda: advice_request_dispatch(request_id=request.pk))
    return request


def advice_request_from_event(*, event: VisitEvent, dispatch: bool = True) -> AdviceRequest:
    """The one request for ``event``: created once, whoever (subscriber or relay) comes first.

    ``get_or_create`` on the unique ``event`` column: a concurrent creator's insert waits for the
    first one's commit, fails on the constraint, and reads the row the first one wrote.
    """
    request, created = AdviceRequest.objects.get_or_create(
        event=event,
        defaults={"visit_id": event.visit_id, "request_id": event.request_id},
    )
    if created and dispatch:
        transaction.on_commit(lambda: advice_request_dispatch(request_id=request.pk))
    return request


def on_visit_event(event: VisitEvent) -> None:
    """Visits' subscriber (registered in PredictionsConfig.ready): every event asks for advice."""
    advice_request_from_event(event=event)


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
    # send the same request again until it is done.
    AdviceRequest.objects.filter(
        pk=request_id, status__in=[AdviceRequest.Status.PENDING, AdviceRequest.Status.DISPATCHED]
    ).update(
        status=AdviceRequest.Status.DISPATCHED,
        dispatched_at=timezone.now(),
        dispatch_attempts=F("dispatch_attempts") + 1,
    )
    return True


def advice_requests_relay() -> int:
    """One relay round: requests for unconsumed visit events, then dispatch; count sent.

    Dispatches pending requests, and re-dispatches ones the broker may have lost.
    """
    unconsumed = VisitEvent.objects.filter(advice_request__isnull=True).order_by("pk")
    for event in unconsumed[:RELAY_BATCH]:
        advice_request_from_event(event=event, dispatch=False)  # dispatched just below
    lost_before = timezone.now() - timedelta(seconds=settings.MEDAI_ADVICE_REDISPATCH_SECONDS)
    waiting = (
        AdviceRequest.objects.filter(
            Q(status=AdviceRequest.Status.PENDING)
            | Q(status=AdviceRequest.Status.DISPATCHED, dispatched_at__lt=lost_before)
        )
        .order_by("created_at")
        .values_list("pk", flat=True)[:RELAY_BATCH]
    )
    sent = 0
    for request_id in waiting:
        if not advice_request_dispatch(request_id=request_id):
            break  # broker down: stop hammering it, try again next round
        sent += 1
    return sent


# --- the worker's side: a request's computation starts, fails or completes ----------------------


def advice_request_start(*, request_id: int) -> AdviceRequest | None:
    """Claim one computation of the request; None when there is nothing (more) to compute.

    A finished request (a redelivered message) is returned as it is, with its status; one that
    was started :data:`MAX_COMPUTE_ATTEMPTS` times is failed with a reason and None returned.
    """
    with transaction.atomic():
        request = AdviceRequest.objects.select_for_update().get(pk=request_id)
        if request.status in (AdviceRequest.Status.DONE, AdviceRequest.Status.FAILED):
            return request
        if request.compute_attempts >= MAX_COMPUTE_ATTEMPTS:
            advice_request_fail(
                request_id=request_id,
                reason=(
                    f"Advice computation started {request.compute_attempts} times without "
                    "finishing (worker stopped or unexpected error each time); given up. "
                    "See the worker log."
                ),
            )
            return None
        request.compute_attempts += 1
        AdviceRequest.objects.filter(pk=request_id).update(
            compute_attempts=request.compute_attempts
        )
    return request


def advice_topic(visit_id: int) -> str:
    """The live-event topic of a visit's advice: ids only (medai_site.live_events)."""
    return f"advice-visit-{int(visit_id)}"


def _announce(visit_id: int) -> None:
    """After commit, wake the visit pages waiting for this advice (their event streams)."""
    transaction.on_commit(lambda: live_events.publish(advice_topic(visit_id)))


def advice_request_fail(*, request_id: int, reason: str) -> None:
    AdviceRequest.objects.filter(pk=request_id).update(
        status=AdviceRequest.Status.FAILED, error=reason[:2000], finished_at=timezone.now()
    )
    for visit_id in AdviceRequest.objects.filter(pk=request_id).values_list("visit_id", flat=True):
        _announce(visit_id)


def advice_request_complete(*, request_id: int, advice: Advice) -> None:
    AdviceRequest.objects.filter(pk=request_id).update(
        status=AdviceRequest.Status.DONE, advice=advice, finished_at=timezone.now(), error=""
    )
    _announce(advice.visit_id)
