"""The advice loop against real PostgreSQL, a real Redis and real Celery worker processes.

Each test commits its data (``transaction=True``) so the worker, a separate process connected to
the same test database, sees it; ``serialized_rollback`` restores the rows migrations create
(prediction tasks, the observation catalogue, roles) after the flush.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from django.db.models import Count

from medai_site.models import AuditEvent
from predictions.models import Advice, AdviceRequest, PredictionTask, TrainingJob
from predictions.services.outbox import advice_requests_relay
from predictions.services.registry import task_set_enabled
from predictions.services.training import (
    training_job_execute,
    training_job_start,
    training_job_watchdog,
)
from tests.factories import CareTeamFactory, DoctorFactory, PatientFactory
from visits.models import Visit
from visits.services import ObservationInput, visit_create

from .conftest import relay_once, wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

ALL_DONE = ("done", "failed")


@pytest.fixture
def doctor(db):
    doctor = DoctorFactory()
    CareTeamFactory(members=[doctor])
    return doctor


def save_visit(doctor, complaint="cough and fever") -> Visit:
    return visit_create(
        patient=PatientFactory(care_teams=[doctor.care_teams.get()]),
        attending=doctor,
        actor=doctor,
        chief_complaint=complaint,
        observations=[ObservationInput("8867-4", 96, "/min"), ObservationInput("2708-6", 91, "%")],
    )


def request_of(visit: Visit) -> AdviceRequest:
    return visit.advice_requests.get()


def status_of(request: AdviceRequest) -> str:
    request.refresh_from_db()
    return request.status


def assert_exactly_one_advice_per_request(requests: list[AdviceRequest]) -> None:
    for request in requests:
        request.refresh_from_db()
        assert request.status == AdviceRequest.Status.DONE, (request.pk, request.error)
        assert request.advice is not None
        assert request.advice.visit_id == request.visit_id
    visits = [r.visit_id for r in requests]
    per_visit = dict(
        Advice.objects.filter(visit_id__in=visits)
        .values_list("visit_id")
        .annotate(n=Count("id"))
        .values_list("visit_id", "n")
    )
    assert per_visit == dict.fromkeys(visits, 1)


def population(doctor, n_visits=400):
    from visits.demo import generate_population
    from visits.demo_import import population_import

    return population_import(
        population=generate_population(n_visits=n_visits, seed=7),
        teams=[doctor.care_teams.get()],
        attendings=[doctor],
    )


# --- (a) the happy path ----------------------------------------------------------------------------


def test_saving_a_visit_gets_advice_stored_by_the_worker(workers, doctor):
    workers()
    visit = save_visit(doctor)
    request = request_of(visit)
    wait_for(lambda: status_of(request) in ALL_DONE, "the advice to be stored")
    assert_exactly_one_advice_per_request([request])
    advice = request.advice
    assert advice.models_key == "rules-only"  # no model trained in this test
    assert advice.alert_count >= 1  # SpO2 91 %: hypoxaemia


def test_requests_queued_before_the_advice_worker_starts_are_batched_each_done_once(
    workers, broker, doctor
):
    """An advice worker (the Procfile's worker line) started on a full queue: its batches
    complete the requests queued behind their own, the main process acknowledges those
    requests' messages without running them (advice_messages.strategy), and every request ends
    done with one advice and one ADVICE audit record, nothing left queued or unacknowledged."""
    queued = 12  # more than one batch (MEDAI_ADVICE_BATCH=8)
    requests = [request_of(save_visit(doctor)) for _ in range(queued)]
    client = broker.client()
    assert client.llen("advice") == queued  # no worker yet: every message waits in Redis

    worker = workers(queues="advice", MEDAI_ADVICE_WORKER="1")
    wait_for(lambda: all(status_of(r) in ALL_DONE for r in requests), "every queued request")
    assert_exactly_one_advice_per_request(requests)
    for request in requests:
        (audit,) = AuditEvent.objects.filter(
            action=AuditEvent.Action.ADVICE, patient_id=request.visit.patient_id
        )
        assert audit.object_id == str(request.advice_id)

    # Every message acknowledged: the ones run by the pool after their task, the others (their
    # requests done by a batch) by the main process as they arrive.
    wait_for(
        lambda: (
            client.llen("advice") == 0
            and client.hlen("advice_unacked") == 0
            and client.zcard("advice_unacked_index") == 0
        ),
        "the queue and the unacknowledged set to empty",
    )
    # Batches ran: fewer tasks reached the pool than requests were queued (each task that ran
    # logs one "succeeded" line; a message acknowledged by the main process logs none).
    output = worker.output()
    ran = output.count(" succeeded in ")
    assert 0 < ran < queued, output[-3000:]
    assert worker.alive()


# --- (b) a worker killed mid-task --------------------------------------------------------------


def test_advice_survives_its_worker_being_killed_mid_task(workers, doctor, settings):
    slow = workers(MEDAI_ITEST_ADVICE_DELAY="60")
    requests = [request_of(save_visit(doctor)) for _ in range(3)]
    first = requests[0]

    def computing():
        first.refresh_from_db()
        return first.compute_attempts >= 1

    wait_for(computing, "the worker to start computing the first request")
    slow.kill()
    assert status_of(first) == AdviceRequest.Status.COMPUTING  # claimed by the dead worker
    assert not Advice.objects.exists()

    workers()  # a fresh worker takes the queued messages
    # The killed worker's message sits unacknowledged until Redis's visibility timeout; the relay
    # hands the request over again much sooner.
    settings.MEDAI_ADVICE_REDISPATCH_SECONDS = 2

    def all_done():
        advice_requests_relay()
        return all(status_of(r) in ALL_DONE for r in requests)

    wait_for(all_done, "every request to finish after the restart")
    assert_exactly_one_advice_per_request(requests)
    first.refresh_from_db()
    assert first.compute_attempts >= 2


def test_a_killed_pool_process_hands_its_advice_task_back_to_the_queue(workers, doctor):
    """task_reject_on_worker_lost + acks_late: the message is redelivered at once, no relay."""
    worker = workers(MEDAI_ITEST_ADVICE_DELAY="4")
    request = request_of(save_visit(doctor))

    def computing():
        request.refresh_from_db()
        return request.compute_attempts >= 1

    wait_for(computing, "the worker to start computing")
    children = worker.pool_children()
    assert children, worker.output()[-2000:]
    for pid in children:
        os.kill(pid, signal.SIGKILL)  # the pool process dies; the worker's main process lives

    wait_for(lambda: status_of(request) in ALL_DONE, "the redelivered task to finish")
    assert_exactly_one_advice_per_request([request])
    request.refresh_from_db()
    assert request.compute_attempts == 2
    assert "WorkerLostError" in worker.output()


def test_a_training_job_whose_worker_is_killed_is_requeued_and_not_left_running(
    workers, doctor, admin_user, settings
):
    population(doctor)
    # A 6 s heartbeat timeout: the worker beats every 2 s while it trains.
    slow = workers(MEDAI_ITEST_TRAINING_DELAY="120", MEDAI_TRAINING_HEARTBEAT_TIMEOUT="6")
    settings.MEDAI_TRAINING_HEARTBEAT_TIMEOUT = 6
    task = PredictionTask.objects.get(slug="differential")
    job = training_job_start(task=task, actor=admin_user, trigger=TrainingJob.Trigger.ADMIN)

    def running():
        job.refresh_from_db()
        return job.status == TrainingJob.Status.RUNNING and job.stage == "snapshot taken"

    wait_for(running, "the training job to start running")
    first_beat = job.heartbeat_at

    def beating():
        job.refresh_from_db()
        return (job.heartbeat_at - first_beat).total_seconds() > 3

    wait_for(beating, "heartbeats during a long stage")  # no progress calls, still alive
    assert training_job_watchdog() == {"requeued": 0, "failed": 0}  # a live job is left alone
    slow.kill()
    workers()

    wait_for(lambda: training_job_watchdog()["requeued"] == 1, "the watchdog to requeue the job")

    def finished():
        job.refresh_from_db()
        return job.status in (TrainingJob.Status.SUCCEEDED, TrainingJob.Status.FAILED)

    wait_for(finished, "the requeued job to finish", timeout=180)
    assert job.status == TrainingJob.Status.SUCCEEDED, job.error
    assert job.attempts == 2
    task.refresh_from_db()
    assert task.active_version == job.model_version


# --- (c) the broker away ----------------------------------------------------------------------------


def test_visits_saved_while_redis_is_down_all_get_advice_once_it_is_back(workers, broker, doctor):
    workers()
    broker.stop()
    requests = [request_of(save_visit(doctor)) for _ in range(5)]  # every save succeeds
    for request in requests:
        request.refresh_from_db()
        assert (request.status, request.dispatch_attempts) == ("pending", 1)
    assert relay_once(broker.url).returncode == 0  # the relay survives the broker being away
    assert all(status_of(r) == AdviceRequest.Status.PENDING for r in requests)

    broker.start()
    assert broker.client().llen("advice") == 0  # nothing reached the broker while it was down
    wait_for(
        lambda: relay_once(broker.url) and all(status_of(r) != "pending" for r in requests),
        "the relay to hand the pending requests over",
    )
    wait_for(
        lambda: all(status_of(r) in ALL_DONE for r in requests),
        "the worker (reconnected) to compute every request",
    )
    committed = AdviceRequest.objects.filter(visit__in=[r.visit_id for r in requests]).count()
    assert committed == Advice.objects.count() == 5
    assert_exactly_one_advice_per_request(requests)


# --- (d) a poisoned request --------------------------------------------------------------------------


def test_a_model_failing_its_integrity_check_fails_visibly_and_the_queue_keeps_flowing(
    workers, doctor, admin_user, settings, tmp_path
):
    population(doctor)
    settings.MEDAI_TRAINING_ALGORITHMS = ["logistic_regression"]
    settings.MEDAI_TRAINING_CV_FOLDS = 2
    settings.MODEL_ARTIFACT_DIR = tmp_path / "models"
    job = TrainingJob.objects.create(task=PredictionTask.objects.get(slug="differential"))
    version = training_job_execute(job_id=job.pk).model_version
    artifact = Path(version.artifact_path)
    artifact.write_bytes(artifact.read_bytes()[:-64])  # truncated on disk: sha256 differs

    workers()
    poisoned = [request_of(save_visit(doctor)) for _ in range(2)]
    wait_for(lambda: all(status_of(r) in ALL_DONE for r in poisoned), "the poisoned requests")
    for request in poisoned:
        request.refresh_from_db()
        assert request.status == AdviceRequest.Status.FAILED
        assert request.error.startswith(f"Model differential v{version.number} cannot be used")
        assert "sha256" in request.error
    assert not Advice.objects.filter(visit_id__in=[r.visit_id for r in poisoned]).exists()

    task_set_enabled(
        task=PredictionTask.objects.get(slug="differential"),
        enabled=False,
        reason="artifact failed its integrity check",
        actor=admin_user,
    )
    healthy = [request_of(save_visit(doctor)) for _ in range(3)]
    wait_for(lambda: all(status_of(r) in ALL_DONE for r in healthy), "requests after the switch")
    assert_exactly_one_advice_per_request(healthy)
    assert {r.advice.models_key for r in healthy} == {"rules-only"}
