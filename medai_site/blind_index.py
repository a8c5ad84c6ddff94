"""Blind indexes: search encrypted columns without decrypting them.

A blind index is HMAC-SHA256 of the *normalised* value under ``BLIND_INDEX_KEY`` (a key separate
from the encryption keys), stored in an indexed column next to the ciphertext. Equal values give
equal digests, so ``WHERE phone_bidx = %s`` finds candidates; the candidates are then decrypted
and compared, so a (vanishingly unlikely) collision never returns a wrong patient.

Normalisation: Unicode NFKC, trimmed, inner whitespace collapsed, case-folded; phone numbers keep
their digits only, national ids their letters and digits. The kind is mixed into the HMAC message
so equal strings of different kinds (a phone and an id) never share a digest.

:class:`BlindIndexField` computes itself in ``pre_save`` from its source fields, so every write
path that saves or inserts (services, admin, ``bulk_create``) keeps it current; ``bulk_update``
and ``update`` are covered by :class:`medai_site.encrypted_fields.EncryptedQuerySet`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from typing import Any

from django.conf import settings
from django.db import models

_WHITESPACE = re.compile(r"\s+")
_NOT_DIGIT = re.compile(r"\D")
_NOT_ALNUM = re.compile(r"[\W_]", re.UNICODE)


def normalise(value: str, kind: str) -> str:
    text = unicodedata.normalize("NFKC", str(value)).strip()
    text = _WHITESPACE.sub(" ", text).casefold()
    if kind == "phone":
        text = _NOT_DIGIT.sub("", text)
    elif kind == "national_id":
        text = _NOT_ALNUM.sub("", text)
    return text


def blind_index(value: str | None, kind: str) -> str | None:
    """Hex HMAC-SHA256 digest of the normalised value, or None for an empty value."""
    if value is None:
        return None
    text = normalise(value, kind)
    if not text:
        return None
    key = bytes.fromhex(settings.BLIND_INDEX_KEY)
    return hmac.new(key, f"{kind}:{text}".encode(), hashlib.sha256).hexdigest()


class BlindIndexField(models.CharField):
    """A 64-hex-character blind index computed from ``sources`` on every save or insert."""

    def __init__(
        self, *args: Any, sources: tuple[str, ...] = (), kind: str = "text", **kwargs: Any
    ):
        self.sources = tuple(sources)
        self.kind = kind
        kwargs.setdefault("max_length", 64)
        kwargs.setdefault("db_index", True)
        kwargs.setdefault("editable", False)
        kwargs.setdefault("null", True)
        super().__init__(*args, **kwargs)

    def deconstruct(self) -> tuple[Any, ...]:
        name, path, args, kwargs = super().deconstruct()
        kwargs["sources"] = self.sources
        kwargs["kind"] = self.kind
        for key, default in (
            ("max_length", 64),
            ("db_index", True),
            ("editable", False),
            ("null", True),
        ):
            if kwargs.get(key) == default:
                kwargs.pop(key, None)
        return name, path, args, kwargs

    def compute(self, instance: models.Model) -> str | None:
        parts = [getattr(instance, source) for source in self.sources]
        parts = [str(p) for p in parts if p not in (None, "")]
        return blind_index(" ".join(parts), self.kind) if parts else None

    def pre_save(self, model_instance: models.Model, add: bool) -> str | None:
        value = self.compute(model_instance)
        setattr(model_instance, self.attname, value)
        return value
