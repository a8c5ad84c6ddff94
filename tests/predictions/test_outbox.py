"""The outbox and the broker: ids only on the wire, the relay retries, the task settings hold."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.utils import timezone
from kombu.exceptions import OperationalError

from medai_site.celery import app
from predictions import tasks
from predictions.models import AdviceRequest
from predictions.services.outbox import advice_requests_relay
from tests.factories import PatientFactory
from visits.services import ObservationInput, visit_create

pytestmark = pytest.mark.django_db

COMPLAINT = "itchy rash after eating Quuxley's shellfish"


@pytest.fixture
def patient(team_a):
    return PatientFactory(
        care_teams=[team_a], mrn="OUT-0042", given_name="Zebedee", family_name="Quuxley"
    )


def save_visit(patient, doctor):
    return visit_create(
        patient=patient,
        attending=doctor,
        actor=doctor,
        chief_complaint=COMPLAINT,
        observations=[ObservationInput("8867-4", 88, "/min")],
    )


@pytest.fixture
def broker():
    """The test broker (Redis db 15), read raw; messages a test leaves are removed after it."""
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    before = set(client.lrange("advice", 0, -1))
    yield client
    for raw in set(client.lrange("advice", 0, -1)) - before:
        client.lrem("advice", 0, raw)


def advice_messages(client, request_id: int) -> list[tuple[bytes, dict, list]]:
    found = []
    for raw in client.lrange("advice", 0, -1):
        message = json.loads(raw)
        body = json.loads(base64.b64decode(message["body"]))
        if message["headers"]["task"] == "predictions.tasks.advice_compute" and body[0] == [
            request_id
        ]:
            found.append((raw, message, body))
    return found


def test_the_advice_message_on_the_broker_carries_the_request_id_and_no_phi(
    patient, doctor_a, broker, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        visit = save_visit(patient, doctor_a)
    request = visit.advice_requests.get()
    assert request.status == AdviceRequest.Status.DISPATCHED
    assert request.dispatch_attempts == 1

    ((raw, message, body),) = advice_messages(broker, request.pk)
    args, kwargs, _embed = body
    assert (args, kwargs) == ([request.pk], {})
    assert message["content-type"] == "application/json"
    assert message["headers"]["argsrepr"] == f"[{request.pk}]"
    for phi in ("Quuxley", "Zebedee", "OUT-0042", "shellfish", "rash"):
        assert phi.encode() not in raw
        assert phi not in json.dumps(body)


def test_a_broker_that_is_down_leaves_the_request_pending_and_the_relay_sends_it_later(
    patient, doctor_a, broker, monkeypatch, django_capture_on_commit_callbacks
):
    def refuse(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    with monkeypatch.context() as down:
        down.setattr(tasks.advice_compute, "apply_async", refuse)
        with django_capture_on_commit_callbacks(execute=True):
            visit = save_visit(patient, doctor_a)  # the save itself succeeds
        request = visit.advice_requests.get()
        assert (request.status, request.dispatch_attempts) == ("pending", 1)
        assert (
            advice_requests_relay() == 0
        )  # still down: one try, then the relay waits for next round
        request.refresh_from_db()
        assert (request.status, request.dispatch_attempts) == ("pending", 2)

    assert advice_requests_relay() == 1
    request.refresh_from_db()
    assert (request.status, request.dispatch_attempts) == ("dispatched", 3)
    assert len(advice_messages(broker, request.pk)) == 1


def test_the_relay_redispatches_a_request_the_broker_may_have_lost(
    patient, doctor_a, broker, settings
):
    settings.MEDAI_ADVICE_REDISPATCH_SECONDS = 60
    visit = save_visit(patient, doctor_a)
    request = visit.advice_requests.get()
    recent = save_visit(patient, doctor_a).advice_requests.get()
    done = save_visit(patient, doctor_a).advice_requests.get()
    long_ago = timezone.now() - timedelta(minutes=5)
    AdviceRequest.objects.filter(pk=request.pk).update(status="dispatched", dispatched_at=long_ago)
    AdviceRequest.objects.filter(pk=recent.pk).update(
        status="dispatched", dispatched_at=timezone.now()
    )
    AdviceRequest.objects.filter(pk=done.pk).update(status="done", dispatched_at=long_ago)

    assert advice_requests_relay() == 1
    assert len(advice_messages(broker, request.pk)) == 1
    assert advice_messages(broker, recent.pk) == []
    assert advice_messages(broker, done.pk) == []
    # The re-dispatch restarts the clock: the next rounds do not send the same request again.
    assert advice_requests_relay() == 0
    assert len(advice_messages(broker, request.pk)) == 1


def test_tasks_are_registered_with_bounded_retries_and_limits_below_the_visibility_timeout():
    app.loader.import_default_modules()  # every app's tasks, as a worker registers them
    conf = app.conf  # the CELERY_* settings as the app resolved them (a typo would not arrive)
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.worker_disable_prefetch is True  # a message waits in Redis, not in a worker
    assert conf.task_serializer == "json"
    assert conf.accept_content == ["json"]
    visibility = conf.broker_transport_options["visibility_timeout"]
    assert conf.task_time_limit < visibility
    advice = app.tasks["predictions.tasks.advice_compute"]
    assert advice.time_limit < visibility
    assert advice.soft_time_limit < advice.time_limit
    assert advice.max_retries == 5
    assert advice.retry_backoff
    assert advice.retry_jitter
    assert advice.acks_late is True
    assert advice.reject_on_worker_lost is True
    training = app.tasks["predictions.tasks.training_job_run"]
    assert (training.time_limit or app.conf.task_time_limit) < visibility
    assert app.conf.task_soft_time_limit < app.conf.task_time_limit
    assert app.conf.result_backend is None
    # Publishing fails fast while Redis is down (the outbox keeps the request).
    assert app.conf.broker_transport_options["max_retries"] == 0
    assert app.amqp.router.route({}, advice.name)["queue"].name == "advice"
    assert app.amqp.router.route({}, training.name)["queue"].name == "training"
    for entry in app.conf.beat_schedule.values():
        assert entry["task"] in app.tasks, entry["task"]
