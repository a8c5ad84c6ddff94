"""Celery tasks of the import doors: a run id on the broker, never a file or PHI."""

from __future__ import annotations

from celery import shared_task

from medai_site.audit import current_request_id


@shared_task(name="predictions.interop.tasks.import_run_execute", acks_late=True)
def import_run_execute(run_id: int) -> None:
    from .services import import_run_execute as execute

    current_request_id.set(f"import-run-{run_id}")
    execute(run_id=run_id)
