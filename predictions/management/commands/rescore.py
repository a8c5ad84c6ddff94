"""``manage.py rescore TASK``: re-score every stored visit with the task's active version."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from medai_site.errors import DomainError
from predictions.models import PredictionTask, ScoringRun
from predictions.services.batch_scoring import scoring_run_start


class Command(BaseCommand):
    help = (
        "Re-score every stored visit with a task's active model version, as a Celery group of "
        "chunks on the 'scoring' queue (start more workers with --queues scoring to go faster). "
        "Prints the run id; --wait waits until every chunk is stored."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("task", help="the prediction task's slug, e.g. differential")
        parser.add_argument("--chunk", type=int, default=None, help="visits per chunk (task)")
        parser.add_argument("--wait", action="store_true", help="wait for the run to finish")

    def handle(self, *args: Any, task: str, chunk: int | None, wait: bool, **options: Any) -> None:
        found = PredictionTask.objects.filter(slug=task).first()
        if found is None:
            raise CommandError(f"No prediction task '{task}'.")
        started = time.monotonic()
        try:
            run = scoring_run_start(task=found, actor=None, chunk_visits=chunk)
        except DomainError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"scoring run {run.pk}: {run.visits_total} visits in {run.chunks_total} chunks"
        )
        if not wait:
            return
        while not ScoringRun.objects.filter(pk=run.pk, status=ScoringRun.Status.DONE).exists():
            time.sleep(0.5)
        self.stdout.write(f"done in {time.monotonic() - started:.1f} s")
