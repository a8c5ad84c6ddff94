"""Encryption of large binary values (megabytes) under the configured field-encryption keys.

Encrypted fields use Fernet (``encrypted_fields.py``): AES-CBC, HMAC-SHA256 and base64, fine for
a name, slow for a block of 10,000 feature rows (base64 alone adds a third). A blob here is
AES-256-GCM under a key derived with HKDF-SHA256 from each ``FIELD_ENCRYPTION_KEY``: the first
key encrypts, every configured key decrypts (the same rotation as the fields: deploy
``new,old``, and a blob under ``old`` keeps reading until ``old`` is removed). ``context`` is
bound as associated data, so a blob copied to another row (another table, visit range or model)
does not decrypt there.

Layout: ``MAGIC`` (4 bytes), key id (8 bytes: a digest of the derived key, not the key), nonce
(12 random bytes), ciphertext with its 16-byte tag.
"""

from __future__ import annotations

import base64
import hashlib
import os
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

from .errors import DecryptionFailed

MAGIC = b"MEB1"
KEY_ID_BYTES = 8
NONCE_BYTES = 12
_INFO = b"medai blob encryption v1"


@lru_cache(maxsize=8)
def _derived(keys: tuple[str, ...]) -> tuple[tuple[bytes, AESGCM], ...]:
    out = []
    for key in keys:
        secret = base64.urlsafe_b64decode(key.encode())
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret)
        key_id = hashlib.sha256(b"key id:" + derived).digest()[:KEY_ID_BYTES]
        out.append((key_id, AESGCM(derived)))
    return tuple(out)


def _keys() -> tuple[tuple[bytes, AESGCM], ...]:
    keys = tuple(settings.FIELD_ENCRYPTION_KEY)
    if not keys:
        raise DecryptionFailed("No FIELD_ENCRYPTION_KEY is configured.")
    return _derived(keys)


def encrypt_blob(plaintext: bytes, *, context: bytes) -> bytes:
    key_id, aead = _keys()[0]
    nonce = os.urandom(NONCE_BYTES)
    return MAGIC + key_id + nonce + aead.encrypt(nonce, plaintext, context)


def blob_key_known(blob: bytes) -> bool:
    """Whether a configured key wrote ``blob`` (a cache treats the rest as misses)."""
    key_id = bytes(blob[len(MAGIC) : len(MAGIC) + KEY_ID_BYTES])
    return bytes(blob[: len(MAGIC)]) == MAGIC and any(k == key_id for k, _ in _keys())


def decrypt_blob(blob: bytes, *, context: bytes) -> bytes:
    """The plaintext, or :class:`DecryptionFailed` (unknown key, tampered, wrong context)."""
    blob = bytes(blob)
    if blob[: len(MAGIC)] != MAGIC:
        raise DecryptionFailed("A stored blob is not in the encrypted-blob format.")
    key_id = blob[len(MAGIC) : len(MAGIC) + KEY_ID_BYTES]
    nonce_at = len(MAGIC) + KEY_ID_BYTES
    nonce = blob[nonce_at : nonce_at + NONCE_BYTES]
    # The ciphertext as a view, not a slice: a slice copies it (a block of feature rows is
    # about 19 MB, and the copy into fresh memory took longer than the decryption itself).
    ciphertext = memoryview(blob)[nonce_at + NONCE_BYTES :]
    for candidate, aead in _keys():
        if candidate == key_id:
            try:
                return aead.decrypt(nonce, ciphertext, context)
            except InvalidTag as exc:
                raise DecryptionFailed(
                    "A stored blob failed authentication (altered, or read in the wrong place)."
                ) from exc
    raise DecryptionFailed(
        "A stored blob was encrypted under a key that is no longer configured in "
        "FIELD_ENCRYPTION_KEY (see README, 'Key rotation')."
    )
