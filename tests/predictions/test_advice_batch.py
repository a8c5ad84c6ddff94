"""Advice batches: one advice task computes the requests already waiting with its own, in as many
statements as one advice takes, and every guarantee of one request alone holds for each of them
(one advice, one audit record, nothing lost when the batch fails or its process dies)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from medai_site.models import AuditEvent
from predictions import advice_messages
from predictions.models import Advice, AdviceRequest, AdviceWorker
from predictions.services import advice as advice_service
from predictions.services import outbox
from predictions.services.advice_workers import advice_worker_beat
from tests.factories import PatientFactory
from tests.predictions.test_advice_queries import ADVICE_STATEMENTS, VITALS
from visits.services import ObservationInput, visit_create

pytestmark = pytest.mark.django_db
DONE = AdviceRequest.Status.DONE
ME = f"advice@h#a1b2c3d4:{os.getpid()}"  # this pool process of worker advice@h#a1b2c3d4


@pytest.fixture(autouse=True)
def _nothing_finished_before():
    advice_service.finished_forget()
    yield
    advice_service.finished_forget()


def waiting(team, doctor, *, complaint: str = "cough", dispatched: bool = True) -> AdviceRequest:
    """A saved visit's request, handed to the broker (its message queued) unless told not."""
    visit = visit_create(
        patient=PatientFactory(care_teams=[team]),
        attending=doctor,
        actor=doctor,
        chief_complaint=complaint,
        observations=VITALS,
    )
    request = visit.advice_requests.get()
    if dispatched:
        AdviceRequest.objects.filter(pk=request.pk).update(
            status=AdviceRequest.Status.DISPATCHED, dispatched_at=timezone.now()
        )
    return request


def audits(request: AdviceRequest) -> list[AuditEvent]:
    return list(
        AuditEvent.objects.filter(
            action=AuditEvent.Action.ADVICE, patient_id=request.visit.patient_id
        )
    )


def state(request: AdviceRequest) -> tuple[str, str]:
    request.refresh_from_db()
    return request.status, request.claimed_by


def test_one_task_computes_the_requests_already_waiting_in_as_many_statements_as_one(
    trained, team_a, doctor_a
):
    advice_service.advice_compute(  # warm: the versions' rows are read once per process
        request_id=waiting(team_a, doctor_a).pk, claimant=ME, batch=8
    )
    requests = [waiting(team_a, doctor_a, complaint=f"cough for {d} days") for d in range(4)]
    with CaptureQueriesContext(connection) as queries:
        advice = advice_service.advice_compute(request_id=requests[0].pk, claimant=ME, batch=8)
    assert len(queries.captured_queries) == ADVICE_STATEMENTS, "\n".join(
        q["sql"][:120] for q in queries.captured_queries
    )
    assert advice is not None
    for request in requests:
        request.refresh_from_db()
        assert request.status == DONE
        assert request.advice.visit_id == request.visit_id
        (audit,) = audits(request)  # one record each, with the id of the request it serves
        assert audit.object_id == str(request.advice_id)
        assert audit.request_id == (request.request_id or f"advice-request-{request.pk}")
    assert requests[0].advice == advice
    assert Advice.objects.filter(visit_id__in=[r.visit_id for r in requests]).count() == 4


def test_batch_of_one_is_the_single_path_and_batch_one_takes_nothing_else(
    trained, team_a, doctor_a
):
    first, second = waiting(team_a, doctor_a), waiting(team_a, doctor_a)
    advice_service.advice_compute(request_id=first.pk, claimant=ME)  # batch=1: the default
    assert state(first)[0] == DONE
    assert state(second) == (AdviceRequest.Status.DISPATCHED, "")


def test_only_requests_handed_to_the_broker_are_taken(trained, team_a, doctor_a):
    """A pending request has no message yet (the dispatch was held back, or the broker was
    down): the relay's dispatch, not a batch, decides when it is computed."""
    own = waiting(team_a, doctor_a)
    held_back = waiting(team_a, doctor_a, dispatched=False)
    elsewhere = waiting(team_a, doctor_a)
    outbox.advice_request_start(request_id=elsewhere.pk, claimant="other#b:7")
    advice_service.advice_compute(request_id=own.pk, claimant=ME, batch=8)
    assert state(own)[0] == DONE
    assert state(held_back) == (AdviceRequest.Status.PENDING, "")
    assert state(elsewhere) == (AdviceRequest.Status.COMPUTING, "other#b:7")


