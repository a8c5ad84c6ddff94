"""``manage.py import_fhir PATH [PATH ...]``: FHIR R4 Bundles, NDJSON or directories into MedAI.

Every resource is validated with fhir.resources (R4B) and written through the services, audited
as an import by ``--as``; re-importing changes nothing. The report (``--report FILE.json``) counts
created/updated/unchanged/skipped per resource type and lists every skip with its reason.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from medai_site.roles import has_clinical_role
from patients.selectors import care_teams_registrable
from patients.services import registration_care_teams
from predictions.interop.fhir_in import ReadProgress
from predictions.interop.services import ImportReport, fhir_import


class Command(BaseCommand):
    help = (
        "Import FHIR R4 (Bundles: transaction, batch, collection; NDJSON per resource type; "
        "directories) as --as USERNAME: validated, idempotent, audited. --dry-run writes nothing."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("paths", nargs="+", type=Path, help="files or directories")
        parser.add_argument("--as", dest="username", required=True, help="the importing user")
        parser.add_argument(
            "--care-team",
            dest="care_teams",
            action="append",
            default=[],
            help="care team the new patients join (repeatable; default: the user's own teams)",
        )
        parser.add_argument(
            "--source",
            default="default",
            help="name of the sending system: re-imports are recognised by source + resource id",
        )
        parser.add_argument(
            "--code-map",
            type=Path,
            help="CSV with columns system,code,icd10: the maintained map of source codings",
        )
        parser.add_argument("--dry-run", action="store_true", help="validate and count only")
        parser.add_argument("--report", type=Path, help="write the report as JSON here")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args: Any, **opts: Any) -> None:
        user = get_user_model().objects.filter(username=opts["username"], is_active=True).first()
        if user is None or not has_clinical_role(user):
            raise CommandError(f"No active user with a clinical role named {opts['username']!r}.")
        teams = self._teams(user, opts["care_teams"])
        missing = [str(p) for p in opts["paths"] if not p.exists()]
        if missing:
            raise CommandError(f"No such file or directory: {', '.join(missing)}")
        code_map = _code_map(opts["code_map"]) if opts["code_map"] else {}
        show = not opts["no_progress"]
        report = fhir_import(
            paths=opts["paths"],
            actor=user,
            care_teams=teams,
            source=opts["source"][:100],
            dry_run=opts["dry_run"],
            code_map=code_map,
            progress=self._progress if show else None,
        )
        if show:
            sys.stderr.write("\n")
        if opts["report"]:
            opts["report"].write_text(json.dumps(report.as_dict(), indent=2), encoding="utf-8")
        self._summary(report)

    def _teams(self, user: Any, names: list[str]) -> list[Any]:
        if not names:
            return registration_care_teams(actor=user, team_ids=None)
        allowed = care_teams_registrable(viewer=user)
        teams = list(allowed.filter(name__in=names))
        unknown = sorted(set(names) - {t.name for t in teams})
        if unknown:
            raise CommandError(
                f"Unknown care team, or one {user.username} may not register into: "
                f"{', '.join(unknown)}"
            )
        return teams

    def _progress(self, read: ReadProgress, report: ImportReport) -> None:
        share = read.done / read.total if read.total else 1.0
        done = int(share * 30)
        resources = sum(report.total(o) for o in ("created", "updated", "unchanged", "skipped"))
        sys.stderr.write(
            f"\r[{'#' * done}{'.' * (30 - done)}] {share:4.0%} {resources:,} resources"
        )
        sys.stderr.flush()

    def _summary(self, report: ImportReport) -> None:
        data = report.as_dict()
        heading = "Dry run (nothing written)" if report.dry_run else "Imported"
        self.stdout.write(f"{heading} in {data['seconds']} s from {len(report.files)} file(s):")
        for kind, counts in data["counts"].items():
            self.stdout.write(
                f"  {kind:<20} created {counts['created']:>7,}  updated {counts['updated']:>6,}  "
                f"unchanged {counts['unchanged']:>7,}  skipped {counts['skipped']:>6,}"
            )
        for reason, n in data["skip_reasons"].items():
            self.stdout.write(f"  skipped, {reason}: {n:,}")
        if report.unmapped_conditions:
            self.stdout.write(
                f"  {report.unmapped_conditions:,} condition(s) kept in their source coding "
                "(no ICD-10 given or mapped)"
            )
        for error in report.errors[:20]:
            self.stdout.write(f"  error: {error}")


def _code_map(path: Path) -> dict[tuple[str, str], str]:
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"Cannot read the code map: {type(exc).__name__}") from None
    if not rows or not {"system", "code", "icd10"} <= set(rows[0]):
        raise CommandError("The code map needs the columns system, code, icd10.")
    return {(r["system"].strip(), r["code"].strip()): r["icd10"].strip() for r in rows}
