"""Minimum data: no advice for a visit with neither a chief complaint nor a vital sign; the
panel and the API say what is missing."""

from __future__ import annotations

import pytest

from predictions.models import Advice, AdviceRequest
from predictions.services.advice import advice_compute
from tests.factories import PatientFactory
from visits.services import ObservationInput, visit_create, visit_update

pytestmark = pytest.mark.django_db


def compute(visit):
    request = visit.advice_requests.order_by("-id").first()
    advice = advice_compute(request_id=request.pk)
    request.refresh_from_db()
    return request, advice


def test_an_empty_visit_gets_no_advice_and_its_request_says_why(team_a, doctor_a):
    visit = visit_create(
        patient=PatientFactory(care_teams=[team_a]),
        attending=doctor_a,
        actor=doctor_a,
        observations=[ObservationInput("2345-7", 110)],  # a lab is no vital sign
    )
    request, advice = compute(visit)
    assert advice is None
    assert request.status == AdviceRequest.Status.DONE
    assert request.error == "No advice: record chief complaint or a vital sign first."
    assert not Advice.objects.filter(visit=visit).exists()


@pytest.mark.parametrize(
    ("complaint", "observations"),
    [("cough", []), ("", [ObservationInput("8867-4", 88)])],
)
def test_a_complaint_or_one_vital_sign_is_enough(team_a, doctor_a, complaint, observations):
    visit = visit_create(
        patient=PatientFactory(care_teams=[team_a]),
        attending=doctor_a,
        actor=doctor_a,
        chief_complaint=complaint,
        observations=observations,
    )
    _, advice = compute(visit)
    assert advice is not None


def test_emptying_an_advised_visit_retires_its_advice(team_a, doctor_a):
    visit = visit_create(
        patient=PatientFactory(care_teams=[team_a]),
        attending=doctor_a,
        actor=doctor_a,
        chief_complaint="cough",
    )
    _, advice = compute(visit)
    visit_update(visit=visit, actor=doctor_a, chief_complaint="")
    _, none = compute(visit)
    assert none is None
    advice.refresh_from_db()
    assert advice.superseded
