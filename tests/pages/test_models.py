"""Model pages: versions, the report with its plots, training with a live progress bar."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from predictions.models import TrainingJob

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_broker(monkeypatch):
    """Starting a job enqueues it after commit; these page tests need no worker."""
    monkeypatch.setattr("predictions.services.training._enqueue", lambda job_id: None)


def test_model_list_shows_active_and_candidates(client_a, model_version):
    from predictions.services.registry import version_activate

    version_activate(version=model_version, action="promote", reason="first", actor=None)
    html = client_a.get(reverse("model_list")).content.decode()
    assert "Differential diagnosis" in html
    assert "Coronary artery disease risk" in html
    assert reverse("version_report", args=[model_version.pk]) in html
    assert "0.910" in html
    assert "0.880–0.940" in html


def test_version_report(client_a, model_version):
    html = client_a.get(reverse("version_report", args=[model_version.pk])).content.decode()
    for text in (
        "Intended use",
        "Limitations",
        "95% CI 0.880–0.940",
        "Subgroups",
        "female",
        "Training data",
        "250",
        "Activation history",
        "Per diagnosis",
        "J18 Pneumonia",
    ):
        assert text in html, text
    assert reverse("version_plot", args=[model_version.pk, "roc"]) in html


def test_registered_plot_is_served_to_signed_in_users_only(client, client_a, model_version):
    url = reverse("version_plot", args=[model_version.pk, "roc"])
    response = client_a.get(url)
    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml"
    assert b"<svg" in b"".join(response.streaming_content)
    client.logout()
    assert client.get(url).status_code == 302


def test_unregistered_or_outside_plot_files_are_404(client_a, model_version, tmp_path):
    assert (
        client_a.get(reverse("version_plot", args=[model_version.pk, "calibration"])).status_code
        == 404
    )
    outside = tmp_path.parent / "secret.svg"
    outside.write_text("<svg/>")
    model_version.plots = {"roc": str(outside)}
    model_version.save(update_fields=["plots"])  # test setup: a tampered registry row
    assert client_a.get(reverse("version_plot", args=[model_version.pk, "roc"])).status_code == 404


def test_integration_client_cannot_see_model_pages(client, db):
    from medai_site import roles
    from tests.factories import UserFactory

    client.force_login(UserFactory(role=roles.INTEGRATION))
    assert client.get(reverse("model_list")).status_code == 403


def test_doctor_without_the_permission_cannot_start_training(client_a):
    html = client_a.get(reverse("model_list")).content.decode()
    assert "Train a new version" not in html
    assert client_a.post(reverse("training_start", args=["differential"])).status_code == 403


def test_admin_starts_training_and_watches_progress(client_admin):
    response = client_admin.post(reverse("training_start", args=["differential"]))
    job = TrainingJob.objects.get()
    assert response["Location"] == reverse("training_job", args=[job.pk])
    assert job.trigger == TrainingJob.Trigger.PAGE
    html = client_admin.get(response["Location"]).content.decode()
    assert '<progress class="training" max="100" value="0"' in html
    assert "every 2s" in html
    TrainingJob.objects.filter(pk=job.pk).update(status="running", percent=40, stage="fold 1/2")
    html = client_admin.get(reverse("training_progress", args=[job.pk])).content.decode()
    assert 'value="40"' in html
    assert "fold 1/2" in html
    assert "every 2s" in html
    TrainingJob.objects.filter(pk=job.pk).update(status="failed", error="Only 3 visits.")
    html = client_admin.get(reverse("training_progress", args=[job.pk])).content.decode()
    assert "every 2s" not in html
    assert "Only 3 visits." in html


def test_doctor_with_the_permission_can_train_and_a_second_job_is_refused(client_a, doctor_a):
    doctor_a.user_permissions.add(Permission.objects.get(codename="add_trainingjob"))
    assert client_a.post(reverse("training_start", args=["cad-risk"])).status_code == 302
    response = client_a.post(reverse("training_start", args=["cad-risk"]), follow=True)
    assert "already queued or running" in response.content.decode()
    assert TrainingJob.objects.count() == 1


def test_task_page_shows_monitoring_status_alerts_and_plots(client_a, model_version):
    """The model page carries the monitoring panel: plain-language status, open alerts, SVG plots."""
    from predictions.models import ModelAlert, MonitoringSnapshot

    task = model_version.task
    snapshot = MonitoringSnapshot.objects.create(
        task=task,
        version=model_version,
        window_days=30,
        status="act",
        input_drift={"psi_max": 0.4},
        output_drift={},
        performance={},
        alerts=[],
    )
    ModelAlert.objects.create(
        task=task,
        version=model_version,
        snapshot=snapshot,
        severity="act",
        message="Body temperature drifted (PSI 0.40)",
    )
    page = client_a.get(f"/models/tasks/{task.slug}/").content.decode()
    assert "Act — the model may be unsafe" in page
    assert "Body temperature drifted (PSI 0.40)" in page
    assert page.count("<svg") >= 3


def test_models_page_names_cross_validated_and_held_out_figures(client_a, model_version):
    """The Models page shows both figures, each labelled, as the admin list does (issue 17)."""
    from predictions.services.registry import version_activate

    version_activate(version=model_version, action="promote", reason="first", actor=None)
    html = client_a.get(reverse("model_list")).content.decode()
    assert "Cross-validated (out-of-fold, training data)" in html
    assert "Held-out (visits never used in training" in html
    assert "0.910" in html  # cross-validated
    assert "0.900" in html  # held-out


def test_admin_version_list_names_both_figures(client_admin, model_version):
    html = client_admin.get(reverse("admin:predictions_modelversion_changelist"))
    html = html.content.decode()
    assert "Cross-validated ROC AUC (out-of-fold)" in html
    assert "Held-out ROC AUC" in html
    assert "0.910" in html
    assert "0.900" in html


def test_version_report_shows_the_share_of_labels_that_came_from_advice(client_a, model_version):
    job = TrainingJob.objects.create(
        task=model_version.task,
        trigger=TrainingJob.Trigger.ADMIN,
        snapshot={
            "rows": 240,
            "label_provenance": {
                "doctor": 240,
                "advice": 10,
                "advice_share": 0.04,
                "advice_policy": "excluded",
                "advice_visit_ids": list(range(10)),
            },
        },
    )
    type(model_version).objects.filter(pk=model_version.pk).update(training_job=job)
    html = client_a.get(reverse("version_report", args=[model_version.pk])).content.decode()
    share = html[html.index('id="advice-label-share"') :]
    assert share.startswith('id="advice-label-share">4%')
    assert "10 visits whose confirmed diagnoses began as accepted advice, excluded" in share
