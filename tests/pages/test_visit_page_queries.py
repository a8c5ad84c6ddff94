"""The visit page's cost does not grow with the patient's history: a bounded number of SQL
queries, and past visits' notes are not decrypted to draw the problem list (issue 17 point 6:
the page is most of save -> advice visible)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from medai_site import encrypted_fields

pytestmark = pytest.mark.django_db

# Measured with advice stored: session, user, roles, authenticator (4); the visit, its
# observations, diagnoses and allergies (4); the visit's VIEW audit (lock, last hash, insert:
# 3-5 with its savepoint); the problem list (1); the newest advice request, the advice and its
# feedback (3); the advice's VIEW audit (3-5); the session's save (1-3). A few to spare, not a
# budget for a new N+1.
VISIT_PAGE_MAX_QUERIES = 27


def _history(patient, doctor, visits: int) -> None:
    """Past visits with long notes, each with a confirmed diagnosis."""
    from visits.models import Diagnosis
    from visits.services import diagnosis_add, visit_create

    start = timezone.now() - dt.timedelta(days=400)
    for i in range(visits):
        past = visit_create(
            patient=patient,
            attending=doctor,
            start=start + dt.timedelta(days=30 * i),
            chief_complaint=f"past complaint {i}",
            history_present_illness="a long history " * 40,
            actor=doctor,
            request_advice=False,
        )
        diagnosis_add(
            visit=past,
            code="I10" if i % 2 else "E11.9",
            status=Diagnosis.Status.CONFIRMED,
            actor=doctor,
        )


def _page(client, visit) -> tuple[int, int, str]:
    """(queries, decryptions, html) of one visit page."""
    decrypted = []
    real = encrypted_fields.decrypt_token

    def counting(token):
        decrypted.append(1)
        return real(token)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(encrypted_fields, "decrypt_token", counting)
        with CaptureQueriesContext(connection) as queries:
            response = client.get(reverse("visit_detail", args=[visit.pk]))
    assert response.status_code == 200
    return len(queries), len(decrypted), response.content.decode()


def test_visit_page_queries_and_decryption_do_not_grow_with_history(
    client_a, patient_a, doctor_a, visit_a, make_advice
):
    make_advice(visit_a)
    client_a.get(reverse("visit_detail", args=[visit_a.pk]))  # the session's first write
    _history(patient_a, doctor_a, 2)
    few_queries, few_decrypted, html = _page(client_a, visit_a)
    assert "J18" in html  # the advice is on the page as rendered
    assert "btn-accept" in html
    assert "past complaint" not in html
    _history(patient_a, doctor_a, 8)
    queries, decrypted, html = _page(client_a, visit_a)
    assert html.count('class="code mono">I10<') == 1  # folded: one line per code
    assert queries <= VISIT_PAGE_MAX_QUERIES, queries
    assert queries == few_queries  # no query per past visit or per diagnosis
    assert decrypted == few_decrypted  # no past visit's notes decrypted


def test_pending_visit_page_reads_the_visit_once(client_a, visit_a):
    """The advice panel uses the visit the page fetched: one read of the visit row."""
    client_a.get(reverse("visit_detail", args=[visit_a.pk]))
    with CaptureQueriesContext(connection) as queries:
        html = client_a.get(reverse("visit_detail", args=[visit_a.pk])).content.decode()
    assert "Computing advice" in html or "advice-delayed" in html
    visit_reads = [q["sql"] for q in queries if q["sql"].startswith('SELECT "visits_visit"."id"')]
    assert len(visit_reads) == 1, visit_reads
    assert len(queries) <= VISIT_PAGE_MAX_QUERIES
