"""Advice workers' heartbeats: the only writer of AdviceWorker.

Each advice worker process instance (a Celery worker consuming the ``advice`` queue) keeps one
row and stamps ``beat_at`` every ``MEDAI_ADVICE_WORKER_BEAT_SECONDS`` from a thread of its main
process (predictions/worker_heartbeat.py). A row silent for ``MEDAI_ADVICE_WORKER_LOST_SECONDS``
is a lost worker: the relay re-sends what it held or may have fetched
(outbox.advice_requests_relay) and then forgets the row. A worker that shuts down cleanly
removes its row (Celery hands its unacknowledged messages back to Redis on a warm shutdown).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from predictions.models import AdviceWorker


def advice_worker_beat(*, name: str, pid: int) -> None:
    now = timezone.now()
    updated = AdviceWorker.objects.filter(name=name).update(beat_at=now, pid=pid)
    if not updated:
        AdviceWorker.objects.get_or_create(
            name=name, defaults={"pid": pid, "started_at": now, "beat_at": now}
        )


def advice_worker_stop(*, name: str) -> None:
    AdviceWorker.objects.filter(name=name).delete()


def advice_worker_forget(*, worker: AdviceWorker) -> None:
    """Drop a lost worker's row once what it held was re-sent (only if it did not beat since)."""
    AdviceWorker.objects.filter(pk=worker.pk, beat_at=worker.beat_at).delete()


def lost_before(now: datetime | None = None) -> datetime:
    now = now or timezone.now()
    return now - timedelta(seconds=settings.MEDAI_ADVICE_WORKER_LOST_SECONDS)
