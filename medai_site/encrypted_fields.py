"""Encrypted model fields that fail closed.

django-encrypted-model-fields encrypts with Fernet (AES-128-CBC + HMAC-SHA256) under the
``FIELD_ENCRYPTION_KEY`` list (MultiFernet: the first key encrypts, every key decrypts). Its bare
fields have sharp edges that these subclasses close:

* With a wrong key the bare ``to_python`` swallows ``InvalidToken`` and hands back the ciphertext,
  which a later save encrypts again. Here ``from_db_value`` decrypts strictly and raises
  :class:`DecryptionFailed`; ``to_python`` (forms, ``full_clean``) never tries to decrypt, so a
  plaintext that happens to look like a token is not "decrypted" either.
* ``filter(name="x")`` compares ciphertext and silently matches nothing. Every lookup except
  ``isnull`` raises :class:`EncryptedFieldMisuse`; search goes through blind indexes.
* SQL expressions (``F()``, ``Value()``, ``Concat()``) reach ``get_db_prep_save``, where the bare
  field encrypts the expression's *text*. They are refused there, on save/insert (``pre_save``)
  and in ``QuerySet.update`` (:class:`EncryptedQuerySet`), except the ``Case(When(..., Value(x,
  output_field=<this field>)))`` that ``bulk_update`` builds, whose values this field encrypts.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import cryptography.fernet
from django.db import models
from django.db.models.expressions import Case, Value, When
from django.db.models.functions import Cast
from encrypted_model_fields import fields as emf

from .errors import DecryptionFailed, EncryptedFieldMisuse


def crypter() -> cryptography.fernet.MultiFernet:
    """The MultiFernet built from settings at import time by the library (first key encrypts)."""
    return emf.CRYPTER


def decrypt_token(token: str) -> str:
    try:
        return emf.decrypt_str(token)
    except cryptography.fernet.InvalidToken as exc:
        raise DecryptionFailed(
            "A stored encrypted value does not decrypt under any configured FIELD_ENCRYPTION_KEY. "
            "Check the key configuration (see README, 'Key rotation')."
        ) from exc


class SafeEncryptedMixin(emf.EncryptedMixin):
    """Fail-closed behaviour shared by every encrypted field in MedAI."""

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, bytes):
            value = value.decode("utf-8")
        return models.Field.to_python(self, self._base_to_python(decrypt_token(value)))

    def _base_to_python(self, value: Any) -> Any:
        # Skip EncryptedMixin.to_python (which decrypts leniently) and use the Django field's own.
        return super(emf.EncryptedMixin, self).to_python(value)

    def to_python(self, value: Any) -> Any:
        # Values reaching to_python come from forms and full_clean(): plaintext, never tokens.
        return self._base_to_python(value)

    def get_lookup(self, lookup_name: str) -> Any:
        if lookup_name != "isnull":
            raise EncryptedFieldMisuse(
                f"Cannot filter encrypted field '{self.name}' with '{lookup_name}': the database "
                "holds only ciphertext. Search through the blind index instead."
            )
        return super().get_lookup(lookup_name)

    def get_transform(self, lookup_name: str) -> Any:
        raise EncryptedFieldMisuse(
            f"Cannot apply '{lookup_name}' to encrypted field '{self.name}': it holds ciphertext."
        )

    def get_db_prep_save(self, value: Any, connection: Any) -> Any:
        # Django hands SQL expressions to get_db_prep_save too; the bare library would encrypt
        # str(expression), storing the expression's text. Pass through only the expressions
        # that encrypt through this field (bulk_update's CASE), refuse the rest.
        if hasattr(value, "as_sql"):
            if _encrypts(value, self):
                return value
            raise EncryptedFieldMisuse(
                f"Refusing an SQL expression for encrypted field '{self.name}': it would bypass "
                "encryption. Assign a plain Python value."
            )
        return super().get_db_prep_save(value, connection)

    def pre_save(self, model_instance: models.Model, add: bool) -> Any:
        value = super().pre_save(model_instance, add)
        if hasattr(value, "resolve_expression"):
            raise EncryptedFieldMisuse(
                f"Refusing to save an SQL expression into encrypted field '{self.name}': "
                "it would bypass encryption. Assign a plain Python value."
            )
        return value


class EncryptedCharField(SafeEncryptedMixin, models.CharField):
    pass


class EncryptedTextField(SafeEncryptedMixin, models.TextField):
    pass


class EncryptedDateField(SafeEncryptedMixin, models.DateField):
    pass


class EncryptedEmailField(SafeEncryptedMixin, models.EmailField):
    pass


def _encrypts(expression: Any, field: models.Field) -> bool:
    """True for the expressions bulk_update builds, which encrypt through this very field."""
    if isinstance(expression, Value):
        # NULL needs no encryption (Case's default ELSE); anything else must go through the field.
        return expression.value is None or expression._output_field_or_none is field
    if isinstance(expression, Case):
        default_ok = _encrypts(expression.default, field)
        return default_ok and all(_encrypts(case, field) for case in expression.cases)
    if isinstance(expression, When):
        return _encrypts(expression.result, field)
    if isinstance(expression, Cast):  # PostgreSQL: bulk_update wraps the Case in a Cast
        return expression.output_field is field and _encrypts(
            expression.source_expressions[0], field
        )
    return False


def encrypted_fields_of(model: type[models.Model]) -> list[Any]:
    """The model's encrypted columns (the one definition: updates, key checks, key rotation)."""
    return [f for f in model._meta.concrete_fields if isinstance(f, SafeEncryptedMixin)]


class EncryptedQuerySet(models.QuerySet):
    """Refuses updates that would bypass encryption or leave a blind index stale."""

    def update(self, **kwargs: Any) -> int:
        encrypted = {f.name: f for f in encrypted_fields_of(self.model)}
        for name, value in kwargs.items():
            field = encrypted.get(name)
            if (
                field is not None
                and hasattr(value, "resolve_expression")
                and not _encrypts(value, field)
            ):
                raise EncryptedFieldMisuse(
                    f"Refusing an SQL expression in update() of encrypted field '{name}': it "
                    "would bypass encryption. Load, assign and save through the service instead."
                )
        stale = _stale_blind_indexes(self.model, kwargs.keys())
        if stale:
            raise EncryptedFieldMisuse(
                f"update() of {sorted(kwargs)} would leave blind index(es) {stale} stale; "
                "use the service or bulk_update(), which recompute them."
            )
        return super().update(**kwargs)

    def bulk_update(
        self, objs: Iterable[models.Model], fields: Iterable[str], **kwargs: Any
    ) -> int:
        objs = list(objs)
        fields = list(fields)
        index_fields = _blind_index_fields(self.model)
        for index in index_fields:
            if set(index.sources) & set(fields):
                for obj in objs:
                    setattr(obj, index.attname, index.compute(obj))
                if index.name not in fields:
                    fields.append(index.name)
        return super().bulk_update(objs, fields, **kwargs)


def _blind_index_fields(model: type[models.Model]) -> list[Any]:
    from .blind_index import BlindIndexField

    return [f for f in model._meta.concrete_fields if isinstance(f, BlindIndexField)]


def _stale_blind_indexes(model: type[models.Model], updated: Iterable[str]) -> list[str]:
    updated = set(updated)
    return [
        f.name
        for f in _blind_index_fields(model)
        if set(f.sources) & updated and f.name not in updated
    ]
