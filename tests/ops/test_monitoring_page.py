"""The beat task, the settings it relies on, and the admin monitoring page."""

from __future__ import annotations

import pytest
from django.conf import settings

from predictions.models import ModelAlert, MonitoringSnapshot
from predictions.tasks import monitoring_run

from .conftest import import_window, to_fahrenheit


def test_monitoring_settings_and_beat_entry_resolve():
    from medai_site.celery import app

    entry = settings.CELERY_BEAT_SCHEDULE["model-monitoring"]
    assert entry["task"] == "predictions.tasks.monitoring_run"
    assert entry["task"] in app.tasks
    # Defaults: a 30-day window, and no automatic switch-off unless governance turns it on.
    assert settings.MEDAI_MONITORING_WINDOW_DAYS == 30
    assert settings.MEDAI_MONITORING_AUTO_DISABLE is False
    assert settings.MIDDLEWARE[0] == "django_prometheus.middleware.PrometheusBeforeMiddleware"


@pytest.mark.django_db
def test_task_takes_snapshots_and_the_admin_page_shows_status_and_plots(
    monitored, team_a, doctor_a, admin_user, client, monkeypatch
):
    window = import_window(team_a, doctor_a, seed=24)
    assert monitoring_run(monitored.task.pk) == ["differential:ok"]
    to_fahrenheit(window)
    assert monitoring_run(monitored.task.pk) == ["differential:act"]
    assert MonitoringSnapshot.objects.filter(task=monitored.task).count() == 2

    client.force_login(admin_user)
    response = client.get("/admin/predictions/monitoringsnapshot/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "Act — the model may be unsafe" in page
    assert page.count("<svg") >= 3
    assert "0.25 act" in page
    assert "Body temperature" in page  # the open alert, in words

    queued = []
    monkeypatch.setattr(
        "predictions.tasks.monitoring_run.apply_async", lambda **kw: queued.append(kw)
    )
    response = client.post("/admin/predictions/monitoringsnapshot/", {"run_monitoring": "1"})
    assert response.status_code == 302
    assert queued

    alert = ModelAlert.objects.get(key="input:obs_8310-5")
    response = client.post(
        "/admin/predictions/modelalert/",
        {"action": "acknowledge", "_selected_action": [alert.pk]},
    )
    assert response.status_code == 302
    alert.refresh_from_db()
    assert alert.acknowledged_by == admin_user
