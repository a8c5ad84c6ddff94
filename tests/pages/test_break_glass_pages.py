"""Break-the-glass from the pages: the form, the banner on every page of the chart, expiry.

The service and the admin review list are tested in tests/patients/test_break_glass.py.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from patients.models import BreakGlassGrant

pytestmark = pytest.mark.django_db
REASON = "Collapsed in the waiting room, own team in theatre"
BANNER = "Emergency access — outside your care team — until"


@pytest.fixture
def visit_b(patient_b, doctor_b):
    from visits.services import ObservationInput, visit_create

    return visit_create(
        patient=patient_b,
        attending=doctor_b,
        chief_complaint="chest pain",
        observations=[ObservationInput("8867-4", "98")],
        actor=doctor_b,
        request_advice=False,
    )


def _open(client, mrn="MRN-B-0001", reason=REASON, category="emergency_treatment"):
    return client.post(reverse("break_glass"), {"mrn": mrn, "category": category, "reason": reason})


def test_search_and_404_offer_emergency_access_to_doctors(client_a, patient_b):
    search = client_a.post(reverse("patient_search"), {"q": "MRN-B-0001"}).content.decode()
    assert reverse("break_glass") in search
    assert "Emergency access (break the glass)" in search
    chart = client_a.get(reverse("patient_chart", args=[patient_b.pk]))
    assert chart.status_code == 404
    assert reverse("break_glass") in chart.content.decode()
    form = client_a.get(reverse("break_glass")).content.decode()
    assert "60 minutes" in form
    assert "recorded" in form
    assert "a reviewer checks every emergency access" in form


def test_form_errors_for_a_short_reason_and_an_unknown_mrn(client_a, patient_b):
    short = _open(client_a, reason="urgent")
    assert short.status_code == 400
    assert "Describe the emergency in your own words" in short.content.decode()
    unknown = _open(client_a, mrn="MRN-NOPE-9")
    assert unknown.status_code == 400
    assert "No patient has this MRN." in unknown.content.decode()
    assert not BreakGlassGrant.objects.exists()
    assert client_a.get(reverse("patient_chart", args=[patient_b.pk])).status_code == 404


def test_grant_opens_the_chart_with_the_banner_on_every_page_until_it_expires(
    client_a, patient_b, visit_b, doctor_a
):
    response = _open(client_a, mrn="mrn-b-0001")
    chart_url = reverse("patient_chart", args=[patient_b.pk])
    assert response.status_code == 302
    assert response["Location"] == chart_url
    grant = BreakGlassGrant.objects.get(grantee=doctor_a, patient=patient_b)
    until = timezone.localtime(grant.expires_at).strftime("%H:%M")
    for url in (
        chart_url,
        reverse("visit_detail", args=[visit_b.pk]),
        reverse("visit_edit", args=[visit_b.pk]),
        reverse("visit_new", args=[patient_b.pk]),
    ):
        page = client_a.get(url)
        assert page.status_code == 200, url
        assert f"{BANNER} {until} — recorded for review" in page.content.decode(), url
    panel = client_a.get(reverse("advice_panel", args=[visit_b.pk]))
    assert f"Emergency access until {until}" in panel.content.decode()

    BreakGlassGrant.objects.filter(pk=grant.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert client_a.get(chart_url).status_code == 404
    assert client_a.get(reverse("visit_detail", args=[visit_b.pk])).status_code == 404


def test_own_patients_show_no_emergency_banner(client_a, patient_a):
    page = client_a.get(reverse("patient_chart", args=[patient_a.pk])).content.decode()
    assert BANNER not in page


def test_only_doctors_break_the_glass(client_admin, patient_b):
    assert client_admin.get(reverse("break_glass")).status_code == 403
    page = client_admin.get(reverse("patient_chart", args=[patient_b.pk])).content.decode()
    assert BANNER not in page  # admins read every chart (audited) without a grant
