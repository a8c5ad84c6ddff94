"""Key rotation: rotate_encryption_keys re-encrypts under the newest key, in batches, re-runnably."""

from __future__ import annotations

import datetime as dt
from io import StringIO
from unittest import mock

import pytest
from cryptography.fernet import Fernet, MultiFernet
from django.core.management import CommandError, call_command
from django.db import connection

from patients.models import Patient
from patients.services import patient_create

pytestmark = pytest.mark.django_db

OLD_KEY = Fernet.generate_key()
NEW_KEY = Fernet.generate_key()


def keys(*ordered: bytes):
    """Configure FIELD_ENCRYPTION_KEY as the library and the command see it (first encrypts)."""
    return [
        mock.patch(
            "encrypted_model_fields.fields.CRYPTER", MultiFernet([Fernet(k) for k in ordered])
        ),
        mock.patch("django.conf.settings.FIELD_ENCRYPTION_KEY", [k.decode() for k in ordered]),
    ]


def run(*args: str) -> str:
    out = StringIO()
    call_command("rotate_encryption_keys", *args, stdout=out)
    return out.getvalue()


def raw_given_names() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT given_name FROM patients_patient ORDER BY id")
        return [row[0] for row in cursor.fetchall()]


def make_patients(n: int) -> None:
    for i in range(n):
        patient_create(
            mrn=f"ROT-{i:04d}",
            sex="male",
            given_name=f"Given{i}",
            family_name="Rotate",
            birth_date=dt.date(1980, 1, 1),
            phone=f"555-01{i:02d}",
            actor=None,
        )


def test_old_new_rotate_new_procedure_keeps_every_value_readable():
    """old → new,old → rotate (batched) → new alone: data readable throughout and at the end."""
    patches = keys(OLD_KEY)
    for p in patches:
        p.start()
    make_patients(7)
    for p in patches:
        p.stop()

    patches = keys(NEW_KEY, OLD_KEY)
    for p in patches:
        p.start()
    try:
        with pytest.raises(CommandError, match="still need rotation"):
            run("--check")
        output = run("--batch-size", "3")
        assert "re-encrypted" in output
        assert "through id" in output  # progress is reported batch by batch
        assert "0 value(s) not under the newest key" in run()  # a second run changes nothing
        run("--check")  # passes now
    finally:
        for p in patches:
            p.stop()

    patches = keys(NEW_KEY)
    for p in patches:
        p.start()
    try:
        names = sorted(p.given_name for p in Patient.objects.all())
        assert names == sorted(f"Given{i}" for i in range(7))
        for token in raw_given_names():
            Fernet(NEW_KEY).decrypt(token.encode())  # raises if any value is not under the new key
    finally:
        for p in patches:
            p.stop()


def test_check_mode_changes_nothing():
    """--check only counts: the stored ciphertext is untouched."""
    patches = keys(OLD_KEY)
    for p in patches:
        p.start()
    make_patients(2)
    for p in patches:
        p.stop()
    before = raw_given_names()
    patches = keys(NEW_KEY, OLD_KEY)
    for p in patches:
        p.start()
    try:
        with pytest.raises(CommandError):
            run("--check")
    finally:
        for p in patches:
            p.stop()
    assert raw_given_names() == before
