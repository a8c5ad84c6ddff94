"""Search over encrypted PHI through blind indexes, on every write path, and nothing in clear."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection

from medai_site.blind_index import blind_index
from medai_site.models import AuditEvent
from patients.models import Patient
from patients.selectors import patient_search
from patients.services import AllergyInput, patient_create, patient_update
from visits.services import visit_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def ada(admin_user):
    return patient_create(
        mrn="SRCH-0001",
        sex="female",
        given_name="Ada",
        family_name="Lovelace",
        birth_date=dt.date(1970, 12, 10),
        phone="+44 20 7946 0001",
        national_id="AB 12 34 56 C",
        actor=admin_user,
    )


@pytest.fixture
def grace(admin_user):
    return patient_create(
        mrn="SRCH-0002",
        sex="female",
        given_name="Grace",
        family_name="Hopper",
        birth_date=dt.date(1956, 12, 9),
        phone="+1 555 010 0002",
        national_id="XY-99-88-77",
        actor=admin_user,
    )


def search(viewer, query):
    return list(patient_search(viewer=viewer, query=query))


@pytest.mark.parametrize(
    "query",
    [
        "Ada Lovelace",  # full name
        "  ada   LOVELACE ",  # normalised the same way
        "Ａｄａ Ｌｏｖｅｌａｃｅ",
        "Ada",  # given name
        "lovelace",  # family name
        "+44 20 7946 0001",  # phone as stored
        "442079460001",  # phone digits only
        "ab123456c",  # national id without punctuation
        "AB 12 34 56 C",
        "SRCH-0001",  # MRN
        "srch-0001",
    ],
)
def test_search_finds_the_patient(admin_user, ada, grace, query):
    assert search(admin_user, query) == [ada]


def test_search_records_a_search_hit_audit_event(admin_user, ada, grace):
    search(admin_user, "Lovelace")
    events = AuditEvent.objects.filter(action=AuditEvent.Action.SEARCH_HIT, actor=admin_user)
    assert list(events.values_list("patient_id", flat=True)) == [ada.pk]


def test_search_does_not_match_substrings_or_other_patients(admin_user, ada, grace):
    assert search(admin_user, "Lovel") == []
    assert search(admin_user, "Grace Lovelace") == []
    assert search(admin_user, "") == []


def test_index_follows_a_service_update(admin_user, ada):
    patient_update(patient=ada, family_name="King", phone="020 7946 9999", actor=admin_user)
    assert search(admin_user, "Ada King") == [ada]
    assert search(admin_user, "02079469999") == [ada]
    assert search(admin_user, "Lovelace") == []
    assert search(admin_user, "+44 20 7946 0001") == []


def test_index_follows_bulk_create(admin_user):
    Patient.objects.bulk_create(
        [
            Patient(
                mrn="BULK-0001",
                sex="male",
                given_name="Charles",
                family_name="Babbage",
                birth_date=dt.date(1950, 12, 26),
                phone="+44 20 7946 0003",
                national_id="CB-1",
            )
        ]
    )
    (found,) = search(admin_user, "Charles Babbage")
    assert found.mrn == "BULK-0001"
    assert search(admin_user, "cb1") == [found]


def test_index_follows_bulk_update(admin_user, ada, grace):
    ada.family_name, grace.national_id = "Byron", "NEW-ID-1"
    Patient.objects.bulk_update([ada, grace], ["family_name", "national_id"])
    assert search(admin_user, "Ada Byron") == [ada]
    assert search(admin_user, "newid1") == [grace]
    assert search(admin_user, "Lovelace") == []


def test_a_forced_digest_collision_never_returns_the_wrong_patient(admin_user, ada, grace):
    """Candidates found by digest are decrypted and compared before they are returned."""
    # Updating only the digest column is allowed (no encrypted source changes).
    Patient.objects.filter(pk=grace.pk).update(
        name_bidx=ada.name_bidx, phone_bidx=ada.phone_bidx, national_id_bidx=ada.national_id_bidx
    )
    assert Patient.objects.filter(name_bidx=blind_index("Ada Lovelace", "name")).count() == 2
    assert search(admin_user, "Ada Lovelace") == [ada]
    assert search(admin_user, "+44 20 7946 0001") == [ada]
    assert search(admin_user, "AB123456C") == [ada]


def test_raw_database_rows_contain_no_known_plaintext(admin_user, doctor_a, team_a):
    """Scan every column of every table: no name, phone, national id or complaint text in clear."""
    patient = patient_create(
        mrn="PLAIN-0001",
        sex="male",
        given_name="Thaddeus",
        family_name="Quimbleworth",
        birth_date=dt.date(1961, 4, 2),
        phone="+44 20 7946 0958",
        email="thaddeus@example.org",
        address="77 Zanzibar Crescent",
        national_id="QZ 73 19 42 K",
        emergency_contact="Philippa Quimbleworth",
        care_teams=[team_a],
        allergies=[AllergyInput(substance="penicillin", reaction="anaphylactic wheeze")],
        actor=admin_user,
    )
    visit_create(
        patient=patient,
        attending=doctor_a,
        actor=doctor_a,
        request_advice=False,
        chief_complaint="crushing retrosternal pain radiating to the jaw",
        history_present_illness="began while shovelling snow",
        plan="refer to Dr Okonkwo-Varga tomorrow",
    )
    secrets = [
        "Thaddeus",
        "Quimbleworth",
        "7946 0958",
        "442079460958",
        "thaddeus@example.org",
        "Zanzibar",
        "QZ 73 19 42 K",
        "qz731942k",
        "anaphylactic",
        "retrosternal",
        "shovelling",
        "Okonkwo",
        "1961-04-02",
    ]
    leaks = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            quoted = connection.ops.quote_name(table)
            cursor.execute(f"SELECT * FROM {quoted}")  # noqa: S608 (table names from introspection)
            names = [c.name for c in cursor.description]
            for row in cursor.fetchall():
                for column, value in zip(names, row, strict=True):
                    text = str(value).casefold()
                    leaks += [(table, column, s) for s in secrets if s.casefold() in text]
    assert leaks == []
    assert Patient.objects.get(pk=patient.pk).given_name == "Thaddeus"  # the data is there


def test_mrn_digits_alone_find_the_patient(ada, grace, admin_user):
    """Typing only the MRN's number finds the patient; the number must be whole (issue 17)."""
    assert list(patient_search(viewer=admin_user, query="0001")) == [ada]
    assert list(patient_search(viewer=admin_user, query="2")) == [grace]
    assert list(patient_search(viewer=admin_user, query="000")) == []
    assert list(patient_search(viewer=admin_user, query="20001")) == []