def test_the_message_of_a_request_a_batch_completed_is_a_no_op(trained, team_a, doctor_a):
    own, other = waiting(team_a, doctor_a), waiting(team_a, doctor_a, complaint="fever")
    advice_service.advice_compute(request_id=own.pk, claimant=ME, batch=8)
    other.refresh_from_db()
    assert other.status == DONE
    stored = other.advice
    with CaptureQueriesContext(connection) as queries:  # this process completed it
        again = advice_service.advice_compute(request_id=other.pk, claimant=ME, batch=8)
    assert again == stored
    assert queries.captured_queries == []
    # Another process (or this one after a restart) finds it done through the claim.
    again = advice_service.advice_compute(request_id=other.pk, claimant="advice@h#e5f6:9", batch=8)
    assert again == stored
    other.refresh_from_db()
    assert (other.status, other.advice_id, other.compute_attempts) == (DONE, stored.pk, 1)
    assert Advice.objects.filter(visit_id=other.visit_id).count() == 1
    assert len(audits(other)) == 1


def test_a_message_whose_own_request_is_claimed_elsewhere_still_takes_the_waiting_ones(
    trained, team_a, doctor_a
):
    own, other = waiting(team_a, doctor_a), waiting(team_a, doctor_a)
    outbox.advice_request_start(request_id=own.pk, claimant="other#b:7")
    assert advice_service.advice_compute(request_id=own.pk, claimant=ME, batch=8) is None
    assert state(own) == (AdviceRequest.Status.COMPUTING, "other#b:7")
    assert state(other)[0] == DONE


def test_a_batch_that_fails_hands_its_other_requests_back_and_their_messages_compute_them(
    trained, team_a, doctor_a, monkeypatch
):
    own, other, third = (waiting(team_a, doctor_a, complaint=f"cough {d}") for d in range(3))
    real_parts = advice_service._payload_parts

    def broken(visit, *args, **kwargs):
        if visit.pk == other.visit_id:
            raise RuntimeError("the engine fell over")
        return real_parts(visit, *args, **kwargs)

    monkeypatch.setattr(advice_service, "_payload_parts", broken)
    with pytest.raises(RuntimeError):
        advice_service.advice_compute(request_id=own.pk, claimant=ME, batch=8)
    # Nothing stored; the own request is left as a failed computation of it alone leaves it
    # (Celery's retry or the claim's expiry), the others are dispatched again.
    assert not Advice.objects.filter(visit_id__in=[own.visit_id, other.visit_id, third.visit_id])
    assert state(own) == (AdviceRequest.Status.COMPUTING, ME)
    assert state(other) == (AdviceRequest.Status.DISPATCHED, "")
    assert state(third) == (AdviceRequest.Status.DISPATCHED, "")
    monkeypatch.setattr(advice_service, "_payload_parts", real_parts)
    # Their own messages come: each is computed (the first also takes the other waiting one).
    advice_service.advice_compute(request_id=other.pk, claimant=ME, batch=8)
    assert state(other)[0] == state(third)[0] == DONE
    # The own request's retry (or a later message of it in this process) takes its claim back.
    advice_service.advice_compute(request_id=own.pk, claimant=ME, batch=8)
    assert state(own)[0] == DONE
    for request in (own, other, third):
        assert Advice.objects.filter(visit_id=request.visit_id).count() == 1
        assert len(audits(request)) == 1


