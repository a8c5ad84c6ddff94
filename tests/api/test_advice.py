"""Advice over the API: 202 + poll, the stored advice, feedback; all scoped like the visit."""

from __future__ import annotations

import json

import pytest

from predictions.models import Advice, AdviceRequest, Feedback
from predictions.services.advice import advice_compute
from tests.api.conftest import vitals

pytestmark = pytest.mark.django_db


@pytest.fixture
def visit_id(api_a, patient_a):
    body = {
        "chief_complaint": "fever and confusion",
        "observations": vitals(**{"8480-6": 95, "9279-1": 26, "2708-6": 86}),
    }
    return api_a.post(f"/api/v1/patients/{patient_a.pk}/visits", body, format="json").json()["id"]


def _computed(visit_id: int) -> Advice:
    for request in AdviceRequest.objects.filter(visit_id=visit_id):
        advice_compute(request_id=request.pk)
    return Advice.objects.get(visit_id=visit_id, superseded=False)


def test_post_advice_is_202_with_a_poll_url_and_the_request(api_a, visit_id):
    response = api_a.post(f"/api/v1/visits/{visit_id}/advice")
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "pending"
    assert body["poll_url"] == f"/api/v1/advice-requests/{body['id']}"
    assert response["Location"] == body["poll_url"]
    assert AdviceRequest.objects.filter(pk=body["id"], visit_id=visit_id).exists()

    polled = api_a.get(body["poll_url"]).json()
    assert polled["status"] == "pending"
    advice_compute(request_id=body["id"])
    polled = api_a.get(body["poll_url"]).json()
    assert polled["status"] == "done"
    assert polled["advice_id"] is not None


def test_get_advice_returns_the_stored_advice_like_the_page(api_a, visit_id):
    assert api_a.get(f"/api/v1/visits/{visit_id}/advice").json()["status"] == "pending"
    advice = _computed(visit_id)
    body = api_a.get(f"/api/v1/visits/{visit_id}/advice").json()
    assert body["status"] == "done"
    stored = json.loads(advice.payload)
    assert body["advice"]["id"] == advice.pk
    for key in ("diagnoses", "risks", "abstained", "alerts", "similar_cases", "models"):
        assert body["advice"][key] == stored[key]
    rules = {a["rule"] for a in body["advice"]["alerts"]}
    assert rules  # hypotension, tachypnoea, hypoxaemia and confusion raise rule alerts


def test_failed_advice_reports_why(api_a, visit_id):
    request = AdviceRequest.objects.filter(visit_id=visit_id).get()
    AdviceRequest.objects.filter(pk=request.pk).update(status="failed", error="model broken")
    body = api_a.get(f"/api/v1/visits/{visit_id}/advice").json()
    assert (body["status"], body["error"]) == ("failed", "model broken")


def test_no_advice_yet_is_status_none(api_a, patient_a, doctor_a):
    from tests.factories import VisitFactory

    visit = VisitFactory(patient=patient_a, attending=doctor_a)
    body = api_a.get(f"/api/v1/visits/{visit.pk}/advice").json()
    assert body == {
        "visit_id": visit.pk,
        "status": "none",
        "error": "",
        "missing": [],
        "request": None,
        "advice": None,
        "feedback": [],
    }


def _advice_with_suggestion(visit_id: int) -> Advice:
    """Rules-only advice carries no ranked diagnoses; give it one as a model would."""
    advice = _computed(visit_id)
    payload = json.loads(advice.payload)
    payload["diagnoses"] = [
        {
            "code": "J18",
            "display": "Pneumonia, organism unspecified",
            "probability": 0.7,
            "rank": 1,
        },
        {"code": "A41", "display": "Other sepsis", "probability": 0.2, "rank": 2},
    ]
    Advice.objects.filter(pk=advice.pk)  # payload is encrypted: save through the model
    advice.payload = json.dumps(payload)
    advice.save(update_fields=["payload"])
    return advice


def test_accept_feedback_makes_a_provisional_diagnosis_confirmed_only_on_close(api_a, visit_id):
    advice = _advice_with_suggestion(visit_id)
    response = api_a.post(
        f"/api/v1/advice/{advice.pk}/feedback",
        {"suggestion": "J18", "decision": "accept"},
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["diagnosis_id"] is not None
    visit = api_a.get(f"/api/v1/visits/{visit_id}").json()
    assert [(d["code"], d["status"], d["source"]) for d in visit["diagnoses"]] == [
        ("J18", "provisional", "advice")
    ]
    assert visit["diagnoses"][0]["suggested_by"]
    assert visit["diagnoses"][0]["confirmed_at"] is None
    again = api_a.post(
        f"/api/v1/advice/{advice.pk}/feedback",
        {"suggestion": "J18", "decision": "accept"},
        format="json",
    )
    assert again.status_code == 409
    feedback = api_a.get(f"/api/v1/visits/{visit_id}/advice").json()["feedback"]
    assert [f["suggestion"] for f in feedback] == ["J18"]
    closed = api_a.post(
        f"/api/v1/visits/{visit_id}/close",
        {"final_diagnoses": [visit["diagnoses"][0]["id"]]},
        format="json",
    )
    assert closed.status_code == 200, closed.json()
    (final,) = closed.json()["diagnoses"]
    assert (final["status"], final["source"]) == ("confirmed", "advice")
    assert final["confirmed_at"] is not None


def test_override_needs_a_reason(api_a, visit_id):
    advice = _advice_with_suggestion(visit_id)
    url = f"/api/v1/advice/{advice.pk}/feedback"
    response = api_a.post(url, {"suggestion": "A41", "decision": "override"}, format="json")
    assert response.status_code == 400
    assert "reason" in response.json()["error"]["fields"]
    response = api_a.post(
        url,
        {"suggestion": "A41", "decision": "override", "reason": "already_excluded"},
        format="json",
    )
    assert response.status_code == 201
    assert Feedback.objects.get().reason == "already_excluded"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"suggestion": "Z99", "decision": "accept"}, "suggestion"),
        ({"suggestion": "J18", "decision": "maybe"}, "decision"),
        ({"suggestion": "J18", "decision": "override", "reason": "vibes"}, "reason"),
    ],
)
def test_bad_feedback_is_400(api_a, visit_id, body, field):
    advice = _advice_with_suggestion(visit_id)
    response = api_a.post(f"/api/v1/advice/{advice.pk}/feedback", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]


def test_other_teams_advice_and_requests_are_404(api_a, api_b, visit_id):
    advice = _computed(visit_id)
    request = AdviceRequest.objects.filter(visit_id=visit_id).first()
    assert api_b.get(f"/api/v1/advice-requests/{request.pk}").status_code == 404
    response = api_b.post(
        f"/api/v1/advice/{advice.pk}/feedback",
        {"suggestion": "J18", "decision": "accept"},
        format="json",
    )
    assert response.status_code == 404
    assert api_b.get(f"/api/v1/visits/{visit_id}/advice").status_code == 404


def test_a_visit_without_complaint_or_vital_sign_is_insufficient_for_advice(
    api_a, patient_a, doctor_a
):
    from visits.services import visit_create

    visit = visit_create(patient=patient_a, attending=doctor_a, actor=doctor_a)
    state = api_a.get(f"/api/v1/visits/{visit.pk}/advice").json()
    assert state["status"] == "insufficient"
    assert state["missing"] == ["chief complaint", "a vital sign"]
    assert state["advice"] is None
