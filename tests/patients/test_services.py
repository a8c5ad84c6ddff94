"""Patient writes that have one door each: care-team rules and membership, bulk registration."""

from __future__ import annotations

import datetime as dt

import pytest

from medai_site.blind_index import blind_index
from medai_site.errors import Conflict, InvalidInput
from medai_site.models import AuditEvent
from patients.models import Allergy, CareTeam, Patient
from patients.selectors import care_teams_registrable
from patients.services import (
    AllergyInput,
    PatientInput,
    care_team_create,
    care_team_members_set,
    care_team_rename,
    patient_care_teams_set,
    patients_bulk_import,
    registration_care_teams,
)
from tests.factories import CareTeamFactory, DoctorFactory, PatientFactory

pytestmark = pytest.mark.django_db


def updates_of(obj) -> int:
    return AuditEvent.objects.filter(
        action=AuditEvent.Action.UPDATE,
        object_type=obj._meta.label_lower,
        object_id=str(obj.pk),
    ).count()


# --- which care teams a patient may be registered into -------------------------------------------


def test_a_doctor_registers_into_their_own_teams_by_default_and_only_those(
    doctor_a, team_a, team_b
):
    second = CareTeamFactory(members=[doctor_a])
    assert set(care_teams_registrable(viewer=doctor_a)) == {team_a, second}
    assert set(registration_care_teams(actor=doctor_a, team_ids=None)) == {team_a, second}
    assert registration_care_teams(actor=doctor_a, team_ids=[second.pk]) == [second]
    with pytest.raises(InvalidInput, match="not belong") as refused:
        registration_care_teams(actor=doctor_a, team_ids=[team_a.pk, team_b.pk])
    assert refused.value.fields == {"care_team_ids": ["Unknown care team, or not yours."]}


def test_a_doctor_in_no_team_must_name_one_and_cannot(team_a):
    loner = DoctorFactory()
    assert not care_teams_registrable(viewer=loner).exists()
    with pytest.raises(InvalidInput, match="no care team"):
        registration_care_teams(actor=loner, team_ids=None)
    with pytest.raises(InvalidInput, match="not belong"):
        registration_care_teams(actor=loner, team_ids=[team_a.pk])


def test_an_admin_registers_into_any_team_and_none_by_default(admin_user, team_a, team_b):
    assert set(care_teams_registrable(viewer=admin_user)) == {team_a, team_b}
    assert registration_care_teams(actor=admin_user, team_ids=None) == []
    assert set(registration_care_teams(actor=admin_user, team_ids=[team_a.pk, team_b.pk])) == {
        team_a,
        team_b,
    }


# --- membership: written by the services, audited there -----------------------------------------


def test_patient_care_teams_change_is_audited_and_a_no_op_is_not(admin_user, team_a, team_b):
    patient = PatientFactory(care_teams=[team_a])
    patient_care_teams_set(patient=patient, teams=[team_a], actor=admin_user)
    assert updates_of(patient) == 0
    patient_care_teams_set(patient=patient, teams=[team_b], actor=admin_user)
    assert list(patient.care_teams.all()) == [team_b]
    event = AuditEvent.objects.get(action=AuditEvent.Action.UPDATE, patient_id=patient.pk)
    assert event.actor == admin_user


def test_team_creation_membership_and_rename_are_audited(admin_user, doctor_a, doctor_b):
    team = care_team_create(name="  Renal  ", members=[doctor_a], actor=admin_user)
    assert team.name == "Renal"
    assert AuditEvent.objects.filter(
        action=AuditEvent.Action.CREATE, object_type="patients.careteam", object_id=str(team.pk)
    ).exists()
    care_team_members_set(team=team, members=[doctor_a], actor=admin_user)
    assert updates_of(team) == 0  # nothing changed, nothing to record
    care_team_members_set(team=team, members=[doctor_a, doctor_b], actor=admin_user)
    assert set(team.members.all()) == {doctor_a, doctor_b}
    assert updates_of(team) == 1
    care_team_rename(team=team, name="Nephrology", actor=admin_user)
    assert CareTeam.objects.get(pk=team.pk).name == "Nephrology"
    assert updates_of(team) == 2
    with pytest.raises(InvalidInput):  # doctor_a's team is called Cardiology
        care_team_rename(team=team, name="Cardiology", actor=admin_user)
    assert CareTeam.objects.get(pk=team.pk).name == "Nephrology"


# --- bulk registration ---------------------------------------------------------------------------


def person(mrn: str, **overrides) -> PatientInput:
    values = {
        "mrn": mrn,
        "sex": "female",
        "given_name": "Grace",
        "family_name": "Hopper",
        "birth_date": dt.date(1956, 12, 9),
        "phone": "+1 555 0100",
        "national_id": f"NI-{mrn}",
    }
    return PatientInput(**{**values, **overrides})


def test_bulk_import_writes_encrypted_indexed_audited_patients(team_a):
    imported = patients_bulk_import(
        patients=[
            person(
                " bulk-0001 ",
                care_teams=(team_a, team_a),
                allergies=(
                    AllergyInput("Penicillin", reaction="hives"),
                    AllergyInput(" penicillin "),  # the same substance, spelt differently
                    AllergyInput("Latex", severity=Allergy.Severity.SEVERE),
                ),
            ),
            person("BULK-0002", given_name="Alan", family_name="Turing", sex="male"),
        ],
        actor=None,
    )
    first = Patient.objects.get(mrn="BULK-0001")
    assert [p.pk for p in imported] == [first.pk, Patient.objects.get(mrn="BULK-0002").pk]
    assert first.name_bidx == blind_index("Grace Hopper", "name")
    assert first.phone_bidx == blind_index("+1 555 0100", "phone")
    assert list(first.care_teams.all()) == [team_a]
    assert sorted(first.allergies.values_list("substance", flat=True)) == ["latex", "penicillin"]
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT given_name FROM patients_patient WHERE id = %s", [first.pk])
        (stored,) = cursor.fetchone()
    assert "Grace" not in stored  # ciphertext at rest
    created = AuditEvent.objects.filter(action=AuditEvent.Action.CREATE)
    assert set(created.values_list("patient_id", flat=True)) == {p.pk for p in imported}


@pytest.mark.parametrize(
    ("patients", "error", "message"),
    [
        (
            [person("DUP-0001"), person("dup-0001")],
            Conflict,
            "Patient 2: MRN DUP-0001 appears twice",
        ),
        (
            [person("OK-00001"), person("OK-00002", birth_date=dt.date(2999, 1, 1))],
            InvalidInput,
            "Patient 2: Date of birth is in the future",
        ),
        ([person("no spaces here")], InvalidInput, "Patient 1: MRN must be"),
        ([person("OK-00003", sex="dragon")], InvalidInput, "Patient 1:"),
    ],
)
def test_bulk_import_refuses_bad_rows_and_writes_nothing(patients, error, message):
    with pytest.raises(error, match=message):
        patients_bulk_import(patients=patients, actor=None)
    assert not Patient.objects.exists()
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.CREATE).exists()


def test_bulk_import_refuses_mrns_already_registered():
    PatientFactory(mrn="TAKEN-001")
    with pytest.raises(Conflict, match=r"already exist, e\.g\. TAKEN-001"):
        patients_bulk_import(patients=[person("NEW-0001"), person("taken-001")], actor=None)
    assert not Patient.objects.filter(mrn="NEW-0001").exists()