def test_the_requests_of_a_pool_process_killed_mid_batch_are_taken_over_by_their_messages(
    trained, team_a, doctor_a
):
    """The worker replaces a pool process that died: the own request's message is redelivered
    (takeover); the others' messages come normally and find them claimed by a process of this
    worker that no longer exists."""
    dead = subprocess.run(  # a process that has exited: its pid is free
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    gone = f"advice@h#a1b2c3d4:{int(dead.stdout)}"
    own, other = waiting(team_a, doctor_a), waiting(team_a, doctor_a)
    outbox.advice_requests_start(request_id=own.pk, claimant=gone, more=7)
    assert state(other) == (AdviceRequest.Status.COMPUTING, gone)
    advice_service.advice_compute(request_id=other.pk, claimant=ME, batch=8)
    assert state(other) == (DONE, ME)
    advice_service.advice_compute(request_id=own.pk, claimant=ME, takeover=True, batch=8)
    assert state(own) == (DONE, ME)


def test_a_live_sibling_s_batch_claim_is_left_alone(trained, team_a, doctor_a):
    own, other = waiting(team_a, doctor_a), waiting(team_a, doctor_a)
    sibling = f"advice@h#a1b2c3d4:{os.getppid()}"  # alive: the test runner's parent
    outbox.advice_requests_start(request_id=own.pk, claimant=sibling, more=7)
    assert advice_service.advice_compute(request_id=other.pk, claimant=ME, batch=8) is None
    assert state(other) == (AdviceRequest.Status.COMPUTING, sibling)


def test_a_lost_worker_s_batch_claims_are_released_and_re_sent_by_the_relay(
    trained, team_a, doctor_a, monkeypatch, settings
):
    sent: list[int] = []

    def dispatch(*, request_id: int) -> bool:
        sent.append(request_id)
        return True

    monkeypatch.setattr(outbox, "advice_request_dispatch", dispatch)
    settings.MEDAI_ADVICE_WORKER_LOST_SECONDS = 6
    own, other = waiting(team_a, doctor_a), waiting(team_a, doctor_a)
    advice_worker_beat(name="advice@dead#a", pid=1)
    outbox.advice_requests_start(request_id=own.pk, claimant="advice@dead#a:11", more=7)
    AdviceWorker.objects.update(beat_at=timezone.now() - timedelta(seconds=7))
    assert outbox.advice_requests_relay() == 2
    assert sorted(sent) == sorted([own.pk, other.pk])
    assert state(own) == state(other) == (AdviceRequest.Status.DISPATCHED, "")


def test_a_batch_that_clashes_with_advice_stored_meanwhile_stores_each_once(
    trained, team_a, doctor_a, monkeypatch
):
    """The batch's store rolls back as a whole; each request is then computed alone, finding
    the advice the other worker stored."""
    own, other = waiting(team_a, doctor_a), waiting(team_a, doctor_a, complaint="fever")
    real_many = advice_service._existing_many

    def another_worker_stores_first(items, models_key):
        found = real_many(items, models_key)  # nothing stored yet...
        twin = outbox.advice_request_create(visit=other.visit, actor=None)
        advice_service.advice_compute(request_id=twin.pk, claimant="w2#b:20")  # ...until now
        return found

    monkeypatch.setattr(advice_service, "_existing_many", another_worker_stores_first)
    advice_service.advice_compute(request_id=own.pk, claimant=ME, batch=8)
    assert state(own)[0] == state(other)[0] == DONE
    assert Advice.objects.filter(visit_id=other.visit_id).count() == 1
    assert Advice.objects.filter(visit_id=own.visit_id).count() == 1
    other.refresh_from_db()
    assert other.advice == Advice.objects.get(visit_id=other.visit_id)
    assert len(audits(own)) == 1
    assert len(audits(other)) == 2  # the other worker's request and this one, none rolled back


def test_two_requests_of_one_visit_in_a_batch_get_one_advice(trained, team_a, doctor_a):
    first = waiting(team_a, doctor_a)
    again = outbox.advice_request_create(visit=first.visit, actor=None)
    AdviceRequest.objects.filter(pk=again.pk).update(status=AdviceRequest.Status.DISPATCHED)
    advice_service.advice_compute(request_id=first.pk, claimant=ME, batch=8)
    first.refresh_from_db()
    again.refresh_from_db()
    assert first.status == again.status == DONE
    assert first.advice_id == again.advice_id
    assert Advice.objects.filter(visit_id=first.visit_id).count() == 1


def test_a_visit_with_too_little_recorded_in_a_batch_is_done_without_advice(
    trained, team_a, doctor_a
):
    own = waiting(team_a, doctor_a)
    bare = visit_create(
        patient=PatientFactory(care_teams=[team_a]),
        attending=doctor_a,
        actor=doctor_a,
        observations=[ObservationInput("1988-5", 5, "mg/L")],  # a lab: no vital sign
    ).advice_requests.get()
    AdviceRequest.objects.filter(pk=bare.pk).update(status=AdviceRequest.Status.DISPATCHED)
    advice_service.advice_compute(request_id=own.pk, claimant=ME, batch=8)
    bare.refresh_from_db()
    assert (bare.status, bare.advice_id) == (DONE, None)
    assert bare.error  # the reason
    assert state(own)[0] == DONE


def test_the_task_computes_a_batch(trained, team_a, doctor_a, settings):
    from predictions.tasks import advice_compute as advice_task

    settings.MEDAI_ADVICE_BATCH = 8
    requests = [waiting(team_a, doctor_a, complaint=f"cough {d}") for d in range(3)]
    advice_task(requests[0].pk)
    for request in requests:
        assert state(request)[0] == DONE


@pytest.fixture
def shared_ring():
    advice_messages.share()
    yield
    advice_messages.unshare()


def test_a_batch_notes_the_others_it_completed_for_the_worker_s_main_process(
    trained, team_a, doctor_a, shared_ring
):
    own, other = waiting(team_a, doctor_a), waiting(team_a, doctor_a, complaint="fever")
    later = waiting(team_a, doctor_a, complaint="chest pain")
    advice_service.advice_compute(request_id=own.pk, claimant=ME, batch=2)  # own + one other
    assert state(other)[0] == DONE
    assert advice_messages.noted(other.pk)
    assert not advice_messages.noted(own.pk)  # its message is the one being handled
    assert not advice_messages.noted(later.pk)  # still waiting: its message must compute it


class _Message:
    def __init__(self, args):
        self.payload = [args, {}, {}]


def test_the_main_process_acknowledges_a_noted_request_s_message_and_passes_the_others_on(
    monkeypatch, shared_ring
):
    from celery.worker import strategy as celery_strategy

    handled, acked = [], []
    monkeypatch.setattr(
        celery_strategy,
        "default",
        lambda *a, **k: lambda message, *rest, **kw: handled.append(message.payload[0]),
    )
    consumer = type("Consumer", (), {"connection_errors": ()})()
    on_message = advice_messages.strategy(None, None, consumer)
    advice_messages.note([41, 42])

    def ack(*args):
        acked.append(args)

    on_message(_Message([42]), None, ack, None, [])
    assert (handled, len(acked)) == ([], 1)
    on_message(_Message([43]), None, ack, None, [])  # not noted: Celery's way
    on_message(_Message(["x", 2]), None, ack, None, [])  # not an advice message's shape
    assert handled == [[43], ["x", 2]]
    assert len(acked) == 1
    advice_messages.unshare()  # the web, tests, the trainer: nothing is noted
    on_message(_Message([42]), None, ack, None, [])
    assert handled[-1] == [42]


def test_the_ring_forgets_the_oldest_notes_first():
    advice_messages.share()
    try:
        advice_messages.note(range(1, advice_messages.SLOTS + 11))
        assert not advice_messages.noted(10)
        assert advice_messages.noted(11)
        assert advice_messages.noted(advice_messages.SLOTS + 10)
        assert not advice_messages.noted(0)
    finally:
        advice_messages.unshare()


def test_a_batch_supersedes_the_current_advice_of_a_changed_visit_and_links_unchanged_inputs(
    trained, team_a, doctor_a, caplog
):
    from visits.services import visit_record

    changed, unchanged = waiting(team_a, doctor_a), waiting(team_a, doctor_a, complaint="fever")
    before = {
        r.pk: advice_service.advice_compute(request_id=r.pk, claimant=ME)
        for r in (changed, unchanged)
    }
    visit_record(actor=doctor_a, visit=changed.visit, chief_complaint="chest pain since noon")
    edited = changed.visit.advice_requests.exclude(pk=changed.pk).get()
    again = outbox.advice_request_create(visit=unchanged.visit, actor=None)  # the same inputs
    AdviceRequest.objects.filter(pk__in=[edited.pk, again.pk]).update(
        status=AdviceRequest.Status.DISPATCHED
    )
    caplog.set_level("INFO", logger=advice_service.__name__)
    advice_service.advice_compute(request_id=edited.pk, claimant=ME, batch=8)
    assert "not stored as one" not in caplog.text  # stored by the batch, not one by one
    edited.refresh_from_db()
    again.refresh_from_db()
    assert edited.status == again.status == DONE
    assert again.advice_id == before[unchanged.pk].pk  # linked: computed once
    assert edited.advice_id != before[changed.pk].pk
    current = Advice.objects.filter(visit_id=changed.visit_id, superseded=False).get()
    assert current.pk == edited.advice_id
    assert Advice.objects.filter(visit_id=unchanged.visit_id).count() == 1


def test_a_message_for_a_request_that_does_not_exist_claims_nothing_else(trained, team_a, doctor_a):
    other = waiting(team_a, doctor_a)
    with pytest.raises(AdviceRequest.DoesNotExist):
        advice_service.advice_compute(request_id=10**12, claimant=ME, batch=8)
    assert state(other) == (AdviceRequest.Status.DISPATCHED, "")


def test_a_request_a_batch_computes_alone_is_audited_under_its_own_id(trained, team_a, doctor_a):
    """A request without a saving request's id carries its own, even when the batch computes it
    alone after another (here: its visit already has advice)."""
    first = waiting(team_a, doctor_a)
    advice_service.advice_compute(request_id=first.pk, claimant=ME, batch=1)
    again = outbox.advice_request_create(visit=first.visit, actor=None)
    AdviceRequest.objects.filter(pk=again.pk).update(
        status=AdviceRequest.Status.DISPATCHED, request_id=""
    )
    own = waiting(team_a, doctor_a, complaint="fever")
    advice_service.advice_compute(request_id=own.pk, claimant=ME, batch=8)
    assert state(again)[0] == DONE
    ids = [e.request_id for e in audits(again)]  # the visit's two: first's, then again's
    assert len(ids) == 2
    assert f"advice-request-{again.pk}" in ids
    assert f"advice-request-{own.pk}" not in ids
