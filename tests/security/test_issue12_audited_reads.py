"""Issue 12, findings 2 and 6: every read of advice and of patient data in the admin leaves an
audit record; similar cases name no other patient. Each test fails on the main before the fix."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.urls import reverse
from rest_framework.test import APIClient

from medai_site.api_auth import api_token_create
from medai_site.audit import audit_verify
from medai_site.audit_report import audit_events_for
from medai_site.models import AuditEvent
from predictions.models import Advice, AdviceRequest
from tests.factories import PatientFactory, VisitFactory

pytestmark = pytest.mark.django_db
HX = {"HX-Request": "true"}


def _advice_for(visit, *, other_visit_id: int = 987654) -> Advice:
    """Advice as a version-1 worker stored it: the similar case names another patient's visit."""
    payload = {
        "visit_id": visit.pk,
        "computed_at": "2026-01-01T00:00:00+00:00",
        "diagnoses": [{"code": "J18", "display": "Pneumonia", "probability": 0.6, "rank": 1}],
        "alerts": [{"rule": "hypoxaemia", "severity": "high", "message": "SpO2 85 % quoted"}],
        "similar_cases": [
            {
                "visit_id": other_visit_id,
                "age": 64,
                "sex": "male",
                "visit_type": "inpatient",
                "year": 2025,
                "diagnoses": ["J18.9 Pneumonia, unspecified"],
                "distance": 0.1,
            }
        ],
    }
    advice = Advice.objects.create(
        visit=visit, input_hash="h" * 64, models_key="differential:1", payload=json.dumps(payload)
    )
    AdviceRequest.objects.filter(visit=visit).update(status="done", advice=advice)
    return advice


def _advice_views(advice: Advice) -> int:
    return AuditEvent.objects.filter(
        action=AuditEvent.Action.VIEW, object_type="predictions.advice", object_id=str(advice.pk)
    ).count()


def _bearer(user, scopes) -> APIClient:
    client = APIClient()
    _, secret = api_token_create(user=user, name="probe", scopes=scopes, days=1, actor=user)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


@pytest.fixture
def visit_a(patient_a, doctor_a):
    return VisitFactory(patient=patient_a, attending=doctor_a)


# --- finding 2: reads of advice -----------------------------------------------------------------


def test_finding2_reading_advice_on_the_visit_page_is_audited(client, doctor_a, visit_a):
    advice = _advice_for(visit_a)
    client.force_login(doctor_a)
    assert client.get(reverse("visit_detail", args=[visit_a.pk])).status_code == 200
    assert _advice_views(advice) == 1
    event = AuditEvent.objects.get(object_type="predictions.advice")
    assert (event.actor, event.patient_id, event.interface) == (
        doctor_a,
        visit_a.patient_id,
        "page",
    )


def test_finding2_advice_polls_collapse_to_one_record_per_session_never_zero(
    client, doctor_a, visit_a
):
    advice = _advice_for(visit_a)
    client.force_login(doctor_a)
    for _ in range(3):
        response = client.get(reverse("advice_panel", args=[visit_a.pk]), headers=HX)
        assert response.status_code == 200
        assert "SpO2 85 % quoted" in response.content.decode()
    assert _advice_views(advice) == 1
    client.logout()
    client.force_login(doctor_a)  # a new session records its own first reading
    client.get(reverse("advice_panel", args=[visit_a.pk]), headers=HX)
    assert _advice_views(advice) == 2


def test_finding2_reading_advice_through_the_api_is_audited(doctor_a, visit_a):
    advice = _advice_for(visit_a)
    api = _bearer(doctor_a, ["patients:read"])
    for expected in (1, 2):
        assert api.get(f"/api/v1/visits/{visit_a.pk}/advice").status_code == 200
        assert _advice_views(advice) == expected
    assert AuditEvent.objects.filter(object_type="predictions.advice").last().api_token_id


