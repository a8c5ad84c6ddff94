"""One advice, one audit record: the claim on a request, and what the relay re-sends when an
advice worker goes silent (the processes themselves: tests/integration/test_faults.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from medai_site.models import AuditEvent
from predictions.models import Advice, AdviceRequest, AdviceWorker
from predictions.services import advice as advice_service
from predictions.services import outbox
from predictions.services.advice_workers import advice_worker_beat, advice_worker_stop
from tests.factories import PatientFactory
from visits.services import ObservationInput, visit_create

pytestmark = pytest.mark.django_db
DONE = AdviceRequest.Status.DONE


@pytest.fixture
def dispatched(monkeypatch):
    sent: list[int] = []

    def dispatch(*, request_id: int) -> bool:
        sent.append(request_id)
        AdviceRequest.objects.filter(pk=request_id, status__in=["pending", "dispatched"]).update(
            status="dispatched", dispatched_at=timezone.now()
        )
        return True

    monkeypatch.setattr(outbox, "advice_request_dispatch", dispatch)
    return sent


def new_request(team, doctor) -> AdviceRequest:
    visit = visit_create(
        patient=PatientFactory(care_teams=[team]),
        attending=doctor,
        actor=doctor,
        chief_complaint="cough",
        observations=[ObservationInput("2708-6", 91, "%")],
    )
    return visit.advice_requests.get()


def advice_audits(request: AdviceRequest) -> int:
    return AuditEvent.objects.filter(
        action=AuditEvent.Action.ADVICE, patient_id=request.visit.patient_id
    ).count()


def test_a_second_delivery_of_a_claimed_request_computes_nothing(team_a, doctor_a):
    request = new_request(team_a, doctor_a)
    claimed = outbox.advice_request_start(request_id=request.pk, claimant="w1#a:10")
    assert claimed is not None
    assert claimed.status == AdviceRequest.Status.COMPUTING
    assert advice_service.advice_compute(request_id=request.pk, claimant="w2#b:20") is None
    request.refresh_from_db()
    assert (request.status, request.claimed_by, request.compute_attempts) == (
        "computing",
        "w1#a:10",
        1,
    )
    assert not Advice.objects.exists()
    assert advice_audits(request) == 0


def test_a_redelivered_message_takes_over_and_the_first_holder_stores_nothing(
    team_a, doctor_a, monkeypatch
):
    """Two workers compute one request; only the claim's holder stores, completes and audits."""
    request = new_request(team_a, doctor_a)
    real_payload = advice_service._payload
    results = {}

    def payload_while_another_worker_takes_over(*args, **kwargs):
        if not results:  # the first worker is computing: the broker redelivers
            results["second"] = None
            results["second"] = advice_service.advice_compute(
                request_id=request.pk, claimant="w2#b:20", takeover=True
            )
        return real_payload(*args, **kwargs)

    monkeypatch.setattr(advice_service, "_payload", payload_while_another_worker_takes_over)
    first = advice_service.advice_compute(request_id=request.pk, claimant="w1#a:10")

    assert first is None  # its claim was taken over: rolled back, nothing stored
    assert results["second"] is not None
    request.refresh_from_db()
    assert (request.status, request.claimed_by, request.advice) == (
        DONE,
        "w2#b:20",
        results["second"],
    )
    assert Advice.objects.filter(visit_id=request.visit_id).count() == 1
    assert advice_audits(request) == 1


def test_only_the_claimant_completes(team_a, doctor_a):
    request = new_request(team_a, doctor_a)
    outbox.advice_request_start(request_id=request.pk, claimant="w1#a:10")
    advice = Advice.objects.create(
        visit_id=request.visit_id, input_hash="0" * 64, models_key="rules-only", payload="{}"
    )
    assert not outbox.advice_request_complete(request_id=request.pk, advice=advice, claimant="x")
    assert outbox.advice_request_complete(request_id=request.pk, advice=advice, claimant="w1#a:10")


def test_a_claim_older_than_the_hard_time_limit_may_be_taken(team_a, doctor_a):
    request = new_request(team_a, doctor_a)
    outbox.advice_request_start(request_id=request.pk, claimant="w1#a:10")
    AdviceRequest.objects.filter(pk=request.pk).update(
        claimed_at=timezone.now() - timedelta(seconds=outbox.CLAIM_SECONDS + 1)
    )
    taken = outbox.advice_request_start(request_id=request.pk, claimant="w2#b:20")
    assert taken is not None
    assert taken.claimed_by == "w2#b:20"


def test_heartbeat_rows_are_written_and_removed_by_the_service():
    advice_worker_beat(name="advice@h#a", pid=10)
    first = AdviceWorker.objects.get(name="advice@h#a")
    advice_worker_beat(name="advice@h#a", pid=10)
    again = AdviceWorker.objects.get(name="advice@h#a")
    assert again.started_at == first.started_at
    assert again.beat_at >= first.beat_at
    advice_worker_stop(name="advice@h#a")
    assert not AdviceWorker.objects.exists()


