"""System checks run at start-up (runserver, migrate, check, worker)."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core.checks import Error, Warning, register
from django.db import DatabaseError, connection

from .encrypted_fields import crypter, encrypted_fields_of

SAMPLE_ROWS = 5  # per table and end: enough to catch a wrong key, cheap at start-up


@register()
def encryption_keys_decrypt_existing_data(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """Prove the configured FIELD_ENCRYPTION_KEY list decrypts what is stored.

    Reads the raw ciphertext of the first and last rows of every table with encrypted columns
    and decrypts it; a key that cannot is an error before any page shows garbage or fails.
    """
    import cryptography.fernet

    messages: list[Any] = []
    fernet = crypter()
    try:
        existing_tables = set(connection.introspection.table_names())
    except DatabaseError:
        return [Warning("Database unreachable: encryption keys not checked.", id="medai.W001")]
    checked: set[str] = set()
    for model in apps.get_models():
        fields = encrypted_fields_of(model)
        table = model._meta.db_table
        # Proxy models (e.g. the admin's import views) share their concrete model's table.
        if not fields or table not in existing_tables or table in checked:
            continue
        checked.add(table)
        rows = _sample_raw_rows(
            model._meta.db_table, model._meta.pk.column, [f.column for f in fields]
        )
        columns = [f.column for f in fields]
        for row in rows:
            for column, token in zip(columns, row, strict=True):
                if token in (None, ""):
                    continue
                try:
                    fernet.decrypt(token.encode() if isinstance(token, str) else token)
                except cryptography.fernet.InvalidToken:
                    messages.append(
                        Error(
                            f"{model._meta.db_table}.{column} holds data that no configured "
                            "FIELD_ENCRYPTION_KEY decrypts.",
                            hint="Add the key the data was written with to FIELD_ENCRYPTION_KEY "
                            "(see README, 'Key rotation').",
                            id="medai.E001",
                        )
                    )
                    break
            if messages:
                break
    return messages


def _sample_raw_rows(table: str, pk: str, columns: list[str]) -> list[tuple[Any, ...]]:
    """The stored ciphertext itself: the ORM would decrypt (and fail) before we could look."""
    qn = connection.ops.quote_name
    select = ", ".join(qn(c) for c in columns)
    rows: list[tuple[Any, ...]] = []
    try:
        with connection.cursor() as cursor:
            for direction in ("ASC", "DESC"):
                # Identifiers come from model metadata and are quoted; the limit is a parameter.
                cursor.execute(
                    f"SELECT {select} FROM {qn(table)} ORDER BY {qn(pk)} {direction} LIMIT %s",  # noqa: S608  # nosec B608  # quoted identifiers from model metadata; values are parameters
                    [SAMPLE_ROWS],
                )
                rows.extend(cursor.fetchall())
    except DatabaseError:
        return []  # table present but not yet migrated to this shape
    return rows


@register()
def rate_limits_parse(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """A mistyped ``MEDAI_*_RATE`` would otherwise surface as a 500 on every API request."""
    from django.conf import settings

    from .rate_limit import Budget

    messages: list[Any] = []
    for name in ("MEDAI_API_RATE", "MEDAI_API_ANON_RATE", "MEDAI_PREDICT_RATE"):
        try:
            Budget.parse(getattr(settings, name))
        except ValueError as exc:
            messages.append(Error(f"{name}: {exc}", id="medai.E003"))
    return messages