def test_finding2_feedback_on_advice_is_audited_on_the_page_and_the_api(client, doctor_a, visit_a):
    advice = _advice_for(visit_a)
    client.force_login(doctor_a)
    client.post(
        reverse("advice_feedback", args=[visit_a.pk]),
        {"advice": advice.pk, "suggestion": "J18", "decision": "override", "reason": "other"},
        headers=HX,
    )
    api = _bearer(doctor_a, ["advice:request", "visits:write"])
    other = _advice_for(VisitFactory(patient=visit_a.patient, attending=doctor_a))
    response = api.post(
        f"/api/v1/advice/{other.pk}/feedback",
        {"suggestion": "J18", "decision": "override", "reason": "other"},
        format="json",
    )
    assert response.status_code == 201, response.content
    created = AuditEvent.objects.filter(
        action=AuditEvent.Action.CREATE, object_type="predictions.feedback"
    ).order_by("id")
    assert [(e.actor, e.patient_id, e.interface) for e in created] == [
        (doctor_a, visit_a.patient_id, "page"),
        (doctor_a, visit_a.patient_id, "api"),
    ]


# --- finding 2: the admin ---------------------------------------------------------------------


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


def test_finding2_admin_list_records_one_event_with_the_ids_it_showed(
    admin_client, admin_user, team_a
):
    patients = [PatientFactory(care_teams=[team_a]) for _ in range(3)]
    before = AuditEvent.objects.count()
    assert admin_client.get("/admin/patients/patient/").status_code == 200
    written = list(AuditEvent.objects.order_by("id")[before:])
    assert [(e.action, e.actor, e.interface) for e in written] == [("list", admin_user, "admin")]
    assert written[0].patient_ids == sorted(p.pk for p in patients)
    # Still reported per patient, and part of the keyed chain.
    for patient in patients:
        assert written[0] in audit_events_for(mrn=patient.mrn)
        assert written[0] in audit_events_for(patient=patient.pk)
    assert audit_verify()[1] == []


def test_finding2_list_ids_are_part_of_the_keyed_chain(admin_client, team_a):
    patients = [PatientFactory(care_teams=[team_a]) for _ in range(2)]
    admin_client.get("/admin/patients/patient/")
    event = AuditEvent.objects.get(action="list")
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("ALTER TABLE medai_site_auditevent DISABLE TRIGGER USER")
        cursor.execute(
            "UPDATE medai_site_auditevent SET patient_ids = %s WHERE id = %s",
            [json.dumps([patients[0].pk]), event.pk],  # hide that the second was shown
        )
        cursor.execute("ALTER TABLE medai_site_auditevent ENABLE TRIGGER USER")
    problems = audit_verify()[1]
    assert [(p.event_id, "altered" in p.problem) for p in problems] == [(event.pk, True)]


@pytest.mark.parametrize(
    "model", ["allergy", "breakglassgrant", "visit", "observation", "diagnosis", "advice"]
)
def test_finding2_admin_lists_and_pages_of_patient_data_are_audited(
    admin_client, doctor_a, visit_a, model
):
    from patients.models import Allergy
    from tests.factories import BreakGlassGrantFactory, DiagnosisFactory, ObservationFactory

    objects = {
        "allergy": lambda: Allergy.objects.filter(patient=visit_a.patient).first(),
        "breakglassgrant": lambda: BreakGlassGrantFactory(patient=visit_a.patient),
        "visit": lambda: visit_a,
        "observation": lambda: ObservationFactory(visit=visit_a),
        "diagnosis": lambda: DiagnosisFactory(visit=visit_a),
        "advice": lambda: _advice_for(visit_a),
    }
    obj = objects[model]()
    app = obj._meta.app_label
    before = AuditEvent.objects.count()
    assert admin_client.get(f"/admin/{app}/{model}/").status_code == 200
    assert admin_client.get(f"/admin/{app}/{model}/{obj.pk}/change/").status_code == 200
    written = list(AuditEvent.objects.order_by("id")[before:])
    label = f"{app}.{model}"
    assert [(e.action, e.object_type) for e in written] == [("list", label), ("view", label)]
    assert written[0].patient_ids == [visit_a.patient_id]
    assert (written[1].object_id, written[1].patient_id) == (str(obj.pk), visit_a.patient_id)


