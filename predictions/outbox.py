"""The advice outbox: an AdviceRequest row written in the visit's own transaction.

The broker is told after commit (fast path); if the broker is down the row simply stays pending
and the relay process (``manage.py relay_outbox``, Procfile "relay") hands it over later. Only the
request id travels on the broker.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from medai_site.audit import current_request_id
from visits.models import Visit

from .models import AdviceRequest

logger = logging.getLogger(__name__)


def advice_request_create(*, visit: Visit, actor: object | None) -> AdviceRequest:
    request = AdviceRequest.objects.create(visit=visit, request_id=current_request_id.get())
    transaction.on_commit(lambda: advice_request_dispatch(request_id=request.pk))
    return request


def advice_request_dispatch(*, request_id: int) -> bool:
    """Hand one pending request to the broker; False (and the row stays pending) if it is down."""
    from .tasks import advice_compute

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
