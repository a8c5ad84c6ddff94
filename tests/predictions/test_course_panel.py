"""The chart's "Course and outlook" panel: forecast risk with its interval, the visits that drove
it, similar patients' courses without identifiers; no panel without an active forecast."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from patients.models import Patient
from predictions.models import PredictionTask, TrainingJob
from predictions.services.training import training_job_execute
from tests.predictions.test_forecast_training import followed  # noqa: F401 - fixture


def _panel(page: str) -> str:
    start = page.index('id="course-panel"')
    return page[start : page.index("</section>", start)]


def _outlook(client, patient) -> str:
    """The chart draws a placeholder that fetches the panel; return the fetched panel."""
    chart = client.get(reverse("patient_chart", args=[patient.pk])).content.decode()
    url = reverse("course_panel", args=[patient.pk])
    assert f'hx-get="{url}"' in _panel(chart)
    return _panel(client.get(url).content.decode())


def _train(slug: str) -> TrainingJob:
    job = TrainingJob.objects.create(
        task=PredictionTask.objects.get(slug=slug), trigger=TrainingJob.Trigger.ADMIN
    )
    return training_job_execute(job_id=job.pk)


def _at_risk_patient(slug: str) -> Patient:
    """A followed patient without the outcome yet, with several visits."""
    codes = tuple(c.split("/", 1)[1] for c in PredictionTask.objects.get(slug=slug).config["codes"])
    for patient in Patient.objects.filter(mrn__startswith="MRN0").order_by("pk"):
        diagnosed = patient.visits.filter(diagnoses__code__startswith=codes[0]).exists()
        if not diagnosed and patient.visits.count() >= 6:
            return patient
    raise AssertionError("no suitable patient")


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


def test_no_panel_without_an_active_forecast(followed, admin_client):  # noqa: F811
    patient = Patient.objects.filter(mrn__startswith="MRN0").first()
    page = admin_client.get(reverse("patient_chart", args=[patient.pk])).content.decode()
    assert "course-panel" not in page


def test_panel_shows_risk_interval_drivers_and_similar_courses(
    followed,  # noqa: F811
    admin_client,
    settings,
):
    settings.MEDAI_FORECAST_ALGORITHMS = ["count_logistic_regression", "gru"]
    task = PredictionTask.objects.get(slug="diabetes-forecast")
    task.config = {
        **task.config,
        "pretrain_epochs": 1,
        "finetune_epochs": 2,
        "dim": 16,
        "compress": False,
    }
    task.save()
    job = _train("diabetes-forecast")
    assert job.status == TrainingJob.Status.SUCCEEDED, job.error
    version = PredictionTask.objects.get(slug="diabetes-forecast").active_version
    assert version.report["patient_index"]["patients"] > 0
    assert version.report["phenotypes"]["clusters"]
    # The CI gate: a sequence model serves only when it beats the baseline beyond CI overlap.
    selection = version.report["selected"]["selection"]
    assert selection["best_sequence_model"] == "gru"
    if selection["sequence_beats_baseline"]:
        assert version.algorithm == "gru"
    else:
        assert version.algorithm == version.report["baseline"]["name"]
    report_page = admin_client.get(reverse("version_report", args=[version.pk]))
    assert report_page.status_code == 200
    assert selection["reason"] in report_page.content.decode()
    assert admin_client.get(reverse("model_list")).status_code == 200
    assert admin_client.get(reverse("task_detail", args=["diabetes-forecast"])).status_code == 200
    patient = _at_risk_patient("diabetes-forecast")
    panel = _outlook(admin_client, patient)
    assert "Course and outlook" in panel
    assert 'data-task="diabetes-forecast"' in panel
    assert re.search(r'class="forecast-risk">\d+%<', panel)
    assert "forecast-ci" in panel
    assert '<svg class="forecast-timeline"' in panel
    assert "occlusion" in panel
    assert "similar-courses" in panel
    # Other patients appear as courses only: no MRN, name or link to their records.
    others = Patient.objects.exclude(pk=patient.pk)
    for other in others[:200]:
        assert other.mrn not in panel
        for name in (other.given_name, other.family_name):
            if name not in (patient.given_name, patient.family_name):
                assert not re.search(rf"\b{re.escape(name)}\b", panel), name
    assert "/patients/" not in panel


def test_a_diagnosed_patient_sees_no_risk_for_a_first_diagnosis(followed, admin_client):  # noqa: F811
    assert _train("diabetes-forecast").status == TrainingJob.Status.SUCCEEDED
    diagnosed = Patient.objects.filter(visits__diagnoses__code__startswith="E11").distinct().first()
    panel = _outlook(admin_client, diagnosed)
    assert "Already diagnosed" in panel
    assert "forecast-risk" not in panel.split('data-task="diabetes-forecast"')[1].split("</div>")[0]


def test_doctor_outside_the_care_team_gets_no_chart(followed, client, doctor_b):  # noqa: F811
    assert _train("diabetes-forecast").status == TrainingJob.Status.SUCCEEDED
    client.force_login(doctor_b)
    patient = Patient.objects.filter(mrn__startswith="MRN0").first()
    response = client.get(reverse("patient_chart", args=[patient.pk]))
    assert response.status_code == 404
    assert b"course-panel" not in response.content
    outlook = client.get(reverse("course_panel", args=[patient.pk]))
    assert outlook.status_code == 404
    assert b"course-panel" not in outlook.content
