"""The outbox service: visit events become advice requests once, even when consumers race."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from predictions.models import AdviceRequest
from predictions.services import outbox
from tests.factories import PatientFactory
from visits.models import VisitEvent
from visits.services import ObservationInput, visit_create

COMPLAINT = "cough"


@pytest.fixture
def dispatched(monkeypatch):
    """Request ids handed to the broker (the broker itself is tested in test_outbox.py)."""
    sent: list[int] = []

    def dispatch(*, request_id: int) -> bool:
        sent.append(request_id)
        return True

    monkeypatch.setattr(outbox, "advice_request_dispatch", dispatch)
    return sent


def save_visit(team, doctor):
    return visit_create(
        patient=PatientFactory(care_teams=[team]),
        attending=doctor,
        actor=doctor,
        chief_complaint=COMPLAINT,
        observations=[ObservationInput("8867-4", 88, "/min")],
    )


@pytest.mark.django_db
def test_a_visit_event_becomes_one_request_in_the_visits_transaction(team_a, doctor_a):
    visit = save_visit(team_a, doctor_a)
    event = visit.events.get()
    request = visit.advice_requests.get()
    assert (request.event, request.status) == (event, AdviceRequest.Status.PENDING)
    assert request.request_id == event.request_id


@pytest.mark.django_db
def test_an_event_the_fast_path_missed_is_swept_by_the_relay(
    team_a, doctor_a, monkeypatch, dispatched
):
    def crash(**kwargs):
        raise RuntimeError("worker process died between commit and fast path")

    with monkeypatch.context() as broken:
        broken.setattr(outbox, "advice_request_from_event", crash)
        visit = save_visit(team_a, doctor_a)  # the save itself succeeds
    event = visit.events.get()
    assert not AdviceRequest.objects.exists()

    assert outbox.advice_requests_relay() == 1
    request = AdviceRequest.objects.get()
    assert (request.event_id, request.visit_id) == (event.pk, visit.pk)
    assert dispatched == [request.pk]
    # Still pending here (the dispatch is faked): sent again once the web's grace has passed,
    # never duplicated.
    assert outbox.advice_requests_relay() == 0
    AdviceRequest.objects.update(created_at=timezone.now() - timedelta(seconds=3))
    assert outbox.advice_requests_relay() == 1
    assert AdviceRequest.objects.count() == 1


@pytest.mark.django_db
def test_consuming_an_event_twice_returns_the_same_request(team_a, doctor_a):
    event = save_visit(team_a, doctor_a).events.get()
    first = event.advice_request
    again = outbox.advice_request_from_event(event=event)
    assert again.pk == first.pk
    assert AdviceRequest.objects.filter(event=event).count() == 1


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_fast_path_and_relay_racing_on_one_event_make_one_request(
    team_a, doctor_a, monkeypatch, dispatched
):
    """Two consumers in their own transactions insert at once: the unique event column wins."""
    with monkeypatch.context() as off:
        off.setattr(outbox, "advice_request_from_event", lambda **kw: None)
        visit = save_visit(team_a, doctor_a)
    event = VisitEvent.objects.get(visit=visit)
    barrier = threading.Barrier(2)
    results, errors = [], []

    def consume():
        try:
            from django.db import transaction

            with transaction.atomic():
                barrier.wait(timeout=10)
                results.append(outbox.advice_request_from_event(event=event).pk)
        except Exception as exc:  # reported below: a thread's failure must fail the test
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=consume) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert len(results) == 2
    assert results[0] == results[1]
    assert AdviceRequest.objects.filter(event=event).count() == 1
    assert len(dispatched) == 1  # only the creator tells the broker


@pytest.mark.django_db
def test_an_explicit_request_has_no_event_and_is_dispatched_after_commit(
    team_a, doctor_a, dispatched, django_capture_on_commit_callbacks
):
    visit = visit_create(
        patient=PatientFactory(care_teams=[team_a]),
        attending=doctor_a,
        actor=doctor_a,
        request_advice=False,
    )
    with django_capture_on_commit_callbacks(execute=True):
        request = outbox.advice_request_create(visit=visit, actor=doctor_a)
    assert request.event is None
    assert dispatched == [request.pk]


@pytest.mark.django_db
def test_a_request_started_too_often_is_failed_with_a_reason(team_a, doctor_a):
    request = save_visit(team_a, doctor_a).advice_requests.get()
    AdviceRequest.objects.filter(pk=request.pk).update(compute_attempts=outbox.MAX_COMPUTE_ATTEMPTS)
    assert outbox.advice_request_start(request_id=request.pk) is None
    request.refresh_from_db()
    assert request.status == AdviceRequest.Status.FAILED
    assert "given up" in request.error
