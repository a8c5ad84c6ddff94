"""The visit admin: decrypted text, read-only inlines, writes via services, closed visits frozen."""

from __future__ import annotations

import pytest
from django.urls import reverse

from medai_site.models import AuditEvent
from predictions.models import AdviceRequest
from tests.factories import PatientFactory
from visits.models import Diagnosis, Visit
from visits.services import ObservationInput, diagnosis_add, visit_close, visit_create

pytestmark = pytest.mark.django_db

CIPHERTEXT = "gAAAAA"


@pytest.fixture
def visit(team_a, doctor_a):
    patient = PatientFactory(
        mrn="VIS-0001", given_name="Ada", family_name="Lovelace", care_teams=[team_a]
    )
    visit = visit_create(
        patient=patient,
        attending=doctor_a,
        actor=doctor_a,
        request_advice=False,
        chief_complaint="crushing chest pain",
        plan="serial ECGs",
        observations=[
            ObservationInput("8310-5", 101.3, "[degF]"),
            ObservationInput("2708-6", 85, "%"),
        ],
    )
    diagnosis_add(visit=visit, code="I21.9", actor=doctor_a)
    return visit


def change_data(visit, **overrides):
    data = {
        "start_0": visit.start.strftime("%Y-%m-%d"),
        "start_1": visit.start.strftime("%H:%M:%S"),
        "end_0": "",
        "end_1": "",
        "visit_type": visit.visit_type,
        "chief_complaint": visit.chief_complaint,
        "history_present_illness": "",
        "past_history": "",
        "allergy_history": "",
        "physical_exam": "",
        "plan": visit.plan,
        "_save": "Save",
    }
    for prefix, total in (
        ("observations", visit.observations.count()),
        ("diagnoses", visit.diagnoses.count()),
    ):
        data.update(
            {
                f"{prefix}-TOTAL_FORMS": str(total),
                f"{prefix}-INITIAL_FORMS": str(total),
                f"{prefix}-MIN_NUM_FORMS": "0",
                f"{prefix}-MAX_NUM_FORMS": "1000",
            }
        )
    data.update(overrides)
    return data


def test_visit_changelist_and_change_page_render_without_ciphertext(client_admin, visit):
    listing = client_admin.get(reverse("admin:visits_visit_changelist"))
    assert listing.status_code == 200
    assert "VIS-0001" in listing.content.decode()
    page = client_admin.get(reverse("admin:visits_visit_change", args=[visit.pk]))
    html = page.content.decode()
    assert page.status_code == 200
    for text in ("crushing chest pain", "serial ECGs", "I21.9", "38.5", "[degF]", "Critically low"):
        assert text in html
    assert CIPHERTEXT not in html


def test_visit_admin_search_finds_visits_by_the_patients_name(client_admin, visit, team_b):
    # An MRN whose number cannot equal the visit's id: digits alone also find an MRN's number.
    other = PatientFactory(
        given_name="Boris", family_name="Baker", mrn="MRN-987654321", care_teams=[team_b]
    )
    visit_create(patient=other, attending=visit.attending, actor=None, request_advice=False)
    for query in ("Ada Lovelace", "vis-0001", str(visit.pk)):
        response = client_admin.get(reverse("admin:visits_visit_changelist"), {"q": query})
        assert list(response.context["cl"].result_list) == [visit], query


def test_visit_admin_change_goes_through_the_service(
    client_admin, admin_user, visit, django_capture_on_commit_callbacks
):
    url = reverse("admin:visits_visit_change", args=[visit.pk])
    with django_capture_on_commit_callbacks(execute=False):
        response = client_admin.post(url, change_data(visit, plan="admit to CCU"))
    assert response.status_code == 302, response.content.decode()[:3000]
    visit.refresh_from_db()
    assert visit.plan == "admit to CCU"
    assert visit.observations.count() == 2
    assert visit.diagnoses.count() == 1
    event = AuditEvent.objects.get(action=AuditEvent.Action.UPDATE, object_type="visits.visit")
    assert (event.actor, event.interface) == (admin_user, AuditEvent.Interface.ADMIN)
    assert AdviceRequest.objects.filter(visit=visit).exists()  # saving a visit asks for advice


