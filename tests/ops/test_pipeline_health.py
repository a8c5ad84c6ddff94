"""The advice pipeline's health: on /metrics, on the operations page, and as "Advice is delayed"
on the visit page (README "Advice pipeline" documents the alert thresholds)."""

from __future__ import annotations

import base64
import time
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from predictions.models import AdviceRequest, AdviceWorker
from predictions.pipeline_health import advice_pipeline_health
from predictions.services.advice_workers import advice_worker_beat
from tests.factories import VisitFactory

pytestmark = pytest.mark.django_db
TOKEN = "metrics-token-for-tests"
DELAYED = "Advice is delayed — the rules and the last known models are unavailable"


def metrics(client) -> dict[str, float]:
    auth = "Basic " + base64.b64encode(f"prometheus:{TOKEN}".encode()).decode()
    text = client.get("/metrics", HTTP_AUTHORIZATION=auth).content.decode()
    return {
        line.split()[0]: float(line.split()[1])
        for line in text.splitlines()
        if line.startswith("medai_") and " " in line
    }


@pytest.fixture(autouse=True)
def _token(settings):
    settings.METRICS_TOKEN = TOKEN
    settings.MEDAI_ADVICE_LATE_SECONDS = 10


def pending(visit, seconds_ago: float) -> AdviceRequest:
    request = AdviceRequest.objects.create(visit=visit, status=AdviceRequest.Status.DISPATCHED)
    AdviceRequest.objects.filter(pk=request.pk).update(
        created_at=timezone.now() - timedelta(seconds=seconds_ago)
    )
    return request


def test_no_live_worker_is_advice_stopped_on_metrics(client, doctor_a):
    advice_worker_beat(name="advice@h#dead", pid=1)
    AdviceWorker.objects.update(beat_at=timezone.now() - timedelta(seconds=30))
    health = advice_pipeline_health()
    assert health.status == "stopped"
    assert "no live advice worker" in health.reasons
    figures = metrics(client)
    assert figures["medai_advice_workers_live"] == 0
    assert figures["medai_advice_workers_lost"] == 1
    assert figures["medai_advice_pipeline_status"] == 2


def test_a_request_older_than_the_threshold_is_advice_delayed(client, doctor_a):
    advice_worker_beat(name="advice@h#live", pid=1)
    visit = VisitFactory(attending=doctor_a)
    pending(visit, 25)
    pending(visit, 1)
    AdviceRequest.objects.create(visit=visit, status=AdviceRequest.Status.DONE)
    health = advice_pipeline_health()
    assert (health.status, health.late, health.live_workers) == ("delayed", 1, 1)
    assert health.backlog == {"pending": 0, "dispatched": 2, "computing": 0}
    figures = metrics(client)
    assert figures["medai_advice_late_requests"] == 1
    assert figures["medai_advice_pipeline_status"] == 1
    assert 25 <= figures["medai_outbox_oldest_pending_age_seconds"] < 60
    assert figures['medai_outbox_backlog{status="dispatched"}'] == 2


def test_all_well_is_ok(doctor_a):
    advice_worker_beat(name="advice@h#live", pid=1)
    pending(VisitFactory(attending=doctor_a), 1)
    health = advice_pipeline_health()
    assert (health.status, health.reasons) == ("ok", [])


@pytest.fixture
def visit_a(patient_a, doctor_a):
    from visits.services import ObservationInput, visit_create

    return visit_create(
        patient=patient_a,
        attending=doctor_a,
        chief_complaint="cough",
        observations=[ObservationInput("2708-6", "85")],
        actor=doctor_a,
    )


def panel(client, visit) -> str:
    return client.get(reverse("advice_panel", args=[visit.pk])).content.decode()


def test_the_visit_page_says_advice_is_delayed_when_it_is_late(client, doctor_a, visit_a):
    client.force_login(doctor_a)
    advice_worker_beat(name="advice@h#live", pid=1)
    request = visit_a.advice_requests.get()
    AdviceRequest.objects.filter(pk=request.pk).update(status="dispatched")
    html = panel(client, visit_a)
    assert "Computing advice" in html
    assert DELAYED not in html

    AdviceRequest.objects.filter(pk=request.pk).update(
        created_at=timezone.now() - timedelta(seconds=11)
    )
    html = panel(client, visit_a)
    assert DELAYED in html
    assert "clinical judgement applies" in html
    assert "data-advice-pending" in html  # still waiting: the advice appears once it comes
    page = client.get(reverse("visit_detail", args=[visit_a.pk])).content.decode()
    assert DELAYED in page


def test_the_visit_page_says_advice_is_delayed_at_once_when_no_worker_is_alive(
    client, doctor_a, visit_a
):
    client.force_login(doctor_a)
    assert DELAYED in panel(client, visit_a)  # pending, fresh, but nobody to compute it


def test_the_operations_page_shows_the_pipeline_to_staff_only(client, doctor_a, admin_user):
    visit = VisitFactory(attending=doctor_a)
    pending(visit, 40)
    client.force_login(doctor_a)
    assert client.get(reverse("operations")).status_code == 403
    client.force_login(admin_user)
    response = client.get(reverse("operations"))
    assert response.status_code == 200, response
    html = response.content.decode()
    assert 'id="pipeline-status">stopped' in html
    assert "no live advice worker" in html
    assert "medai_advice_workers_live" in html


def test_the_open_panel_is_woken_when_its_advice_turns_late(
    client, doctor_a, visit_a, monkeypatch, settings
):
    """The panel waits on a server-sent-events stream; the stream also fires when the pending
    advice becomes late, so the doctor sees "Advice is delayed" without reloading."""
    from medai_site import live_events

    class Quiet:  # no advice event arrives: the worker is stuck
        def wait(self, timeout):
            time.sleep(timeout)
            return False

        def close(self):
            pass

    monkeypatch.setattr(live_events, "listen", lambda topic: Quiet())
    client.force_login(doctor_a)
    advice_worker_beat(name="advice@h#live", pid=1)
    AdviceRequest.objects.filter(visit=visit_a).update(
        status="dispatched", created_at=timezone.now() - timedelta(seconds=9.5)
    )
    started = time.monotonic()
    response = client.get(reverse("advice_stream", args=[visit_a.pk]))
    body = b"".join(response.streaming_content).decode()
    assert body.endswith("event: advice\ndata: delayed\n\n")
    assert time.monotonic() - started < 5
    assert DELAYED in panel(client, visit_a)
    # The panel now says so and opens a new stream: that one waits for the advice itself.
    settings.MEDAI_ADVICE_STREAM_SECONDS = 1
    again = b"".join(
        client.get(reverse("advice_stream", args=[visit_a.pk])).streaming_content
    ).decode()
    assert "event: advice" not in again
