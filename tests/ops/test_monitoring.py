"""Model monitoring on the real database: drift alerts fire on a shifted population only."""

from __future__ import annotations

import pytest
from django.db.models import F
from django.db.models.functions import Mod

from predictions.models import ActivationEvent, ModelAlert, MonitoringSnapshot
from predictions.services.monitoring import snapshot_take

from .conftest import import_window, to_fahrenheit

pytestmark = pytest.mark.django_db


def test_fahrenheit_feed_fires_act_alert_and_auto_disable_switches_the_task_off(
    monitored, team_a, doctor_a, settings
):
    settings.MEDAI_MONITORING_AUTO_DISABLE = True
    window = import_window(team_a, doctor_a, seed=21)
    to_fahrenheit(window)

    snapshot = snapshot_take(task=monitored.task)

    assert snapshot.status == MonitoringSnapshot.Status.ACT
    temperature = snapshot.input_drift["features"]["obs_8310-5"]
    assert temperature["status"] == "act"
    assert temperature["psi_band"] == "major"
    assert temperature["implausible"]["window"] == 1.0
    assert temperature["n_reference"] > 100
    assert temperature["n_window"] > 100
    assert temperature["test"]["test"] == "ks"
    alert = ModelAlert.objects.get(key="input:obs_8310-5")
    assert alert.severity == "act"
    assert alert.snapshot == snapshot
    assert "Body temperature" in alert.message

    monitored.task.refresh_from_db()
    assert monitored.task.enabled is False
    assert "monitoring" in monitored.task.disabled_reason
    event = ActivationEvent.objects.get(task=monitored.task, action=ActivationEvent.Action.DISABLE)
    assert "Body temperature" in event.reason
    assert event.actor is None

    # A second run does not raise the same open alert again.
    snapshot_take(task=monitored.task)
    assert ModelAlert.objects.filter(key="input:obs_8310-5").count() == 1


def test_different_age_mix_fires_drift_alert_without_switching_off_by_default(
    monitored, team_a, doctor_a, settings
):
    assert settings.MEDAI_MONITORING_AUTO_DISABLE is False
    window = import_window(team_a, doctor_a, seed=22)
    from visits.models import Visit

    # A new paediatric-adjacent clinic: every visit is 18–27 years old.
    Visit.objects.filter(pk__in=window).update(age_years=Mod(F("id"), 10) + 18)

    snapshot = snapshot_take(task=monitored.task)

    assert snapshot.status == MonitoringSnapshot.Status.ACT
    age = snapshot.input_drift["features"]["age"]
    assert age["status"] == "act"
    assert age["psi"] >= 0.25
    assert ModelAlert.objects.filter(key="input:age", severity="act").exists()
    monitored.task.refresh_from_db()
    assert monitored.task.enabled is True
    assert not ActivationEvent.objects.filter(action=ActivationEvent.Action.DISABLE).exists()


def test_stable_population_does_not_fire(monitored, team_a, doctor_a, settings):
    settings.MEDAI_MONITORING_AUTO_DISABLE = True
    import_window(team_a, doctor_a, seed=23)

    snapshot = snapshot_take(task=monitored.task)

    acting = [a for a in snapshot.alerts if a["severity"] == "act"]
    assert acting == []
    assert snapshot.status in (MonitoringSnapshot.Status.OK, MonitoringSnapshot.Status.WATCH)
    assert not ModelAlert.objects.filter(severity="act").exists()
    assert snapshot.input_drift["window_n"] == 150
    assert snapshot.input_drift["psi_max"] < 0.25
    # Output drift is computed on the window with the active model.
    assert snapshot.output_drift["probabilities"]["window"]["n"] == 150
    monitored.task.refresh_from_db()
    assert monitored.task.enabled is True


def test_output_reference_is_the_out_of_fold_predictions_not_the_in_sample_ones(engine_model):
    """Monitoring compares new visits' outputs with how the model judged visits it had not seen:
    in-sample predictions of a flexible text model are over-confident and read as drift."""
    from predictions.models import PredictionTask
    from predictions.services.training import output_reference_summary

    model, _info, result = engine_model
    task = PredictionTask(slug="differential", kind=PredictionTask.Kind.DIFFERENTIAL)
    stored = output_reference_summary(task, model.classes, result)
    assert len(stored["score"]) == len(result.oof_probabilities)
    assert set(stored["top"]) <= set(model.classes)
    oof_top = result.oof_probabilities.max(axis=1)
    assert stored["score"] == [round(float(s), 5) for s in oof_top]
