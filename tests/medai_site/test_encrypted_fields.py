"""Encryption done safely: the sharp edges of bare django-encrypted-model-fields are closed."""

from __future__ import annotations

import datetime as dt
from unittest import mock

import pytest
from cryptography.fernet import Fernet, MultiFernet
from django.db import connection, transaction
from django.db.models import F, Value
from django.db.models.functions import Concat

from medai_site.blind_index import blind_index
from medai_site.checks import encryption_keys_decrypt_existing_data
from medai_site.encrypted_fields import crypter
from medai_site.errors import DecryptionFailed, EncryptedFieldMisuse
from patients.models import Patient
from patients.services import patient_create, patient_update
from tests.factories import PatientFactory, VisitFactory
from visits.models import Visit

pytestmark = pytest.mark.django_db

FERNET_PREFIX = "gAAAAA"  # every Fernet token starts with the version byte and a timestamp


def raw_columns(patient: Patient, *columns: str) -> tuple:
    """The stored values themselves, bypassing the ORM's decryption."""
    quoted = ", ".join(connection.ops.quote_name(c) for c in columns)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {quoted} FROM patients_patient WHERE id = %s", [patient.pk])  # noqa: S608
        return cursor.fetchone()


def wrong_key():
    """Patch the library's MultiFernet to one built from a key the data was not written with."""
    return mock.patch(
        "encrypted_model_fields.fields.CRYPTER", MultiFernet([Fernet(Fernet.generate_key())])
    )


@pytest.fixture
def patient():
    return patient_create(
        mrn="ENC-0001",
        sex="female",
        given_name="Ada",
        family_name="Lovelace",
        birth_date=dt.date(1970, 12, 10),
        phone="+44 20 7946 0001",
        national_id="AB 12 34 56 C",
        address="12 St James's Square",
        actor=None,
    )


# --- fail closed on a wrong key ---------------------------------------------------------------


def test_reading_under_a_wrong_key_raises_decryption_failed_not_ciphertext(patient):
    """Bare package: to_python swallows InvalidToken and returns the ciphertext as the name."""
    with wrong_key(), pytest.raises(DecryptionFailed) as excinfo:
        Patient.objects.get(pk=patient.pk)
    assert FERNET_PREFIX not in excinfo.value.message


def test_values_list_under_a_wrong_key_raises_too(patient):
    """from_db_value is strict on every read path, including values()/values_list()."""
    with wrong_key(), pytest.raises(DecryptionFailed):
        list(Patient.objects.filter(pk=patient.pk).values_list("given_name", flat=True))


def test_wrong_key_never_re_encrypts_the_ciphertext(patient):
    """A failed read cannot be saved back, so the stored token is untouched."""
    before = raw_columns(patient, "given_name")
    with wrong_key(), pytest.raises(DecryptionFailed):
        patient.refresh_from_db()
    assert raw_columns(patient, "given_name") == before
    assert Patient.objects.get(pk=patient.pk).given_name == "Ada"


def test_to_python_never_decrypts_a_token_looking_plaintext(patient):
    """A value typed by a user that happens to be a valid token is stored as typed."""
    token = crypter().encrypt(b"Ada").decode()
    field = Patient._meta.get_field("address")
    assert field.to_python(token) == token
    patient_update(patient=patient, address=token, actor=None)  # full_clean() runs to_python
    assert Patient.objects.get(pk=patient.pk).address == token


# --- lookups ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "lookup",
    [
        {"given_name": "Ada"},
        {"given_name__iexact": "ada"},
        {"family_name__icontains": "love"},
        {"phone__startswith": "+44"},
        {"national_id__in": ["AB123456C"]},
        {"birth_date__year": 1970},
        {"given_name__lower": "ada"},
    ],
)
def test_lookups_on_encrypted_fields_raise_instead_of_matching_nothing(patient, lookup):
    """Bare package: filter(given_name='Ada') compares ciphertext and silently returns nothing."""
    with pytest.raises(EncryptedFieldMisuse, match="encrypted field"):
        list(Patient.objects.filter(**lookup))


def test_exclude_and_get_on_encrypted_fields_raise(patient):
    with pytest.raises(EncryptedFieldMisuse):
        Patient.objects.exclude(phone="x").count()
    with pytest.raises(EncryptedFieldMisuse):
        Visit.objects.get(chief_complaint="cough")


def test_isnull_is_the_one_lookup_allowed(patient):
    assert list(Patient.objects.filter(given_name__isnull=False)) == [patient]
    assert not Patient.objects.filter(given_name__isnull=True).exists()


# --- SQL expressions ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expression",
    [Value("x"), F("family_name"), Concat(F("address"), Value(" (old)"))],
    ids=["Value", "F", "Concat"],
)
def test_update_with_an_sql_expression_of_an_encrypted_field_is_refused(patient, expression):
    """Bare package: the expression's value bypasses encryption (stored as plaintext/garbage)."""
    before = raw_columns(patient, "address")
    with pytest.raises(EncryptedFieldMisuse, match="expression"):
        Patient.objects.filter(pk=patient.pk).update(address=expression)
    assert raw_columns(patient, "address") == before


