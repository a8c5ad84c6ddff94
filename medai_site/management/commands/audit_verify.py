"""Verify the audit trail: every record's keyed hash and link in its lane, held against the
anchors of the lanes' heads kept outside the database. Exit 1 naming the records if any was altered, removed, re-hashed,
or the table was shortened or emptied; on success, anchor the current head."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from medai_site.audit import audit_verify
from medai_site.audit_anchor import anchor_path, anchors_read, audit_anchor_write


class Command(BaseCommand):
    help = (
        "Check that no audit record was altered, deleted, moved or re-hashed and that the table "
        "still holds every record its anchors saw; then anchor the current heads."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--no-anchor",
            action="store_true",
            help="Only check; do not append an anchor of the current head.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        anchors, _ = anchors_read()
        checked, problems = audit_verify()
        for problem in problems:
            where = f"audit record {problem.event_id}" if problem.event_id else "anchor file"
            self.stderr.write(f"{where}: {problem.problem}")
        if problems:
            raise CommandError(
                f"Audit trail broken: {len(problems)} problem(s) in {checked} record(s)."
            )
        if anchors:
            latest = anchors[-1]
            against = (
                f"against {len(anchors)} anchor(s), latest {latest.at} ({latest.count} records)"
            )
        else:
            against = (
                f"no anchor yet in {anchor_path()}: a shortened or emptied table is detectable "
                "only from the first anchor on"
            )
        self.stdout.write(
            self.style.SUCCESS(f"Audit trail intact: {checked} record(s) verified, {against}.")
        )
        if not options["no_anchor"]:
            anchor, problems = audit_anchor_write()
            if problems:  # a record was tampered with between the two checks
                raise CommandError("Audit trail changed while it was verified; run again.")
            if anchor is not None and anchor not in anchors:
                self.stdout.write(
                    f"Heads of {len(anchor.heads)} lane(s) anchored: newest record "
                    f"{anchor.last_id}, {anchor.count} records."
                )
            elif anchor is not None:
                self.stdout.write("Head unchanged since the latest anchor.")
