"""The audit trail in the admin is read-only for everyone, superusers included."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.test import RequestFactory
from django.urls import reverse

from medai_site.audit import audit_record
from medai_site.models import AuditEvent
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def event(admin_user):
    return audit_record(actor=admin_user, action=AuditEvent.Action.VIEW, patient_id=42)


def test_audit_events_are_listed_and_searchable_by_patient_id(client, admin_user, event):
    client.force_login(admin_user)
    response = client.get(reverse("admin:medai_site_auditevent_changelist"), {"q": "42"})
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [event]
    assert (
        client.get(reverse("admin:medai_site_auditevent_changelist"), {"q": "abc"}).status_code
        == 200
    )


def test_audit_event_admin_grants_no_add_change_or_delete_even_to_superusers(event):
    model_admin = admin.site._registry[AuditEvent]
    request = RequestFactory().get("/")
    request.user = UserFactory(is_superuser=True, is_staff=True)
    assert model_admin.has_view_permission(request, event)
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request, event)
    assert not model_admin.has_delete_permission(request, event)


def test_audit_event_change_page_is_view_only(client, admin_user, event):
    client.force_login(admin_user)
    url = reverse("admin:medai_site_auditevent_change", args=[event.pk])
    page = client.get(url)
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert client.post(url, {"action": "export"}).status_code == 403
    assert client.get(reverse("admin:medai_site_auditevent_add")).status_code == 403
    assert (
        client.post(
            reverse("admin:medai_site_auditevent_delete", args=[event.pk]), {"post": "yes"}
        ).status_code
        == 403
    )
    event.refresh_from_db()
    assert event.action == AuditEvent.Action.VIEW


def test_every_patients_and_visits_model_is_registered():
    from django.apps import apps

    for label in ("patients", "visits"):
        for model in apps.get_app_config(label).get_models():
            assert admin.site.is_registered(model), model
