"""The patient admin: decrypted PHI, never ciphertext; blind-index search; writes via services."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from medai_site.blind_index import blind_index
from medai_site.models import AuditEvent
from medai_site.two_factor import totp_device_create
from patients.models import Allergy, CareTeam, Patient
from patients.services import AllergyInput, patient_create
from tests.factories import DoctorFactory, PatientFactory

pytestmark = pytest.mark.django_db

CIPHERTEXT = "gAAAAA"  # the prefix of every Fernet token


@pytest.fixture
def ada(team_a):
    return patient_create(
        mrn="ADM-0001",
        sex="female",
        given_name="Ada",
        family_name="Lovelace",
        birth_date=dt.date(1970, 12, 10),
        phone="+44 20 7946 0001",
        national_id="AB 12 34 56 C",
        address="12 St James's Square",
        care_teams=[team_a],
        allergies=[AllergyInput(substance="penicillin", reaction="hives")],
        actor=None,
    )


@pytest.fixture
def boris(team_b):
    return PatientFactory(
        mrn="ADM-0002", given_name="Boris", family_name="Baker", care_teams=[team_b]
    )


def changelist(client, **params):
    return client.get(reverse("admin:patients_patient_changelist"), params)


def form_data(patient, **overrides):
    """Every field of the patient change form, as the browser would post it."""
    data = {
        "mrn": patient.mrn,
        "sex": patient.sex,
        "given_name": patient.given_name,
        "family_name": patient.family_name,
        "birth_date": patient.birth_date.isoformat(),
        "phone": patient.phone,
        "email": patient.email,
        "address": patient.address,
        "national_id": patient.national_id,
        "emergency_contact": patient.emergency_contact,
        "care_teams": [t.pk for t in patient.care_teams.all()] if patient.pk else [],
        "allergies-TOTAL_FORMS": "0",
        "allergies-INITIAL_FORMS": "0",
        "allergies-MIN_NUM_FORMS": "0",
        "allergies-MAX_NUM_FORMS": "1000",
        "_save": "Save",
    }
    data.update(overrides)
    return data


def test_changelist_shows_decrypted_names_and_care_teams_and_no_ciphertext(
    client_admin, ada, boris
):
    response = changelist(client_admin)
    html = response.content.decode()
    assert response.status_code == 200
    for text in ("ADM-0001", "Ada Lovelace", "Boris Baker", "Cardiology", "Respiratory", "Female"):
        assert text in html
    assert CIPHERTEXT not in html


def test_change_page_shows_decrypted_phi_and_no_ciphertext(client_admin, ada):
    response = client_admin.get(reverse("admin:patients_patient_change", args=[ada.pk]))
    html = response.content.decode()
    assert response.status_code == 200
    for text in (
        "Lovelace",
        "+44 20 7946 0001",
        "AB 12 34 56 C",
        "1970-12-10",
        "St James",
        "hives",
    ):
        assert text in html
    assert CIPHERTEXT not in html
    view = AuditEvent.objects.get(action=AuditEvent.Action.VIEW, patient_id=ada.pk)
    assert view.interface == AuditEvent.Interface.ADMIN


@pytest.mark.parametrize(
    "query", ["Ada Lovelace", "lovelace", "+44 20 7946 0001", "ab123456c", "adm-0001"]
)
def test_admin_search_goes_through_the_blind_index(client_admin, ada, boris, query):
    response = changelist(client_admin, q=query)
    patients = list(response.context["cl"].result_list)
    assert patients == [ada]
    hit = AuditEvent.objects.filter(action=AuditEvent.Action.SEARCH_HIT, patient_id=ada.pk).first()
    assert hit is None or hit.interface == AuditEvent.Interface.ADMIN  # MRN hits need no decryption


def test_admin_search_respects_filters(client_admin, ada, boris, team_b):
    response = changelist(client_admin, q="Ada Lovelace", care_teams__id__exact=team_b.pk)
    assert list(response.context["cl"].result_list) == []


def test_staff_doctor_sees_only_their_care_teams_patients_in_the_admin(
    client, ada, boris, doctor_a
):
    doctor_a.is_staff = True
    doctor_a.save()
    totp_device_create(user=doctor_a, confirmed=True)  # the admin needs a second factor
    doctor_a.user_permissions.add(Permission.objects.get(codename="view_patient"))
    client.force_login(doctor_a)
    assert list(changelist(client).context["cl"].result_list) == [ada]
    assert list(changelist(client, q="Boris Baker").context["cl"].result_list) == []
    response = client.get(reverse("admin:patients_patient_change", args=[boris.pk]))
    assert response.status_code == 302  # "does not exist", like any other missing object


def test_admin_change_goes_through_the_service_and_keeps_the_index_current(
    client_admin, admin_user, ada
):
    url = reverse("admin:patients_patient_change", args=[ada.pk])
    response = client_admin.post(url, form_data(ada, family_name="King", phone="020 7946 9999"))
    assert response.status_code == 302, response.content.decode()[:2000]
    stored = Patient.objects.get(pk=ada.pk)
    assert (stored.family_name, stored.phone) == ("King", "020 7946 9999")
    assert stored.name_bidx == blind_index("Ada King", "name")
    assert stored.family_name_bidx == blind_index("King", "name")
    assert stored.phone_bidx == blind_index("02079469999", "phone")
    assert list(changelist(client_admin, q="Ada King").context["cl"].result_list) == [stored]
    assert list(changelist(client_admin, q="Lovelace").context["cl"].result_list) == []
    update = AuditEvent.objects.get(action=AuditEvent.Action.UPDATE, patient_id=ada.pk)
    assert (update.actor, update.interface) == (admin_user, AuditEvent.Interface.ADMIN)


def test_admin_add_goes_through_the_service(client_admin, admin_user, team_a):
    blank = Patient(
        mrn="ADM-0003",
        sex="male",
        given_name="Charles",
        family_name="Babbage",
        birth_date=dt.date(1950, 12, 26),
        phone="+44 20 7946 0003",
    )
    data = form_data(blank, care_teams=[team_a.pk])
    response = client_admin.post(reverse("admin:patients_patient_add"), data)
    assert response.status_code == 302, response.content.decode()[:2000]
    created = Patient.objects.get(mrn="ADM-0003")
    assert created.created_by == admin_user  # set by patient_create, not a form field
    assert created.name_bidx == blind_index("Charles Babbage", "name")
    assert list(created.care_teams.all()) == [team_a]
    event = AuditEvent.objects.get(action=AuditEvent.Action.CREATE, patient_id=created.pk)
    assert event.interface == AuditEvent.Interface.ADMIN


def test_admin_form_reports_the_services_birth_date_rule(client_admin, ada):
    url = reverse("admin:patients_patient_change", args=[ada.pk])
    response = client_admin.post(url, form_data(ada, birth_date="2999-01-01"))
    assert response.status_code == 200
    assert "Date of birth is in the future." in response.content.decode()
    assert Patient.objects.get(pk=ada.pk).birth_date == dt.date(1970, 12, 10)


def test_audit_relevant_fields_are_read_only(client_admin, admin_user, ada):
    url = reverse("admin:patients_patient_change", args=[ada.pk])
    forged = "f" * 64
    client_admin.post(
        url,
        form_data(
            ada, created_by=admin_user.pk, name_bidx=forged, created_at="2000-01-01 00:00:00"
        ),
    )
    stored = Patient.objects.get(pk=ada.pk)
    assert stored.created_by is None
    assert stored.name_bidx == blind_index("Ada Lovelace", "name")
    assert stored.created_at.year != 2000


def test_allergy_and_care_team_admins_render(client_admin, ada):
    allergy = Allergy.objects.get(patient=ada)
    for url in (
        reverse("admin:patients_allergy_changelist"),
        reverse("admin:patients_allergy_change", args=[allergy.pk]),
        reverse("admin:patients_careteam_changelist"),
        reverse("admin:patients_careteam_change", args=[CareTeam.objects.first().pk]),
    ):
        response = client_admin.get(url)
        assert response.status_code == 200, url
        assert CIPHERTEXT not in response.content.decode()


def test_allergy_admin_adds_through_the_service(client_admin, ada):
    response = client_admin.post(
        reverse("admin:patients_allergy_add"),
        {"patient": ada.pk, "substance": "  Latex  ", "reaction": "rash", "severity": "mild"},
    )
    assert response.status_code == 302
    assert ada.allergies.get(substance="latex").reaction == "rash"
    duplicate = client_admin.post(
        reverse("admin:patients_allergy_add"),
        {"patient": ada.pk, "substance": "LATEX", "reaction": "", "severity": "mild"},
    )
    assert duplicate.status_code == 200  # the form reports the duplicate; no server error
    assert ada.allergies.filter(substance="latex").count() == 1


def test_doctors_without_staff_status_cannot_open_the_admin(client, ada):
    client.force_login(DoctorFactory())
    response = changelist(client)
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_admin_says_allergies_not_allergys(client_admin):
    from patients.models import Allergy

    assert Allergy._meta.verbose_name_plural == "allergies"
    html = client_admin.get("/admin/").content.decode()
    assert "Allergies" in html
    assert "Allergys" not in html
