"""Give the application's database role exactly what it needs (run as the owner, after migrate)."""

from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection

from medai_site.db_roles import RoleError, app_role_create, app_role_grant, app_role_grants


class Command(BaseCommand):
    help = (
        "Grant ROLE (the role web, worker, beat and relay connect as) read/write on the domain "
        "tables, read on the migration history and only INSERT/SELECT on the audit trail. Run as "
        "the owner role after every migrate. PostgreSQL only."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("role", help="The app role, e.g. medai_app.")
        parser.add_argument(
            "--create", action="store_true", help="Create the role (LOGIN, no other rights)."
        )
        parser.add_argument(
            "--password-env",
            metavar="VARIABLE",
            help="Set the role's password from this environment variable (kept off the "
            "command line and out of shell history).",
        )
        parser.add_argument(
            "--sql", action="store_true", help="Print the GRANT statements instead of running them."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if connection.vendor != "postgresql":
            raise CommandError("Database roles are a PostgreSQL deployment's concern.")
        role = options["role"]
        try:
            if options["sql"]:
                for sql in app_role_grants(role):
                    self.stdout.write(f"{sql};")
                return
            if options["create"] or options["password_env"]:
                password = None
                if options["password_env"]:
                    password = os.environ.get(options["password_env"], "")
                    if not password:
                        raise CommandError(f"{options['password_env']} is empty or not set.")
                app_role_create(role, password)
            statements = app_role_grant(role)
        except RoleError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            self.style.SUCCESS(
                f"Role {role}: {len(statements)} grant statement(s) applied; it owns nothing and "
                "may only insert and read audit records."
            )
        )
