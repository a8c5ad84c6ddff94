"""Fault injection against real processes: advice workers and the relay as production runs them
(``MEDAI_ADVICE_WORKER=1``, ``manage.py relay_outbox``), a private Redis with AOF, the test
PostgreSQL. Each fault is a ``kill -9``; each test asserts that every saved visit gets exactly one
advice and one ADVICE audit record, within 15 s of the recovery.

Recovery times are printed (``-s`` shows them): ``make faults`` runs this module alone.
"""

from __future__ import annotations

import base64
import json
import time

import pytest
from django.db import connection

from medai_site.models import AuditEvent
from predictions.models import Advice, AdviceRequest, AdviceWorker
from predictions.tasks import advice_compute
from tests.factories import CareTeamFactory, DoctorFactory, PatientFactory
from visits.models import Visit
from visits.services import ObservationInput, visit_create

from .conftest import wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

RECOVERY_BOUND = 15.0  # seconds from recovery to every advice stored (issue 18)
ADVICE_WORKER = {"queues": "advice", "MEDAI_ADVICE_WORKER": "1"}  # production's advice worker


@pytest.fixture
def doctor(db):
    doctor = DoctorFactory()
    CareTeamFactory(members=[doctor])
    return doctor


def save_visit(doctor) -> AdviceRequest:
    visit: Visit = visit_create(
        patient=PatientFactory(care_teams=[doctor.care_teams.get()]),
        attending=doctor,
        actor=doctor,
        chief_complaint="chest pain",
        observations=[ObservationInput("8867-4", 131, "/min"), ObservationInput("2708-6", 86, "%")],
    )
    return visit.advice_requests.get()


def status_of(request: AdviceRequest) -> str:
    request.refresh_from_db()
    return request.status


def all_done(requests: list[AdviceRequest]) -> bool:
    return not AdviceRequest.objects.filter(pk__in=[r.pk for r in requests]).exclude(
        status=AdviceRequest.Status.DONE
    )


def assert_one_advice_and_one_audit_each(requests: list[AdviceRequest]) -> None:
    for request in requests:
        request.refresh_from_db()
        assert request.status == AdviceRequest.Status.DONE, (request.pk, request.error)
        visit_id = request.visit_id
        assert Advice.objects.filter(visit_id=visit_id).count() == 1, visit_id
        patient_id = request.visit.patient_id
        audits = AuditEvent.objects.filter(action=AuditEvent.Action.ADVICE, patient_id=patient_id)
        assert audits.count() == 1, visit_id


def queued_ids(broker) -> list[int]:
    return [_request_id(raw) for raw in broker.client().lrange("advice", 0, -1)]


def _request_id(raw: bytes) -> int:
    body = json.loads(base64.b64decode(json.loads(raw)["body"]))
    return body[0][0]


def take_from_queue(broker, request: AdviceRequest) -> None:
    """What a worker's fetch does; with the worker dead before it recorded the message as
    unacknowledged, the message is in neither the queue nor Redis's unacknowledged set."""
    client = broker.client()
    for raw in client.lrange("advice", 0, -1):
        if _request_id(raw) == request.pk:
            assert client.lrem("advice", 1, raw) == 1
            return
    pytest.fail(f"request {request.pk} not in the queue")


def report(what: str, seconds: float) -> None:
    print(f"\n[recovery] {what}: {seconds:.1f} s")  # the figure make faults shows


# --- advice workers killed at each point of a request's life --------------------------------------


def test_a_worker_killed_with_requests_queued_fetched_and_computing_loses_none(
    workers, relay, broker, doctor
):
    relay()
    dying = workers(**ADVICE_WORKER, MEDAI_ITEST_COMPUTE_DELAY="120")
    wait_for(AdviceWorker.objects.exists, "the advice worker's first heartbeat")

    computing = save_visit(doctor)
    wait_for(lambda: status_of(computing) == "computing", "the worker to claim the first request")
    queued = save_visit(doctor)  # waits in Redis: the busy worker fetches nothing more
    fetched = save_visit(doctor)
    wait_for(
        lambda: sorted(queued_ids(broker)) == sorted([queued.pk, fetched.pk]),
        "both messages to wait in the queue",
    )
    take_from_queue(broker, fetched)  # in flight to the worker when it dies

    dying.kill()
    killed = time.monotonic()
    workers(**ADVICE_WORKER)  # its supervisor restarts it
    recovered = time.monotonic()
    requests = [computing, queued, fetched]
    wait_for(lambda: all_done(requests), "every request after the restart", timeout=60)
    done = time.monotonic()
    report("worker killed (queued + fetched + computing), kill -> all advice", done - killed)
    report("worker killed (queued + fetched + computing), restart -> all advice", done - recovered)
    assert done - recovered <= RECOVERY_BOUND
    assert_one_advice_and_one_audit_each(requests)
    computing.refresh_from_db()
    assert computing.compute_attempts == 2  # claimed by the dead worker, released, recomputed


def test_a_worker_killed_while_storing_leaves_no_half_advice_and_it_is_stored_once(
    workers, relay, broker, doctor
):
    relay()
    dying = workers(**ADVICE_WORKER, MEDAI_ITEST_STORE_DELAY="120")
    storing = save_visit(doctor)

    def written_not_committed() -> bool:
        """The worker's connection sits in its storing transaction (advice row not committed)."""
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND state = 'idle in transaction' AND pid <> pg_backend_pid()"
            )
            return cursor.fetchone()[0] >= 1

    wait_for(lambda: status_of(storing) == "computing", "the worker to claim the request")
    wait_for(written_not_committed, "the worker to be inside its storing transaction")
    dying.kill()
    killed = time.monotonic()
    assert not Advice.objects.exists()  # rolled back with the dead connection
    workers(**ADVICE_WORKER)
    recovered = time.monotonic()
    wait_for(lambda: all_done([storing]), "the request after the restart", timeout=60)
    done = time.monotonic()
    report("worker killed while storing, kill -> advice", done - killed)
    assert done - recovered <= RECOVERY_BOUND
    assert_one_advice_and_one_audit_each([storing])


def test_two_workers_given_each_request_three_times_compute_and_audit_it_once(
    workers, relay, broker, doctor
):
    """The hand-over is a claim: duplicates (web and relay both sending, a re-send beside a
    redelivery) reach both workers at once and only one computes."""
    relay()
    first = workers(**ADVICE_WORKER, MEDAI_ITEST_COMPUTE_DELAY="1")
    second = workers(**ADVICE_WORKER, MEDAI_ITEST_COMPUTE_DELAY="1")
    requests = []
    for _ in range(4):
        request = save_visit(doctor)  # sent once by the web after the commit
        for _copy in range(2):
            advice_compute.apply_async(args=[request.pk])  # and twice more
        requests.append(request)
    wait_for(lambda: all_done(requests), "every request")
    assert_one_advice_and_one_audit_each(requests)
    skipped = (first.output() + second.output()).count("being computed elsewhere; skipped")
    assert skipped >= 1  # the two workers did meet on one request
