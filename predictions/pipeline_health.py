"""The advice pipeline's health: is advice flowing, and if not, since when and why.

Read from the outbox (requests not done, the oldest one's age), the advice workers' heartbeats
and the broker. Shown on /metrics (predictions/metrics.py; alert thresholds in README "Advice
pipeline"), on the operations page, and — as "Advice is delayed" — on a visit page whose advice
is late. Distinct from readiness (medai_site/health.py): visits are recorded whatever this says.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, Min
from django.utils import timezone

from .broker import queue_lengths
from .models import AdviceRequest, AdviceWorker
from .selectors import NOT_DONE

OK, DELAYED, STOPPED = "ok", "delayed", "stopped"
STATUS_VALUE = {OK: 0, DELAYED: 1, STOPPED: 2}  # medai_advice_pipeline_status


@dataclass(frozen=True)
class PipelineHealth:
    status: str  # ok | delayed | stopped
    reasons: list[str]
    backlog: dict[str, int]  # not done, by status (pending, dispatched, computing)
    oldest_age_seconds: float  # the oldest request not done; 0 when none
    late: int  # requests not done after MEDAI_ADVICE_LATE_SECONDS
    live_workers: int
    lost_workers: int  # silent, not yet handled by the relay
    broker_up: bool | None  # None: not a Redis broker (make run's filesystem broker)
    queue_length: int | None  # messages waiting in the advice queue
    late_after_seconds: int = field(default=10)


def live_advice_workers() -> int:
    from .services.advice_workers import lost_before

    return AdviceWorker.objects.filter(beat_at__gte=lost_before()).count()


def advice_pipeline_health() -> PipelineHealth:
    from .services.advice_workers import lost_before

    now = timezone.now()
    late_after = settings.MEDAI_ADVICE_LATE_SECONDS
    not_done = AdviceRequest.objects.filter(status__in=NOT_DONE)
    counts = dict(not_done.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    backlog = {status: counts.get(status, 0) for status in NOT_DONE}
    oldest = not_done.aggregate(oldest=Min("created_at"))["oldest"]
    oldest_age = (now - oldest).total_seconds() if oldest else 0.0
    late = not_done.filter(created_at__lt=now - timedelta(seconds=late_after)).count()
    silent_since = lost_before(now)
    live = AdviceWorker.objects.filter(beat_at__gte=silent_since).count()
    lost = AdviceWorker.objects.filter(beat_at__lt=silent_since).count()
    lengths = queue_lengths(("advice",))
    broker_up = None if not settings.CELERY_BROKER_URL.startswith("redis") else lengths is not None

    reasons = []
    if live == 0:
        reasons.append("no live advice worker")
    if broker_up is False:
        reasons.append("the broker (Redis) does not answer")
    if late:
        reasons.append(f"{late} request(s) waiting longer than {late_after} s")
    if lost:
        reasons.append(f"{lost} advice worker(s) lost and not yet handled by the relay")
    if live == 0 or broker_up is False:
        status = STOPPED
    elif late:
        status = DELAYED
    else:
        status = OK
    return PipelineHealth(
        status=status,
        reasons=reasons,
        backlog=backlog,
        oldest_age_seconds=oldest_age,
        late=late,
        live_workers=live,
        lost_workers=lost,
        broker_up=broker_up,
        queue_length=None if lengths is None else lengths["advice"],
        late_after_seconds=late_after,
    )
