"""Batch re-scoring through a real Redis and two real Celery worker processes on the ``scoring``
queue: the run's group of chunks is spread over both workers and gives the serial path's scores.

Uses the predictions tests' trained population (restored rows, committed here because the test is
transactional, so the workers, separate processes, see them).
"""

from __future__ import annotations

import numpy as np
import pytest

from predictions.ml.artifacts import load_model
from predictions.models import PredictionTask, ScoringRun
from predictions.selectors import SYSTEM, scoring_run_scores
from predictions.services.batch_scoring import scoring_run_start
from predictions.visit_records import visits_frame
from tests.predictions.conftest import fast_training  # noqa: F401 (autouse here too)
from visits.models import Visit

from .conftest import wait_for, wait_ready

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def test_two_workers_share_a_runs_chunks_and_score_as_the_serial_path(trained, workers):
    pool = [workers(queues="scoring", wait=False) for _ in range(2)]
    for worker in pool:
        wait_ready(worker)
    run = scoring_run_start(
        task=PredictionTask.objects.get(slug="differential"), actor=None, chunk_visits=50
    )
    assert run.chunks_total >= 8

    def finished() -> bool:
        run.refresh_from_db()
        return run.status == ScoringRun.Status.DONE

    wait_for(finished, "the scoring run's chunks")
    scores = scoring_run_scores(viewer=SYSTEM, run_id=run.pk)
    version = trained.differential
    frame = visits_frame(Visit.objects.all())
    expected = load_model(version.artifact_path, version.artifact_sha256).predict_frame(frame)
    assert scores.index.tolist() == frame.index.tolist()
    assert np.array_equal(scores.to_numpy(), expected)
    # Both workers took chunks (each logs the tasks it received).
    for worker in pool:
        assert "scoring_chunk_compute" in worker.output(), worker.output()[-2000:]