def test_visit_admin_add_goes_through_the_service(
    client_admin, admin_user, visit, doctor_a, django_capture_on_commit_callbacks
):
    data = change_data(
        visit, patient=visit.patient.pk, attending=doctor_a.pk, chief_complaint="rash"
    )
    for prefix in ("observations", "diagnoses"):
        data[f"{prefix}-TOTAL_FORMS"] = data[f"{prefix}-INITIAL_FORMS"] = "0"
    with django_capture_on_commit_callbacks(execute=False):  # advice dispatch is not ours here
        response = client_admin.post(reverse("admin:visits_visit_add"), data)
    assert response.status_code == 302, response.content.decode()[:3000]
    created = Visit.objects.exclude(pk=visit.pk).get()
    assert created.chief_complaint == "rash"
    assert created.age_years == visit.age_years  # derived by visit_create from the birth date
    event = AuditEvent.objects.get(action=AuditEvent.Action.CREATE, object_id=str(created.pk))
    assert (event.actor, event.interface) == (admin_user, AuditEvent.Interface.ADMIN)


def test_visit_change_page_view_is_audited(client_admin, admin_user, visit):
    client_admin.get(reverse("admin:visits_visit_change", args=[visit.pk]))
    event = AuditEvent.objects.get(action=AuditEvent.Action.VIEW, object_id=str(visit.pk))
    assert (event.actor, event.interface) == (admin_user, AuditEvent.Interface.ADMIN)


def test_a_closed_visit_is_read_only_in_the_admin(
    client_admin, visit, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        visit_close(visit=visit, actor=None)
    url = reverse("admin:visits_visit_change", args=[visit.pk])
    page = client_admin.get(url)
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert client_admin.post(url, change_data(visit, plan="rewritten")).status_code == 403
    visit.refresh_from_db()
    assert visit.plan == "serial ECGs"


def test_close_action_closes_open_visits_through_the_service(
    client_admin, visit, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        response = client_admin.post(
            reverse("admin:visits_visit_changelist"),
            {"action": "close_visits", "_selected_action": [visit.pk]},
        )
    assert response.status_code == 302
    visit.refresh_from_db()
    assert visit.status == Visit.Status.CLOSED
    assert visit.end is not None


def test_diagnosis_admin_changes_status_only_through_the_service(client_admin, visit):
    diagnosis = visit.diagnoses.get()
    url = reverse("admin:visits_diagnosis_change", args=[diagnosis.pk])
    assert (
        client_admin.post(
            url, {"status": "confirmed", "code": "J18.9", "_save": "Save"}
        ).status_code
        == 302
    )
    diagnosis.refresh_from_db()
    assert (diagnosis.status, diagnosis.code) == (Diagnosis.Status.CONFIRMED, "I21.9")


def test_diagnosis_admin_refuses_a_second_standing_primary(client_admin, visit):
    first = visit.diagnoses.get()
    client_admin.post(
        reverse("admin:visits_diagnosis_change", args=[first.pk]), {"status": "refuted"}
    )
    diagnosis_add(visit=visit, code="I20.0", actor=None)
    response = client_admin.post(
        reverse("admin:visits_diagnosis_change", args=[first.pk]), {"status": "confirmed"}
    )
    assert response.status_code == 200  # the form shows the error instead of a server error
    first.refresh_from_db()
    assert first.status == Diagnosis.Status.REFUTED


def test_observation_diagnosis_and_catalogue_admins_render(client_admin, visit):
    observation = visit.observations.first()
    for url in (
        reverse("admin:visits_observation_changelist"),
        reverse("admin:visits_observation_change", args=[observation.pk]),
        reverse("admin:visits_diagnosis_changelist"),
        reverse("admin:visits_observationdefinition_changelist"),
        reverse("admin:index"),
    ):
        response = client_admin.get(url)
        assert response.status_code == 200, url
        assert CIPHERTEXT not in response.content.decode()
    assert client_admin.get(reverse("admin:visits_observation_add")).status_code == 403
    assert client_admin.get(reverse("admin:visits_diagnosis_add")).status_code == 403
