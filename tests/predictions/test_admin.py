"""The predictions admin: state changes only through service actions with reasons; history and
advice read-only; advice decrypted into a summary, never shown as ciphertext."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.test import RequestFactory
from django.urls import reverse

from medai_site.models import AuditEvent
from predictions.models import (
    ActivationEvent,
    Advice,
    AdviceRequest,
    Feedback,
    ModelVersion,
    PredictionTask,
    TrainingJob,
)
from predictions.services.advice import advice_compute
from predictions.services.feedback import feedback_record
from tests.factories import PatientFactory
from visits.services import ObservationInput, visit_create

from .conftest import train

pytestmark = pytest.mark.django_db

CIPHERTEXT = "gAAAAA"
READ_ONLY = (ModelVersion, TrainingJob, ActivationEvent, AdviceRequest, Advice, Feedback)


def run_action(client, model, action, ids, reason=""):
    url = reverse(f"admin:predictions_{model._meta.model_name}_changelist")
    data = {"action": action, "_selected_action": [str(i) for i in ids], "reason": reason}
    response = client.post(url, data, follow=True)
    assert response.status_code == 200
    return [str(m) for m in response.context["messages"]]


def test_kill_switch_and_training_actions_need_reasons_and_call_the_services(
    client_admin, admin_user
):
    task = PredictionTask.objects.get(slug="differential")
    messages = run_action(client_admin, PredictionTask, "switch_off", [task.pk], reason=" ")
    assert any("A reason is required" in m for m in messages)
    task.refresh_from_db()
    assert task.enabled

    messages = run_action(
        client_admin, PredictionTask, "switch_off", [task.pk], reason="drift on ward 3"
    )
    assert any("switched off" in m for m in messages)
    task.refresh_from_db()
    assert (task.enabled, task.disabled_reason) == (False, "drift on ward 3")
    event = ActivationEvent.objects.get(task=task)
    assert (event.action, event.actor, event.reason) == ("disable", admin_user, "drift on ward 3")

    run_action(client_admin, PredictionTask, "switch_on", [task.pk], reason="reviewed")
    task.refresh_from_db()
    assert task.enabled

    messages = run_action(client_admin, PredictionTask, "start_training", [task.pk])
    job = TrainingJob.objects.get(task=task)
    assert (job.trigger, job.started_by, job.status) == ("admin", admin_user, "queued")
    assert any(f"Training job {job.pk} queued" in m for m in messages)
    messages = run_action(client_admin, PredictionTask, "start_training", [task.pk])
    assert any("already queued or running" in m for m in messages)

    page = client_admin.get(reverse("admin:predictions_predictiontask_change", args=[task.pk]))
    assert page.status_code == 200
    assert "drift on ward 3" in page.content.decode()  # the recent activation history


def test_promote_and_rollback_actions_record_who_and_why_and_show_the_comparison(
    population, settings, client_admin, admin_user
):
    first = train("differential").model_version
    settings.MEDAI_PROMOTION_AUC_MARGIN = -0.5
    candidate = train("differential").model_version
    task = PredictionTask.objects.get(slug="differential")

    page = client_admin.get(reverse("admin:predictions_modelversion_change", args=[candidate.pk]))
    text = page.content.decode()
    assert "Worse than the active model: kept as a candidate" in text
    assert "below the active model" in text
    assert 'name="_save"' not in text

    messages = run_action(client_admin, ModelVersion, "promote", [candidate.pk], reason="")
    assert any("A reason is required" in m for m in messages)
    task.refresh_from_db()
    assert task.active_version == first

    run_action(client_admin, ModelVersion, "promote", [candidate.pk], reason="ward validation")
    task.refresh_from_db()
    assert task.active_version == candidate
    run_action(client_admin, PredictionTask, "roll_back", [task.pk], reason="too many alerts")
    task.refresh_from_db()
    assert task.active_version == first
    promote, rollback = ActivationEvent.objects.filter(actor=admin_user).order_by("id")
    assert (promote.action, promote.from_version, promote.to_version, promote.reason) == (
        "promote",
        first,
        candidate,
        "ward validation",
    )
    assert (rollback.action, rollback.from_version, rollback.to_version) == (
        "rollback",
        candidate,
        first,
    )


@pytest.mark.parametrize("model", READ_ONLY, ids=lambda m: m.__name__)
def test_audit_relevant_rows_cannot_be_added_changed_or_deleted_even_by_superusers(model):
    from tests.factories import UserFactory

    model_admin = admin.site._registry[model]
    request = RequestFactory().get("/")
    request.user = UserFactory(is_superuser=True, is_staff=True)
    assert model_admin.has_view_permission(request)
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request)
    assert not model_admin.has_delete_permission(request)


def test_advice_pages_show_a_decrypted_summary_never_the_ciphertext_and_are_audited(
    trained, client_admin, team_a, doctor_a, admin_user
):
    visit = visit_create(
        patient=PatientFactory(care_teams=[team_a]),
        attending=doctor_a,
        actor=doctor_a,
        chief_complaint="fever and cough",
        observations=[ObservationInput("2708-6", 85, "%")],
    )
    request = visit.advice_requests.get()
    advice = advice_compute(request_id=request.pk)
    feedback_record(
        advice=advice,
        suggestion="cad-risk",
        decision="override",
        reason="other",
        comment="known angina",
        actor=doctor_a,
    )

    for name in (
        "predictiontask",
        "modelversion",
        "trainingjob",
        "activationevent",
        "advicerequest",
        "advice",
        "feedback",
    ):
        listing = client_admin.get(reverse(f"admin:predictions_{name}_changelist"))
        assert listing.status_code == 200, name
        assert CIPHERTEXT not in listing.content.decode(), name

    page = client_admin.get(reverse("admin:predictions_advice_change", args=[advice.pk]))
    text = page.content.decode()
    assert page.status_code == 200
    assert CIPHERTEXT not in text
    assert "Oxygen saturation 85 %" in text  # the hypoxaemia alert, decrypted
    assert "coronary artery disease" in text
    assert str(trained.differential) in text
    assert AuditEvent.objects.filter(
        actor=admin_user, action="view", object_type="predictions.advice", object_id=str(advice.pk)
    ).exists()

    feedback = Feedback.objects.get()
    page = client_admin.get(reverse("admin:predictions_feedback_change", args=[feedback.pk]))
    assert "known angina" in page.content.decode()
    assert CIPHERTEXT not in page.content.decode()

    job_page = client_admin.get(
        reverse("admin:predictions_trainingjob_change", args=[trained.differential.training_job_id])
    )
    assert "other" in job_page.content.decode()  # class counts of the snapshot
    response = client_admin.post(
        reverse(
            "admin:predictions_activationevent_change", args=[ActivationEvent.objects.first().pk]
        ),
        {"reason": "rewritten"},
    )
    assert response.status_code == 403
