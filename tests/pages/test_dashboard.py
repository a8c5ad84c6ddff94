"""The dashboard: my patients, today's and open visits, advice to review, critical alerts."""

from __future__ import annotations

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_dashboard_sections(client_a, patient_a, patient_b, visit_a, doctor_b, make_advice):
    from visits.services import visit_create

    visit_create(
        patient=patient_b, attending=doctor_b, chief_complaint="other team", actor=doctor_b
    )
    make_advice(visit_a)
    html = client_a.get(reverse("dashboard")).content.decode()
    assert "Mei Lin" in html
    assert "Tom Berg" not in html
    reviews = html[html.index('id="reviews-title"') : html.index('id="alerts-title"')]
    assert reverse("visit_detail", args=[visit_a.pk]) in reviews
    assert "J18" in reviews
    alerts = html[html.index('id="alerts-title"') : html.index('id="visits-title"')]
    assert "critically low" in alerts
    visits = html[html.index('id="visits-title"') : html.index('id="patients-title"')]
    assert "Mei Lin" in visits
    assert "Open" in visits


def test_reviewed_advice_leaves_the_review_list(client_a, visit_a, make_advice):
    advice = make_advice(visit_a)
    client_a.post(
        reverse("advice_feedback", args=[visit_a.pk]),
        {"advice": advice.pk, "suggestion": "J18", "decision": "accept"},
        headers={"HX-Request": "true"},
    )
    html = client_a.get(reverse("dashboard")).content.decode()
    assert "Nothing to review" in html


def test_dashboard_query_count_is_bounded(
    client_a, patient_a, doctor_a, make_advice, django_assert_max_num_queries
):
    from visits.services import visit_create

    for i in range(15):
        make_advice(
            visit_create(
                patient=patient_a, attending=doctor_a, chief_complaint=f"v{i}", actor=doctor_a
            )
        )
    client_a.get(reverse("dashboard"))
    # 12 + 1: every page asks whether the account has an authenticator (medai_site.pages);
    # + 5: one chained audit insert for every patient shown (savepoint, lock, last hash, insert).
    with django_assert_max_num_queries(18):
        client_a.get(reverse("dashboard"))
