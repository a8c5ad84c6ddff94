"""Re-encrypt every encrypted column under the newest FIELD_ENCRYPTION_KEY.

Procedure (README, "Key rotation"): deploy ``old``; deploy ``new,old`` (new encrypts, both
decrypt); run this command until ``--check`` reports nothing left; deploy ``new`` alone.
Works on raw ciphertext (MultiFernet.rotate), batch by batch, each batch in its own transaction,
so it is safe to interrupt and re-run: rows already under the newest key are skipped.
"""

from __future__ import annotations

from typing import Any

import cryptography.fernet
from django.apps import apps
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

from medai_site.encrypted_fields import crypter, encrypted_fields_of


class Command(BaseCommand):
    help = (
        "Re-encrypt encrypted columns under the first FIELD_ENCRYPTION_KEY (--check to only count)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--check",
            action="store_true",
            help="Count values not yet under the newest key; exit 1 if any.",
        )
        parser.add_argument("--batch-size", type=int, default=500)

    def handle(self, *args: Any, check: bool, batch_size: int, **options: Any) -> None:
        newest = cryptography.fernet.Fernet(settings.FIELD_ENCRYPTION_KEY[0])
        fernet = crypter()
        stale_total = rotated_total = 0
        for model in apps.get_models():
            columns = [f.column for f in encrypted_fields_of(model)]
            if not columns:
                continue
            table, pk = model._meta.db_table, model._meta.pk.column
            stale, rotated = self._process(table, pk, columns, newest, fernet, check, batch_size)
            stale_total += stale
            rotated_total += rotated
            self.stdout.write(
                f"{table}: {stale} value(s) not under the newest key"
                + ("" if check else f", {rotated} re-encrypted")
            )
        if check:
            if stale_total:
                raise CommandError(f"{stale_total} value(s) still need rotation.")
            self.stdout.write(self.style.SUCCESS("Every encrypted value is under the newest key."))
        else:
            self.stdout.write(self.style.SUCCESS(f"Done: {rotated_total} value(s) re-encrypted."))

    def _process(
        self,
        table: str,
        pk: str,
        columns: list[str],
        newest: Any,
        fernet: Any,
        check: bool,
        batch_size: int,
    ) -> tuple[int, int]:
        qn = connection.ops.quote_name
        select = ", ".join(qn(c) for c in columns)
        last_pk, stale, rotated = None, 0, 0
        lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
        while True:
            with transaction.atomic(), connection.cursor() as cursor:
                # Identifiers come from model metadata and are quoted; values are parameters.
                where = f"WHERE {qn(pk)} > %s " if last_pk is not None else ""
                cursor.execute(
                    f"SELECT {qn(pk)}, {select} FROM {qn(table)} {where}ORDER BY {qn(pk)} LIMIT %s{lock}",  # noqa: S608  # nosec B608  # quoted identifiers from model metadata; values are parameters
                    ([last_pk] if last_pk is not None else []) + [batch_size],
                )
                rows = cursor.fetchall()
                if not rows:
                    return stale, rotated
                for row in rows:
                    changes = {}
                    for column, token in zip(columns, row[1:], strict=True):
                        if token in (None, ""):
                            continue
                        raw = token.encode() if isinstance(token, str) else token
                        try:
                            newest.decrypt(raw)
                            continue
                        except cryptography.fernet.InvalidToken:
                            stale += 1
                        if not check:
                            changes[column] = fernet.rotate(raw).decode()
                    if changes:
                        assignments = ", ".join(f"{qn(c)} = %s" for c in changes)
                        cursor.execute(
                            f"UPDATE {qn(table)} SET {assignments} WHERE {qn(pk)} = %s",  # noqa: S608  # nosec B608  # quoted identifiers from model metadata; values are parameters
                            [*changes.values(), row[0]],
                        )
                        rotated += len(changes)
                last_pk = rows[-1][0]
            self.stdout.write(f"  {table}: through id {last_pk}", ending="\n")
