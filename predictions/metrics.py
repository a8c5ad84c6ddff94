"""Prometheus metrics at ``/metrics`` (protected): web, Celery and model figures.

- Web: django-prometheus's middleware (requests by view and method, latency by view, responses
  by status) — the maintained exporter, not hand-rolled counters.
- Celery, the outbox and the models: read from the database (and the broker's Redis) at scrape
  time by :class:`OperationsCollector`. The worker, beat, relay and every gunicorn process write
  their results into the same tables, so one scrape of any web process sees the whole system;
  per-process counters in the workers would need a shared multiprocess directory across
  containers and would reset on every restart.

Access (``metrics_view``): HTTP basic auth whose password is ``METRICS_TOKEN`` (any user name;
Prometheus' ``basic_auth``), or a signed-in staff user's session verified with its second factor
(as the admin requires). Anything else: 401 with a
``WWW-Authenticate: Basic`` challenge, or 403 for a signed-in non-staff user.

The endpoint lives in predictions, the top layer, because most of its figures are predictions'
tables; the project base (medai_site) imports no app (docs/architecture.md).

With several gunicorn workers, set ``PROMETHEUS_MULTIPROC_DIR`` (an empty directory shared by the
workers) and the web figures are summed over them via prometheus-client's multiprocess mode.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import os
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.db.models import Count, DurationField, ExpressionWrapper, F, Min, Q, Sum
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from medai_site.two_factor import second_factor_missing

from .models import Advice, AdviceRequest, ModelAlert, PredictionTask, TrainingJob
from .selectors import NOT_DONE, SYSTEM, monitoring_snapshots_latest

logger = logging.getLogger(__name__)

# The queues the worker consumes (docker-compose.yml, Procfile): their Redis list lengths are the
# Celery queue depth.
CELERY_QUEUES = ("advice", "training", "celery")
MONITORING_STATUS_VALUE = {"ok": 0, "watch": 1, "act": 2}


class OperationsCollector(Collector):
    """Figures computed from the database and the broker at each scrape (cheap aggregate queries)."""

    def collect(self) -> Iterator[Metric]:
        yield from _outbox_metrics()
        yield from _job_metrics()
        yield from _advice_metrics()
        yield from _model_metrics()
        yield from _queue_metrics()
        yield from _pipeline_metrics()


def _outbox_metrics() -> Iterator[Metric]:
    counts = dict(
        AdviceRequest.objects.values_list("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    backlog = GaugeMetricFamily(
        "medai_outbox_backlog",
        "Advice requests written but not yet done, by status (pending = not yet handed to the broker).",
        labels=["status"],
    )
    for status in NOT_DONE:
        backlog.add_metric([status], counts.get(status, 0))
    yield backlog
    oldest = AdviceRequest.objects.filter(status__in=NOT_DONE).aggregate(oldest=Min("created_at"))[
        "oldest"
    ]
    yield GaugeMetricFamily(
        "medai_outbox_oldest_pending_age_seconds",
        "Age of the oldest advice request not yet done (pending or dispatched); 0 when none.",
        value=(timezone.now() - oldest).total_seconds() if oldest else 0.0,
    )


def _duration_summary(queryset: Any, start: str, end: str) -> tuple[int, float]:
    row = queryset.filter(**{f"{start}__isnull": False, f"{end}__isnull": False}).aggregate(
        n=Count("id"),
        total=Sum(ExpressionWrapper(F(end) - F(start), output_field=DurationField())),
    )
    return row["n"] or 0, row["total"].total_seconds() if row["total"] else 0.0


def _job_metrics() -> Iterator[Metric]:
    """Per Celery task: finished runs, their duration, and failures (from the rows they write)."""
    duration = SummaryMetricFamily(
        "medai_task_duration_seconds",
        "Finished work per Celery task: advice from request to stored advice, training from start to end.",
        labels=["task"],
    )
    failures = CounterMetricFamily(
        "medai_task_failures",
        "Work that ended failed, per Celery task (the row's error says why).",
        labels=["task"],
    )
    advice_task, training_task = (
        "predictions.tasks.advice_compute",
        "predictions.tasks.training_job_run",
    )
    n, total = _duration_summary(
        AdviceRequest.objects.filter(status=AdviceRequest.Status.DONE), "created_at", "finished_at"
    )
    duration.add_metric([advice_task], count_value=n, sum_value=total)
    n, total = _duration_summary(
        TrainingJob.objects.filter(status=TrainingJob.Status.SUCCEEDED), "started_at", "finished_at"
    )
    duration.add_metric([training_task], count_value=n, sum_value=total)
    failures.add_metric(
        [advice_task], AdviceRequest.objects.filter(status=AdviceRequest.Status.FAILED).count()
    )
    failures.add_metric(
        [training_task], TrainingJob.objects.filter(status=TrainingJob.Status.FAILED).count()
    )
    yield duration
    yield failures
    jobs = GaugeMetricFamily("medai_training_jobs", "Training jobs by status.", labels=["status"])
    counts = dict(
        TrainingJob.objects.values_list("status").annotate(n=Count("id")).values_list("status", "n")
    )
    for status in TrainingJob.Status.values:
        jobs.add_metric([status], counts.get(status, 0))
    yield jobs


def _advice_metrics() -> Iterator[Metric]:
    computed = CounterMetricFamily(
        "medai_advice_computed",
        "Advice stored, per model version used (abstention rate = abstained / computed).",
        labels=["task", "version"],
    )
    abstained = CounterMetricFamily(
        "medai_advice_abstained",
        "Advice where a model abstained (input unlike its training data), per model version.",
        labels=["task", "version"],
    )
    rows = (
        Advice.model_versions.through.objects.values(
            "modelversion__task__slug", "modelversion__number"
        )
        .annotate(n=Count("id"), abstained=Count("id", filter=Q(advice__abstained=True)))
        .order_by("modelversion__task__slug", "modelversion__number")
    )
    for row in rows:
        labels = [row["modelversion__task__slug"], str(row["modelversion__number"])]
        computed.add_metric(labels, row["n"])
        abstained.add_metric(labels, row["abstained"])
    yield computed
    yield abstained
    totals = Advice.objects.aggregate(n=Count("id"), ms=Sum("compute_ms"))
    yield SummaryMetricFamily(
        "medai_advice_engine_seconds",
        "Time the worker spent computing advice (all models, rules, similar cases), per advice.",
        count_value=totals["n"] or 0,
        sum_value=(totals["ms"] or 0.0) / 1000.0,
    )


def _model_metrics() -> Iterator[Metric]:
    enabled = GaugeMetricFamily(
        "medai_model_enabled",
        "1 when the task may advise (kill switch on), else 0.",
        labels=["task"],
    )
    for slug, is_enabled in PredictionTask.objects.values_list("slug", "enabled"):
        enabled.add_metric([slug], 1.0 if is_enabled else 0.0)
    yield enabled
    status = GaugeMetricFamily(
        "medai_model_monitoring_status",
        "Latest monitoring status per task: 0 ok, 1 watch, 2 act.",
        labels=["task", "version"],
    )
    psi = GaugeMetricFamily(
        "medai_model_psi_max",
        "Largest input-feature PSI in the latest monitoring snapshot.",
        labels=["task", "version"],
    )
    advice_share = GaugeMetricFamily(
        "medai_model_advice_label_share",
        "Share of the window's confirmed diagnoses that began as accepted advice (excluded from "
        "training), in the latest monitoring snapshot.",
        labels=["task", "version"],
    )
    # /metrics has checked its own token or staff session before the collector runs.
    for snapshot in monitoring_snapshots_latest(viewer=SYSTEM):
        labels = [snapshot.task.slug, str(snapshot.version.number)]
        status.add_metric(labels, MONITORING_STATUS_VALUE.get(snapshot.status, 0))
        if snapshot.input_drift.get("psi_max") is not None:
            psi.add_metric(labels, snapshot.input_drift["psi_max"])
        share = ((snapshot.performance or {}).get("labels") or {}).get("advice_share")
        if share is not None:
            advice_share.add_metric(labels, share)
    yield status
    yield psi
    yield advice_share
    alerts = GaugeMetricFamily(
        "medai_model_alerts_open",
        "Monitoring alerts not yet acknowledged, per task and severity.",
        labels=["task", "severity"],
    )
    for row in (
        ModelAlert.objects.filter(acknowledged_at__isnull=True)
        .values("task__slug", "severity")
        .annotate(n=Count("id"))
        .order_by("task__slug", "severity")
    ):
        alerts.add_metric([row["task__slug"], row["severity"]], row["n"])
    yield alerts


def _queue_metrics() -> Iterator[Metric]:
    url = settings.CELERY_BROKER_URL
    if not url.startswith(("redis://", "rediss://")):
        return  # the embedded filesystem broker of `make run` has no queue to measure
    import redis

    up = GaugeMetricFamily("medai_broker_up", "1 when the broker's Redis answered this scrape.")
    depth = GaugeMetricFamily(
        "medai_celery_queue_length",
        "Messages waiting in each Celery queue (Redis list length).",
        labels=["queue"],
    )
    try:
        client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        lengths = {queue: client.llen(queue) for queue in CELERY_QUEUES}
    except redis.RedisError as exc:
        logger.warning("metrics: broker unreachable (%s)", type(exc).__name__)
        up.add_metric([], 0.0)
        yield up
        return
    up.add_metric([], 1.0)
    for queue, length in lengths.items():
        depth.add_metric([queue], length)
    yield up
    yield depth


def _pipeline_metrics() -> Iterator[Metric]:
    """Is advice flowing (predictions/pipeline_health.py; thresholds: README "Advice pipeline")."""
    from .pipeline_health import STATUS_VALUE, advice_pipeline_health

    health = advice_pipeline_health()
    yield GaugeMetricFamily(
        "medai_advice_workers_live",
        "Advice workers whose heartbeat is fresh (0 = advice has stopped).",
        value=health.live_workers,
    )
    yield GaugeMetricFamily(
        "medai_advice_workers_lost",
        "Advice workers gone silent that the relay has not handled yet (it does within a second).",
        value=health.lost_workers,
    )
    yield GaugeMetricFamily(
        "medai_advice_late_requests",
        "Advice requests not done MEDAI_ADVICE_LATE_SECONDS after the visit was saved "
        "(the visit page says 'Advice is delayed').",
        value=health.late,
    )
    yield GaugeMetricFamily(
        "medai_advice_pipeline_status",
        "Advice pipeline: 0 ok, 1 delayed (requests late), 2 stopped (no live worker or no broker).",
        value=STATUS_VALUE[health.status],
    )


def _web_registry() -> CollectorRegistry:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


def render_metrics() -> bytes:
    operations = CollectorRegistry(auto_describe=False)
    operations.register(OperationsCollector())
    return generate_latest(_web_registry()) + generate_latest(operations)


def _token_ok(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if not token or not header.startswith("Basic "):
        return False
    try:
        decoded = base64.b64decode(header[6:], validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return False
    _, _, password = decoded.partition(":")
    return hmac.compare_digest(password.encode(), token.encode())


def _second_factor_ok(user: Any) -> bool:
    """A staff session may scrape once sign-in is complete, second factor included."""
    return not second_factor_missing(user)


@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    user = getattr(request, "user", None)
    if not _token_ok(request):
        if user is None or not user.is_authenticated:
            response = HttpResponse(
                "Authentication required.\n", status=401, content_type="text/plain"
            )
            response["WWW-Authenticate"] = 'Basic realm="metrics"'
            return response
        if not (user.is_active and user.is_staff and _second_factor_ok(user)):
            return HttpResponse("Staff only.\n", status=403, content_type="text/plain")
    return HttpResponse(render_metrics(), content_type=CONTENT_TYPE_LATEST)
