"""/metrics: protected, and exposes web, outbox, Celery and model figures."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from django.utils import timezone

from predictions.models import AdviceRequest
from tests.factories import VisitFactory

pytestmark = pytest.mark.django_db
TOKEN = "metrics-token-for-tests"


def _basic(password: str) -> dict[str, str]:
    return {
        "HTTP_AUTHORIZATION": "Basic "
        + base64.b64encode(f"prometheus:{password}".encode()).decode()
    }


@pytest.fixture(autouse=True)
def _token(settings):
    settings.METRICS_TOKEN = TOKEN


def test_metrics_refuse_anonymous_wrong_token_and_non_staff(client, doctor_a):
    response = client.get("/metrics")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Basic")
    assert client.get("/metrics", **_basic("wrong")).status_code == 401
    client.force_login(doctor_a)
    assert client.get("/metrics").status_code == 403


def test_metrics_expose_outbox_backlog_and_oldest_pending_age(client, doctor_a):
    visit = VisitFactory(attending=doctor_a)
    old = AdviceRequest.objects.create(visit=visit)
    AdviceRequest.objects.create(visit=visit)
    AdviceRequest.objects.create(visit=visit, status=AdviceRequest.Status.DONE)
    AdviceRequest.objects.filter(pk=old.pk).update(
        created_at=timezone.now() - timedelta(minutes=10)
    )

    response = client.get("/metrics", **_basic(TOKEN))

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    assert 'medai_outbox_backlog{status="pending"} 2.0' in text
    [age_line] = [
        line
        for line in text.splitlines()
        if line.startswith("medai_outbox_oldest_pending_age_seconds ")
    ]
    assert 600 <= float(age_line.split()[1]) < 700
    # django-prometheus: requests, latency by view, responses by status.
    assert "django_http_requests_latency_seconds_by_view_method" in text
    assert "django_http_responses_total_by_status_view_method_total" in text
    # Celery: per-task duration and failures, queue depth from the Redis broker.
    assert 'medai_task_failures_total{task="predictions.tasks.advice_compute"} 0.0' in text
    assert 'medai_celery_queue_length{queue="advice"}' in text
    assert "medai_advice_engine_seconds_count" in text


def test_metrics_accept_a_staff_session_verified_like_the_admin(client, admin_user):
    client.force_login(admin_user)
    response = client.get("/metrics")
    assert response.status_code == 200
    assert "medai_model_enabled" in response.content.decode()