def test_update_of_an_indexed_encrypted_field_with_value_is_refused(patient):
    with pytest.raises(EncryptedFieldMisuse):
        Patient.objects.update(given_name=Value("x"))
    with pytest.raises(EncryptedFieldMisuse):
        Visit.objects.update(chief_complaint=Value("x"))


def test_save_with_an_expression_in_an_encrypted_field_is_refused(patient):
    visit = VisitFactory(patient=patient)
    patient.given_name = F("family_name")
    # save() marks the surrounding transaction for rollback on any error; isolate each attempt.
    with pytest.raises(EncryptedFieldMisuse, match="expression"), transaction.atomic():
        patient.save()
    visit.plan = Concat(Value("a"), Value("b"))
    with pytest.raises(EncryptedFieldMisuse), transaction.atomic():
        visit.save()
    assert Patient.objects.get(pk=patient.pk).given_name == "Ada"


def test_update_of_a_blind_indexed_source_without_its_index_is_refused(patient):
    """update(phone=...) would leave phone_bidx pointing at the old number."""
    with pytest.raises(EncryptedFieldMisuse, match="stale"):
        Patient.objects.filter(pk=patient.pk).update(phone="+1 555 0000")
    with pytest.raises(EncryptedFieldMisuse, match="stale"):
        Patient.objects.filter(pk=patient.pk).update(family_name="Byron")
    assert Patient.objects.get(pk=patient.pk).phone == "+44 20 7946 0001"


def test_plain_value_update_of_an_unindexed_encrypted_field_is_encrypted(patient):
    Patient.objects.filter(pk=patient.pk).update(address="1 New Road")
    (raw,) = raw_columns(patient, "address")
    assert raw.startswith(FERNET_PREFIX)
    assert Patient.objects.get(pk=patient.pk).address == "1 New Road"


def test_bulk_update_encrypts_and_keeps_blind_indexes_current():
    """bulk_update's CASE goes through the field (encrypted) and the indexes are recomputed."""
    first, second = PatientFactory(given_name="Ann"), PatientFactory(given_name="Bea")
    first.given_name, first.phone = "Annabel", "+1 555 777 1111"
    second.given_name, second.phone = "Beatrix", "+1 555 777 2222"
    Patient.objects.bulk_update([first, second], ["given_name", "phone"])
    for obj, name, phone in (
        (first, "Annabel", "+1 555 777 1111"),
        (second, "Beatrix", "+1 555 777 2222"),
    ):
        raw_name, raw_phone, name_bidx, given_bidx, phone_bidx = raw_columns(
            obj, "given_name", "phone", "name_bidx", "given_name_bidx", "phone_bidx"
        )
        assert raw_name.startswith(FERNET_PREFIX)
        assert raw_phone.startswith(FERNET_PREFIX)
        assert crypter().decrypt(raw_name.encode()).decode() == name
        assert crypter().decrypt(raw_phone.encode()).decode() == phone
        assert given_bidx == blind_index(name, "name")
        assert name_bidx == blind_index(f"{name} {obj.family_name}", "name")
        assert phone_bidx == blind_index(phone, "phone")


def test_bulk_create_encrypts_and_computes_blind_indexes():
    (created,) = Patient.objects.bulk_create(
        [
            Patient(
                mrn="BULK-0001",
                sex="male",
                given_name="Cyril",
                family_name="Bulk",
                birth_date=dt.date(1980, 1, 1),
                phone="020 7946 0002",
            )
        ]
    )
    raw_name, phone_bidx = raw_columns(created, "given_name", "phone_bidx")
    assert raw_name.startswith(FERNET_PREFIX)
    assert phone_bidx == blind_index("02079460002", "phone")


def test_encrypted_columns_hold_fernet_tokens_for_every_phi_field(patient):
    columns = ("given_name", "family_name", "birth_date", "phone", "national_id", "address")
    for column, raw in zip(columns, raw_columns(patient, *columns), strict=True):
        assert raw.startswith(FERNET_PREFIX), column


# --- start-up check ---------------------------------------------------------------------------


def test_key_check_is_silent_when_the_configured_keys_decrypt_stored_data(patient):
    assert encryption_keys_decrypt_existing_data() == []


def test_key_check_reports_e001_when_no_configured_key_decrypts_stored_data(patient):
    with wrong_key():
        errors = encryption_keys_decrypt_existing_data()
    assert [e.id for e in errors] == ["medai.E001"]
    assert "patients_patient" in errors[0].msg


def test_key_check_accepts_a_rotation_key_list_that_still_holds_the_old_key(patient):
    """During rotation FIELD_ENCRYPTION_KEY is 'new,old': the old data must still pass the check."""
    rotated = MultiFernet([Fernet(Fernet.generate_key()), *crypter()._fernets])
    with mock.patch("encrypted_model_fields.fields.CRYPTER", rotated):
        assert encryption_keys_decrypt_existing_data() == []
        assert Patient.objects.get(pk=patient.pk).given_name == "Ada"
