"""Large binary values encrypted under the field-encryption keys (AES-GCM, keys from HKDF)."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from medai_site.blob_encryption import blob_key_known, decrypt_blob, encrypt_blob
from medai_site.errors import DecryptionFailed

SECRET = b"troponin 0.42 ng/mL; chest pain radiating to the left arm" * 20


def test_a_blob_decrypts_to_its_plaintext_and_does_not_contain_it(settings):
    blob = encrypt_blob(SECRET, context=b"table:1")
    assert SECRET[:40] not in blob
    assert b"troponin" not in blob
    assert decrypt_blob(blob, context=b"table:1") == SECRET
    assert encrypt_blob(SECRET, context=b"table:1") != blob  # a fresh nonce every time


def test_a_blob_read_in_another_place_or_altered_does_not_decrypt():
    blob = encrypt_blob(SECRET, context=b"table:1")
    with pytest.raises(DecryptionFailed, match="authentication"):
        decrypt_blob(blob, context=b"table:2")
    altered = bytearray(blob)
    altered[-1] ^= 1
    with pytest.raises(DecryptionFailed, match="authentication"):
        decrypt_blob(bytes(altered), context=b"table:1")
    with pytest.raises(DecryptionFailed, match="format"):
        decrypt_blob(b"plain bytes", context=b"table:1")


def test_rotation_old_blobs_read_while_the_old_key_is_configured_and_fail_closed_after(settings):
    old = settings.FIELD_ENCRYPTION_KEY[0]
    blob = encrypt_blob(SECRET, context=b"c")
    new = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEY = [new, old]
    assert decrypt_blob(blob, context=b"c") == SECRET
    assert blob_key_known(blob)
    newer = encrypt_blob(SECRET, context=b"c")
    settings.FIELD_ENCRYPTION_KEY = [new]
    assert decrypt_blob(newer, context=b"c") == SECRET  # written under the new first key
    assert not blob_key_known(blob)
    with pytest.raises(DecryptionFailed, match="no longer configured"):
        decrypt_blob(blob, context=b"c")
