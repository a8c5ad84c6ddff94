"""``manage.py import_hl7 FILE [FILE ...]``: HL7 v2 ORU^R01 lab results from files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from predictions.interop.hl7_in import hl7_import_file


class Command(BaseCommand):
    help = (
        "Import HL7 v2 ORU^R01 messages (plain or MLLP-framed, several per file): results by "
        "LOINC onto the patient's open visit; prints the ACK of each message."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("paths", nargs="+", type=Path)
        parser.add_argument(
            "--as",
            dest="username",
            default="",
            help="the receiving user or integration account (default: the system, all patients)",
        )
        parser.add_argument("--dry-run", action="store_true")
        parser.add_argument("--report", type=Path, help="write the answers as JSON here")

    def handle(self, *args: Any, **opts: Any) -> None:
        user = None
        if opts["username"]:
            user = (
                get_user_model().objects.filter(username=opts["username"], is_active=True).first()
            )
            if user is None:
                raise CommandError(f"No active user named {opts['username']!r}.")
        missing = [str(p) for p in opts["paths"] if not p.is_file()]
        if missing:
            raise CommandError(f"No such file: {', '.join(missing)}")
        reports = [
            {"file": p.name, **hl7_import_file(path=p, actor=user, dry_run=opts["dry_run"])}
            for p in opts["paths"]
        ]
        for report in reports:
            for answer in report["messages"]:
                self.stdout.write(
                    f"{report['file']}: {answer['control_id'] or '-'} {answer['ack']} "
                    f"{answer['text']}"
                )
        if opts["report"]:
            opts["report"].write_text(json.dumps(reports, indent=2), encoding="utf-8")
