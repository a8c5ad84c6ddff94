"""Celery tasks: thin wrappers that take ids (never PHI), re-fetch, and call one service."""

from __future__ import annotations

import logging

from celery import Task, shared_task
from django.conf import settings
from django.db import OperationalError

from medai_site.audit import current_interface, current_request_id
from medai_site.models import AuditEvent

logger = logging.getLogger(__name__)


@shared_task(
    bind=True,
    name="predictions.tasks.advice_compute",
    autoretry_for=(OperationalError,),
    retry_backoff=2,
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=5,
    soft_time_limit=60,
    time_limit=90,
    # The message of a request a batch already completed is acknowledged by the worker's main
    # process, without the pool (advice_messages.py); every other goes Celery's default way.
    Strategy="predictions.advice_messages:strategy",
)
def advice_compute(self: Task, request_id: int) -> None:
    from .services.advice import advice_compute as compute
    from .worker_heartbeat import claimant

    current_interface.set(AuditEvent.Interface.WORKER)
    # Until the claim has read the request's row: the service then continues the id of the
    # page/API request that saved the visit, so their logs join up.
    current_request_id.set(f"advice-request-{request_id}")
    # The broker hands a message back (redelivered) only when its previous holder is gone, and
    # Celery retries only after this task's own attempt ended: either may take over its claim.
    delivery = self.request.delivery_info or {}
    takeover = bool(delivery.get("redelivered")) or bool(self.request.retries)
    compute(
        request_id=request_id,
        claimant=claimant(self.request.hostname or "inline"),
        takeover=takeover,
        # With requests already waiting, this task computes up to a batch of them with its own
        # in one go (their own messages then find them done): services/advice.py.
        batch=settings.MEDAI_ADVICE_BATCH,
    )


@shared_task(name="predictions.tasks.training_job_run")
def training_job_run(job_id: int) -> None:
    from .services.training import training_job_execute

    current_interface.set(AuditEvent.Interface.WORKER)
    current_request_id.set(f"training-job-{job_id}")
    training_job_execute(job_id=job_id)


@shared_task(name="predictions.tasks.training_job_watchdog")
def training_job_watchdog() -> dict[str, int]:
    from .services.training import training_job_watchdog as watchdog

    return watchdog()


@shared_task(name="predictions.tasks.training_nightly_start")
def training_nightly_start() -> int:
    from .services.training import training_nightly_start as start

    current_interface.set(AuditEvent.Interface.WORKER)
    current_request_id.set("training-nightly")
    return len(start())


@shared_task(name="predictions.tasks.training_monthly_pretrain_start")
def training_monthly_pretrain_start() -> int:
    """Monthly (beat): forecast tasks are pretrained and selected afresh on every timeline."""
    from .services.training import training_monthly_pretrain_start as start

    current_interface.set(AuditEvent.Interface.WORKER)
    current_request_id.set("training-monthly")
    return len(start())


@shared_task(name="predictions.tasks.monitoring_run")
def monitoring_run(task_id: int | None = None) -> list[str]:
    """Nightly (beat) and on demand (admin): one monitoring snapshot per active model version."""
    from .services.monitoring import monitoring_run as run

    current_interface.set(AuditEvent.Interface.WORKER)
    current_request_id.set(f"monitoring-{task_id or 'all'}")
    return [f"{s.task.slug}:{s.status}" for s in run(task_id=task_id)]


@shared_task(
    name="predictions.tasks.scoring_chunk_compute",
    autoretry_for=(OperationalError,),
    retry_backoff=2,
    max_retries=5,
)
def scoring_chunk_compute(run_id: int, first_visit_id: int, last_visit_id: int) -> None:
    """One chunk of a batch re-scoring run (a member of the run's Celery group)."""
    from .services.batch_scoring import scoring_chunk_compute as compute

    current_interface.set(AuditEvent.Interface.WORKER)
    current_request_id.set(f"scoring-run-{run_id}")
    compute(run_id=run_id, first_visit_id=first_visit_id, last_visit_id=last_visit_id)
