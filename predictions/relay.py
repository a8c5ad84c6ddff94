"""The outbox relay: hands pending advice requests to the broker, for as long as it takes."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from .models import AdviceRequest
from .outbox import advice_request_dispatch

BATCH = 500


def relay_pending() -> int:
    """Dispatch pending requests, and re-dispatch ones the broker may have lost; count sent."""
    lost_before = timezone.now() - timedelta(seconds=settings.MEDAI_ADVICE_REDISPATCH_SECONDS)
    waiting = (
        AdviceRequest.objects.filter(
            Q(status=AdviceRequest.Status.PENDING)
            | Q(status=AdviceRequest.Status.DISPATCHED, dispatched_at__lt=lost_before)
        )
        .order_by("created_at")
        .values_list("pk", flat=True)[:BATCH]
    )
    sent = 0
    for request_id in waiting:
        if not advice_request_dispatch(request_id=request_id):
            break  # broker down: stop hammering it, try again next round
        sent += 1
    return sent
