"""``manage.py rescore TASK``: re-score every stored visit with the task's active version."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from medai_site.errors import DomainError
from predictions.models import PredictionTask, ScoringChunk, ScoringRun
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
        parser.add_argument(
            "--timeout",
            type=float,
            default=3600,
            help="with --wait: give up after this many seconds (default 3600); a chunk that "
            "failed for good never arrives, so the wait must end",
        )

    def handle(
        self,
        *args: Any,
        task: str,
        chunk: int | None,
        wait: bool,
        timeout: float,
        **options: Any,
    ) -> None:
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
        stored, reported = 0, -1
        while not ScoringRun.objects.filter(pk=run.pk, status=ScoringRun.Status.DONE).exists():
            stored = ScoringChunk.objects.filter(run_id=run.pk).count()
            if stored != reported:
                self.stdout.write(f"{stored} of {run.chunks_total} chunks stored")
                reported = stored
            if time.monotonic() - started > timeout:
                raise CommandError(
                    f"Scoring run {run.pk} is not finished after {timeout:.0f} s: {stored} of "
                    f"{run.chunks_total} chunks stored (is a worker consuming the 'scoring' "
                    "queue? see its log for a chunk that failed)."
                )
            time.sleep(0.5)
        self.stdout.write(f"done in {time.monotonic() - started:.1f} s")
