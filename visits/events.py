"""Visits' domain events: the outbox that lets other apps follow visits without a cycle.

The visit services call :func:`visit_event_record` in the visit's own transaction: the event row
commits or rolls back with the change it reports. Subscribers (registered by other apps in their
``AppConfig.ready``; visits imports none of them) are called right after the row is written, in
the same transaction, each inside its own savepoint: a subscriber that fails is logged and rolled
back alone, never the visit, and its consumer must pick the event up later from the table (the
advice relay sweeps events without an advice request). So a subscriber's work is either part of
the visit's commit or done by its sweep; events are never lost.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import transaction

from medai_site.request_context import current_request_id

from .models import Visit, VisitEvent

logger = logging.getLogger(__name__)

Subscriber = Callable[[VisitEvent], None]
_subscribers: list[Subscriber] = []


def subscribe(callback: Subscriber) -> None:
    """Call ``callback(event)`` for every event recorded from now on (once per callback)."""
    if callback not in _subscribers:
        _subscribers.append(callback)


def unsubscribe(callback: Subscriber) -> None:
    if callback in _subscribers:
        _subscribers.remove(callback)


def visit_event_record(*, visit: Visit, kind: str) -> VisitEvent:
    """Record that ``visit`` was recorded/changed/closed, in the caller's transaction."""
    event = VisitEvent.objects.create(visit=visit, kind=kind, request_id=current_request_id.get())
    for callback in list(_subscribers):
        try:
            with transaction.atomic():
                callback(event)
        except Exception:
            # Ids only in the log: the event says nothing about the patient.
            logger.exception(
                "visit event %s: subscriber %s failed; its consumer's sweep takes the event",
                event.pk,
                getattr(callback, "__qualname__", callback),
            )
    return event
