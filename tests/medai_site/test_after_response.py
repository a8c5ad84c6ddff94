"""Issue 15: work a request defers with ``after_response`` runs once its response was sent
(the WSGI server closes the response), in order, one failure not stopping the rest; outside a
request served through ``wsgi_after_response`` it runs at once."""

from __future__ import annotations

import io
import json
import logging

import pytest

from medai_site.after_response import after_response, wsgi_after_response


class _Body:
    def __init__(self, events: list[str]) -> None:
        self.events = events

    def __iter__(self):
        self.events.append("body sent")
        yield b"ok"

    def close(self) -> None:
        self.events.append("response closed")


def _serve(app, events):
    """What a WSGI server does: call, send every chunk, then close the iterable."""
    body = app({}, lambda status, headers: None)
    chunks = list(body)
    events.append("client has the response")
    body.close()
    return body, chunks


def test_outside_a_request_the_work_runs_at_once():
    done: list[str] = []
    after_response(lambda: done.append("ran"))
    assert done == ["ran"]


def test_deferred_work_runs_after_the_body_is_sent_and_before_the_response_closes():
    events: list[str] = []

    def app(environ, start_response):
        after_response(lambda: events.append("first"))
        after_response(lambda: events.append("second"))
        events.append("view returned")
        return _Body(events)

    _, chunks = _serve(wsgi_after_response(app), events)
    assert chunks == [b"ok"]
    assert events == [
        "view returned",
        "body sent",
        "client has the response",
        "first",
        "second",
        "response closed",
    ]
    after_response(lambda: events.append("later, outside"))  # the request's list is gone
    assert events[-1] == "later, outside"


def test_one_failing_callback_is_logged_and_the_rest_still_run(caplog):
    events: list[str] = []

    def boom() -> None:
        raise RuntimeError("broker down")

    def app(environ, start_response):
        after_response(boom)
        after_response(lambda: events.append("next"))
        return _Body(events)

    with caplog.at_level(logging.ERROR, logger="medai_site.after_response"):
        _serve(wsgi_after_response(app), events)
    assert events[-2:] == ["next", "response closed"]
    assert "after-response work" in caplog.text


def test_without_deferred_work_the_response_is_passed_through_untouched():
    body = _Body([])
    app = wsgi_after_response(lambda environ, start_response: body)
    assert app({}, lambda *a: None) is body  # a file response keeps the server's sendfile path


def test_work_deferred_by_a_request_that_raised_still_runs():
    events: list[str] = []

    def app(environ, start_response):
        after_response(lambda: events.append("ran"))
        raise RuntimeError("handler failed")

    with pytest.raises(RuntimeError):
        wsgi_after_response(app)({}, lambda *a: None)
    assert events == ["ran"]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_visit_created_through_the_wsgi_application_is_dispatched_after_its_response(
    monkeypatch, team_a
):
    """The advice request is handed to the broker only once the 201 was sent, and then it is."""
    from medai_site.api_auth import Scope, api_token_create
    from medai_site.wsgi import application
    from predictions.models import AdviceRequest
    from tests.factories import PatientFactory

    doctor = team_a.members.get()
    patient = PatientFactory(care_teams=[team_a])
    token = api_token_create(
        user=doctor, name="wsgi", scopes=[Scope.VISITS_WRITE], days=1, actor=doctor
    )[1]
    dispatched: list[int] = []
    monkeypatch.setattr(
        "predictions.services.outbox.advice_request_dispatch",
        lambda *, request_id: dispatched.append(request_id) or True,
    )
    payload = json.dumps({"chief_complaint": "cough"}).encode()
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": f"/api/v1/patients/{patient.pk}/visits",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "HTTP_HOST": "testserver",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(payload)),
        "HTTP_AUTHORIZATION": f"Bearer {token}",
        "wsgi.input": io.BytesIO(payload),
        "wsgi.url_scheme": "http",
        "wsgi.errors": io.StringIO(),
    }
    statuses: list[str] = []
    body = application(environ, lambda status, headers: statuses.append(status))
    sent = b"".join(body)
    assert statuses == ["201 Created"], sent
    request = AdviceRequest.objects.get(visit_id=json.loads(sent)["id"])
    assert dispatched == []  # the response is out; the broker not yet told
    body.close()
    assert dispatched == [request.pk]
