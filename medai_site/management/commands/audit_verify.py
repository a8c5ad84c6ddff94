"""Verify the audit trail's hash chain: exit 1 and name the records if any was altered or removed."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from medai_site.audit import audit_verify


class Command(BaseCommand):
    help = "Check that no audit record was altered or deleted (hash chain)."

    def handle(self, *args: Any, **options: Any) -> None:
        checked, problems = audit_verify()
        for problem in problems:
            self.stderr.write(f"audit record {problem.event_id}: {problem.problem}")
        if problems:
            raise CommandError(
                f"Audit trail broken: {len(problems)} problem(s) in {checked} record(s)."
            )
        self.stdout.write(self.style.SUCCESS(f"Audit trail intact: {checked} record(s) verified."))
