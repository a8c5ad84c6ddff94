"""The chart's "Course and outlook" panel in a real Chromium: a doctor sees a patient's forecast
risk with its interval and the driving visits on a timeline, and no other patient's identifiers."""

from __future__ import annotations

import re

import pytest
from django.test import override_settings

from .conftest import sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

SLUG = "diabetes-forecast"


def _train_forecast() -> None:
    """The forecast trained in this process on seed_demo's followed-up cohort (tiny settings)."""
    from predictions.models import PredictionTask
    from predictions.services.training import training_job_execute, training_job_start

    task = PredictionTask.objects.get(slug=SLUG)
    PredictionTask.objects.filter(pk=task.pk).update(
        config={
            **task.config,
            "pretrain_epochs": 1,
            "finetune_epochs": 2,
            "dim": 16,
            "compress": False,
        }
    )
    with override_settings(
        MEDAI_FORECAST_ALGORITHMS=["count_logistic_regression", "gru"],
        MEDAI_FORECAST_CV_FOLDS=2,
    ):
        job = training_job_start(task=task, actor=None, trigger="admin")
        job = training_job_execute(job_id=job.pk)
    assert job.status == "succeeded", job.error


def _at_risk_patient_of(username: str):
    """A patient the doctor may see, followed over years, without the outcome yet."""
    from django.contrib.auth import get_user_model

    from patients.selectors import patient_list

    doctor = get_user_model().objects.get(username=username)
    for patient in patient_list(viewer=doctor).order_by("pk"):
        diagnosed = patient.visits.filter(diagnoses__code__startswith="E11").exists()
        if not diagnosed and patient.visits.count() >= 6:
            return patient
    raise AssertionError("no suitable patient")


def test_a_doctor_sees_the_outlook_with_interval_and_timeline(
    live_server, demo_population, page, screenshot
):
    from patients.models import Patient

    _train_forecast()
    patient = _at_risk_patient_of("dr.chen")
    base = live_server.url
    sign_in(page, base, "dr.chen")
    page.goto(f"{base}/patients/{patient.pk}/")
    panel = page.locator("#course-panel")
    # The chart draws a placeholder and fetches the panel once it has loaded.
    outlook = panel.locator(f'[data-task="{SLUG}"]')
    outlook.wait_for()
    risk = outlook.locator(".forecast-risk")
    assert risk.is_visible()
    assert re.fullmatch(r"\d+%", risk.inner_text().strip())
    interval = outlook.locator(".forecast-ci")
    assert interval.is_visible()
    assert re.search(r"\d+.\d+%", interval.inner_text())
    timeline = panel.locator("svg.forecast-timeline").first
    assert timeline.is_visible()
    assert timeline.bounding_box()["width"] > 100
    screenshot(page, "course-outlook")
    assert page.errors == []
    # Other patients appear only as courses: none of their MRNs or names, no links to them.
    text = panel.inner_text()
    html = panel.inner_html()
    for other in Patient.objects.exclude(pk=patient.pk):
        assert other.mrn not in text
        for name in (other.given_name, other.family_name):
            if name not in (patient.given_name, patient.family_name):
                assert not re.search(rf"\b{re.escape(name)}\b", text), name
    assert not re.search(rf"/patients/(?!{patient.pk}/)\d+", html)