def test_finding2_admin_autocomplete_is_audited(admin_client, admin_user, patient_a):
    response = admin_client.get(
        "/admin/autocomplete/",
        {
            "app_label": "patients",
            "model_name": "allergy",
            "field_name": "patient",
            "term": patient_a.mrn,
        },
    )
    assert response.status_code == 200
    assert [r["id"] for r in response.json()["results"]] == [str(patient_a.pk)]
    event = AuditEvent.objects.filter(action="list").get()
    assert (event.actor, event.object_id, event.patient_ids) == (
        admin_user,
        "autocomplete",
        [patient_a.pk],
    )


def test_finding2_admin_patient_page_links_its_audit_report_and_the_list_reads(
    admin_client, patient_a
):
    page = admin_client.get(f"/admin/patients/patient/{patient_a.pk}/change/").content.decode()
    link = f"{reverse('admin:medai_site_auditevent_report')}?patient={patient_a.pk}"
    assert link in page
    report = admin_client.get(link)
    assert report.status_code == 200
    assert report.context["count"] >= 1
    assert patient_a.mrn in report.content.decode()
    listing = admin_client.get("/admin/medai_site/auditevent/").content.decode()
    assert patient_a.mrn in listing  # readable: the MRN, not only the id


# --- finding 6: similar cases ------------------------------------------------------------------


def test_finding6_similar_cases_in_the_api_carry_no_identifier_of_another_patient(
    doctor_a, visit_a
):
    _advice_for(visit_a, other_visit_id=987654)
    body = _bearer(doctor_a, ["patients:read"]).get(f"/api/v1/visits/{visit_a.pk}/advice").json()
    (case,) = body["advice"]["similar_cases"]
    assert case == {
        "age_band": "60-69",
        "sex": "male",
        "year": 2025,
        "diagnoses": ["J18.9 Pneumonia, unspecified"],
        "outcome": "inpatient",
    }
    assert "987654" not in json.dumps(body)


def test_finding6_the_admin_advice_page_shows_no_identifier_of_another_patient(
    admin_client, visit_a
):
    advice = _advice_for(visit_a, other_visit_id=987654)
    page = admin_client.get(f"/admin/predictions/advice/{advice.pk}/change/").content.decode()
    assert "J18.9 Pneumonia, unspecified" in page
    assert "987654" not in page


# --- probes beyond the findings ------------------------------------------------------------------


def test_probe_the_audit_report_page_is_itself_a_recorded_read(admin_client, admin_user, patient_a):
    """The report names patients by MRN: showing it is recorded like a list (it was not)."""
    before = AuditEvent.objects.count()
    admin_client.get(reverse("admin:medai_site_auditevent_report"), {"patient": patient_a.pk})
    written = AuditEvent.objects.order_by("id")[before:]
    assert [(e.action, e.object_id, e.patient_ids, e.actor) for e in written] == [
        ("list", "report", [patient_a.pk], admin_user)
    ]


def test_probe_patient_ids_on_a_version_2_record_are_reported(admin_client, team_a):
    """Downgrading a list record to chain version 2 (whose hash does not cover the ids) and
    re-hashing it with the key still shows: ids on a version-2 record are a problem."""
    from django.conf import settings

    from medai_site.audit import keyed_hash

    PatientFactory(care_teams=[team_a])
    admin_client.get("/admin/patients/patient/")
    event = AuditEvent.objects.get(action="list")
    event.chain_version = 2
    rehashed = keyed_hash(event.prev_hash, event, settings.AUDIT_CHAIN_KEYS[event.key_id])
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("ALTER TABLE medai_site_auditevent DISABLE TRIGGER USER")
        cursor.execute(
            "UPDATE medai_site_auditevent SET chain_version = 2, hash = %s WHERE id = %s",
            [rehashed, event.pk],
        )
        cursor.execute("ALTER TABLE medai_site_auditevent ENABLE TRIGGER USER")
    problems = [p.problem for p in audit_verify()[1] if p.event_id == event.pk]
    assert any("does not cover them" in p for p in problems), problems