def test_a_silent_worker_is_presumed_lost_and_what_it_may_hold_is_re_sent(
    team_a, doctor_a, dispatched, settings
):
    settings.MEDAI_ADVICE_WORKER_LOST_SECONDS = 6
    held = new_request(team_a, doctor_a)  # claimed by the worker that dies
    fetched = new_request(team_a, doctor_a)  # dispatched: maybe in its hands, maybe queued
    by_live = new_request(team_a, doctor_a)  # claimed by a live worker: left alone
    done = new_request(team_a, doctor_a)
    for request in (held, fetched, by_live):
        AdviceRequest.objects.filter(pk=request.pk).update(
            status="dispatched", dispatched_at=timezone.now()
        )
    advice_worker_beat(name="dead#a", pid=1)
    advice_worker_beat(name="live#b", pid=2)
    outbox.advice_request_start(request_id=held.pk, claimant="dead#a:11")
    outbox.advice_request_start(request_id=by_live.pk, claimant="live#b:21")
    AdviceRequest.objects.filter(pk=done.pk).update(status=DONE)

    assert outbox.advice_requests_relay() == 0  # both beating: nothing is lost
    assert dispatched == []

    AdviceWorker.objects.filter(name="dead#a").update(beat_at=timezone.now() - timedelta(seconds=7))
    assert outbox.advice_requests_relay() == 2
    assert sorted(dispatched) == sorted([held.pk, fetched.pk])
    held.refresh_from_db()
    assert (held.status, held.claimed_by) == ("dispatched", "")
    by_live.refresh_from_db()
    assert (by_live.status, by_live.claimed_by) == ("computing", "live#b:21")
    assert list(AdviceWorker.objects.values_list("name", flat=True)) == ["live#b"]
    assert outbox.advice_requests_relay() == 0  # handled once


def test_the_web_s_own_dispatch_is_left_a_grace_before_the_relay_sends(
    team_a, doctor_a, dispatched
):
    """The race that sent one request twice: the relay no longer picks up a fresh pending row."""
    request = new_request(team_a, doctor_a)  # pending: on_commit did not run in this test
    assert outbox.advice_requests_relay() == 0
    AdviceRequest.objects.filter(pk=request.pk).update(
        created_at=timezone.now() - timedelta(seconds=outbox.DISPATCH_GRACE_SECONDS + 1)
    )
    assert outbox.advice_requests_relay() == 1


def test_everything_in_flight_is_re_sent_when_the_broker_restarted(team_a, doctor_a, dispatched):
    in_flight = new_request(team_a, doctor_a)
    AdviceRequest.objects.filter(pk=in_flight.pk).update(
        status="dispatched", dispatched_at=timezone.now()
    )
    computing = new_request(team_a, doctor_a)
    outbox.advice_request_start(request_id=computing.pk, claimant="live#b:21")
    assert outbox.advice_requests_resend_in_flight() == 1
    assert dispatched == [in_flight.pk]


def test_a_request_claimed_before_the_web_marked_it_is_still_re_sent_when_its_worker_is_lost(
    team_a, doctor_a, dispatched, settings
):
    """The fast worker claims a request before the web's dispatch records it: the dispatch is
    recorded anyway, and the lost worker's claim is re-sent (the flake the fault suite found)."""
    request = new_request(team_a, doctor_a)  # pending, never marked dispatched
    advice_worker_beat(name="fast#a", pid=1)
    outbox.advice_request_start(request_id=request.pk, claimant="fast#a:11")
    AdviceWorker.objects.update(beat_at=timezone.now() - timedelta(seconds=60))
    assert outbox.advice_requests_relay() == 1
    assert dispatched == [request.pk]


def test_advice_stored_by_another_worker_meanwhile_is_used_not_stored_twice(
    team_a, doctor_a, monkeypatch
):
    """The INSERT has no savepoint of its own: a clash with the same advice stored since this
    worker looked rolls its transaction back, and it completes the request with that advice."""
    first = new_request(team_a, doctor_a)
    stored = advice_service.advice_compute(request_id=first.pk, claimant="w1#a:10")
    assert stored is not None
    second = outbox.advice_request_create(visit=first.visit, actor=None)  # the same inputs
    real_existing = advice_service._existing
    looks: list[int] = []

    def looked_too_early(visit, digest, models_key):
        looks.append(visit.pk)
        if len(looks) == 1:  # before the other worker committed: nothing there yet
            return None, False
        return real_existing(visit, digest, models_key)

    monkeypatch.setattr(advice_service, "_existing", looked_too_early)
    again = advice_service.advice_compute(request_id=second.pk, claimant="w2#b:20")
    assert again == stored
    assert len(looks) == 2  # looked again after the clash
    assert Advice.objects.filter(visit=first.visit).count() == 1
    second.refresh_from_db()
    assert (second.status, second.advice_id) == (DONE, stored.pk)
    assert advice_audits(second) == 2  # one per request, none for the rolled-back attempt
