"""Advice pushed to the open visit page: the server-sent-events stream and the live events behind
it (issue 17, item 6). Redis pub/sub tests use Redis database 7 (pub/sub itself ignores it)."""

from __future__ import annotations

import threading
import time

import pytest
from django.urls import reverse

from medai_site import live_events
from predictions.models import AdviceRequest
from predictions.services import outbox

pytestmark = pytest.mark.django_db
LIVE_REDIS = "redis://127.0.0.1:6379/7"


def _body(response) -> str:
    return b"".join(response.streaming_content).decode()


def test_stream_of_finished_advice_sends_the_event_at_once(client_a, visit_a, make_advice):
    make_advice(visit_a)
    response = client_a.get(reverse("advice_stream", args=[visit_a.pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    assert response["Cache-Control"] == "no-store"
    body = _body(response)
    assert body.startswith("retry: ")
    assert "event: advice\ndata: done\n\n" in body


def test_stream_wakes_on_the_live_event_and_sends_advice(client_a, visit_a, monkeypatch):
    """Pending (here: being computed): the stream waits on the visit's topic; when woken it
    re-reads and sends."""
    AdviceRequest.objects.filter(visit=visit_a).update(status="computing", claimed_by="w1")
    topics = []

    class Woken:
        def wait(self, timeout):
            AdviceRequest.objects.filter(visit=visit_a).update(status="done")
            return True

        def close(self):
            pass

    def listen(topic):
        topics.append(topic)
        return Woken()

    monkeypatch.setattr(live_events, "listen", listen)
    body = _body(client_a.get(reverse("advice_stream", args=[visit_a.pk])))
    assert topics == [f"advice-visit-{visit_a.pk}"]
    assert body.endswith("event: advice\ndata: done\n\n")


def test_stream_lifetime_is_bounded(client_a, visit_a, settings):
    """A stream never holds a web worker for ever: it ends, and the browser reconnects."""
    settings.MEDAI_ADVICE_STREAM_SECONDS = 1
    settings.MEDAI_LIVE_EVENTS_URL = LIVE_REDIS
    started = time.monotonic()
    body = _body(client_a.get(reverse("advice_stream", args=[visit_a.pk])))
    assert time.monotonic() - started < 5
    assert "event: advice" not in body
    assert body.startswith("retry: ")


def test_stream_of_another_teams_visit_is_not_found(client, doctor_b, visit_a):
    client.force_login(doctor_b)
    assert client.get(reverse("advice_stream", args=[visit_a.pk])).status_code == 404


def test_stream_does_not_count_as_the_users_activity(client_a, visit_a, make_advice):
    from medai_site.session_idle import LAST_ACTIVITY_KEY

    client_a.get(reverse("visit_detail", args=[visit_a.pk]))
    session = client_a.session
    earlier = time.time() - 30
    session[LAST_ACTIVITY_KEY] = earlier
    session.save()
    make_advice(visit_a)
    _body(client_a.get(reverse("advice_stream", args=[visit_a.pk])))
    assert client_a.session[LAST_ACTIVITY_KEY] == earlier


def test_completing_advice_publishes_the_visits_topic_after_commit(
    visit_a, make_advice, settings, django_capture_on_commit_callbacks
):
    settings.MEDAI_LIVE_EVENTS_URL = LIVE_REDIS
    listener = live_events.listen(outbox.advice_topic(visit_a.pk))
    try:
        advice = make_advice(visit_a)
        request = AdviceRequest.objects.get(visit=visit_a)
        AdviceRequest.objects.filter(pk=request.pk).update(status="computing", claimed_by="w1")
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            assert outbox.advice_request_complete(
                request_id=request.pk, advice=advice, claimant="w1"
            )
        assert not listener.wait(0.2)  # nothing before the commit
        for callback in callbacks:
            callback()
        assert listener.wait(2.0)
    finally:
        listener.close()


def test_failed_advice_is_announced_too(visit_a, settings, django_capture_on_commit_callbacks):
    settings.MEDAI_LIVE_EVENTS_URL = LIVE_REDIS
    listener = live_events.listen(outbox.advice_topic(visit_a.pk))
    try:
        request = AdviceRequest.objects.get(visit=visit_a)
        with django_capture_on_commit_callbacks(execute=True):
            outbox.advice_request_fail(request_id=request.pk, reason="model missing")
        assert listener.wait(2.0)
    finally:
        listener.close()


@pytest.mark.parametrize("transport", ["redis", "file"])
def test_live_events_reach_a_listener_in_another_thread(transport, settings, tmp_path):
    settings.MEDAI_LIVE_EVENTS_URL = LIVE_REDIS if transport == "redis" else f"file://{tmp_path}"
    assert live_events.transport() == transport
    listener = live_events.listen("advice-visit-987654")
    try:
        assert not listener.wait(0.1)
        timer = threading.Timer(0.2, live_events.publish, args=["advice-visit-987654"])
        started = time.monotonic()
        timer.start()
        assert listener.wait(3.0)
        assert time.monotonic() - started < 1.5
        assert not listener.wait(0.1)  # one event wakes once
    finally:
        listener.close()


def test_topics_hold_ids_only():
    with pytest.raises(ValueError, match="topics are lower-case"):
        live_events.publish("advice for Mei Lin")
    with pytest.raises(ValueError, match="topics are lower-case"):
        live_events.listen("Advice-Visit-1")


def test_publishing_never_fails_the_caller(settings):
    settings.MEDAI_LIVE_EVENTS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    live_events.publish("advice-visit-1")  # logged, not raised


def test_local_profile_uses_the_embedded_transport():
    import os
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    with tempfile.TemporaryDirectory() as var:
        env = {**os.environ, "MEDAI_PROFILE": "local", "MEDAI_VAR_DIR": var}
        env.pop("DJANGO_SETTINGS_MODULE", None)
        env.pop("MEDAI_LIVE_EVENTS_URL", None)
        env.pop("CELERY_BROKER_URL", None)
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                "import medai_site.settings as s; print(s.MEDAI_LIVE_EVENTS_URL)",
            ],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert out == f"file://{var}/live-events"
