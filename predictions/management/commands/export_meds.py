"""``manage.py export_meds OUT_DIR``: the records as a MEDS dataset (pseudonymous, audited)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from medai_site.errors import InvalidInput
from predictions.services.meds_export import meds_export


class Command(BaseCommand):
    help = (
        "Export every patient's timeline as a MEDS dataset (Parquet): pseudonymous subject ids, "
        "each subject's dates shifted by a keyed 1-365 days, no names or identifiers; the "
        "export is recorded in the audit trail."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("out_dir", type=Path, help="an empty (or new) directory")
        parser.add_argument(
            "--actor",
            default="",
            help="user name recorded as the exporter in the audit trail (default: the system)",
        )
        parser.add_argument("--overwrite", action="store_true", help="replace a non-empty OUT_DIR")
        parser.add_argument(
            "--real-dates",
            action="store_true",
            help="keep the real dates of service (only for use inside the hospital: real dates "
            "are identifiers under HIPAA's safe harbour)",
        )

    def handle(
        self,
        *args: Any,
        out_dir: Path,
        actor: str,
        overwrite: bool,
        real_dates: bool,
        **opts: Any,
    ) -> None:
        user = None
        if actor:
            user = get_user_model().objects.filter(username=actor, is_active=True).first()
            if user is None:
                raise CommandError(f"No active user named {actor!r}.")
        try:
            result = meds_export(
                out_dir=out_dir, actor=user, overwrite=overwrite, shift_dates=not real_dates
            )
        except InvalidInput as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(
            f"MEDS dataset written to {result.path}: {result.subjects} subjects, "
            f"{result.events} events, {result.codes} codes (data sha256 {result.sha256[:12]}…); "
            + ("real dates of service." if real_dates else "dates shifted per subject.")
        )
