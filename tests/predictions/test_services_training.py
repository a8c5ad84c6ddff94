"""The training service's nightly start: one job per task, tasks already training skipped."""

from __future__ import annotations

import pytest

from predictions.models import PredictionTask, TrainingJob
from predictions.services.training import training_job_start, training_nightly_start

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def enqueued(monkeypatch):
    sent: list[int] = []
    monkeypatch.setattr("predictions.services.training._enqueue", sent.append)
    return sent


def test_nightly_start_queues_one_scheduled_job_per_task(
    django_capture_on_commit_callbacks, enqueued
):
    with django_capture_on_commit_callbacks(execute=True):
        jobs = training_nightly_start()
    assert sorted(j.task.slug for j in jobs) == sorted(
        PredictionTask.objects.values_list("slug", flat=True)
    )
    assert {(j.status, j.trigger, j.started_by) for j in jobs} == {("queued", "schedule", None)}
    assert sorted(enqueued) == sorted(j.pk for j in jobs)


def test_nightly_start_skips_a_task_whose_job_is_still_queued(admin_user):
    busy = PredictionTask.objects.get(slug="differential")
    running = training_job_start(task=busy, actor=admin_user, trigger=TrainingJob.Trigger.ADMIN)
    jobs = training_nightly_start()
    assert busy.slug not in {j.task.slug for j in jobs}
    assert busy.training_jobs.get() == running  # no second job for it
    assert jobs  # the other tasks were started


def test_seed_demo_starts_training_through_the_same_service_with_its_trigger():
    jobs = training_nightly_start(trigger=TrainingJob.Trigger.ADMIN)
    assert {j.trigger for j in jobs} == {"admin"}
    assert TrainingJob.objects.count() == PredictionTask.objects.count()


def test_seed_demo_first_training_jobs_are_started_by_the_system(settings, tmp_path):
    """`seed_demo --train` queues jobs marked "System", not "Admin" (issue 17)."""
    import os

    from django.core.management import call_command

    settings.MODEL_ARTIFACT_DIR = tmp_path
    call_command("seed_demo", visits=30, seed=3, train=True, stdout=open(os.devnull, "w"))  # noqa: SIM115
    jobs = list(TrainingJob.objects.all())
    assert jobs
    assert {j.trigger for j in jobs} == {"system"}
    assert {j.get_trigger_display() for j in jobs} == {"System"}
    assert all(j.started_by_id is None for j in jobs)
