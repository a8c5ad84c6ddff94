"""The phenotypes page: admins only; cluster sizes, defining codes and outcomes, no patients."""

from __future__ import annotations

import pytest
from django.urls import reverse

from patients.models import Patient
from predictions.models import PredictionTask, TrainingJob
from predictions.services.training import training_job_execute
from tests.predictions.test_forecast_training import followed  # noqa: F401 - fixture


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


def test_doctors_may_not_see_the_phenotypes_page(client, doctor_a):
    client.force_login(doctor_a)
    assert client.get(reverse("phenotypes")).status_code == 403


def test_page_without_models_says_so(admin_client):
    page = admin_client.get(reverse("phenotypes")).content.decode()
    assert 'data-task="ckd-forecast"' in page
    assert "No active version yet." in page


def test_page_shows_clusters_of_the_active_forecast(followed, admin_client, settings):  # noqa: F811
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
    job = TrainingJob.objects.create(task=task, trigger=TrainingJob.Trigger.ADMIN)
    assert training_job_execute(job_id=job.pk).status == TrainingJob.Status.SUCCEEDED
    phenotypes = PredictionTask.objects.get(slug="diabetes-forecast").active_version.report[
        "phenotypes"
    ]
    page = admin_client.get(reverse("phenotypes")).content.decode()
    section = page[page.index('data-task="diabetes-forecast"') :]
    section = section[: section.index("</section>")]
    sizes = [int(s.split("<")[0]) for s in section.split('class="cluster-size">')[1:]]
    assert sorted(sizes) == sorted(c["size"] for c in phenotypes["clusters"])
    assert (
        sum(sizes)
        == PredictionTask.objects.get(slug="diabetes-forecast").active_version.report[
            "patient_index"
        ]["patients"]
    )
    assert "%" in section  # outcome rate per cluster
    assert "ICD10/" in section or "LOINC/" in section  # defining codes
    for patient in Patient.objects.all()[:100]:
        assert patient.mrn not in section
    assert "subject_ids" not in str(phenotypes)  # the report keeps no membership
