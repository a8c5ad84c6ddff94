"""The two PostgreSQL roles MedAI runs under, and the grants that separate them.

* The **owner** role owns the schema and every table. Only ``manage.py migrate`` (and this
  module's command) run under it.
* The **app** role is what web, worker, beat and the relay connect as. It owns nothing, so it
  cannot ALTER a table, disable a trigger or drop anything; it may read and write the domain
  tables, read the migration history, and only INSERT and SELECT the audit trail. UPDATE,
  DELETE and TRUNCATE of audit records are refused by privileges before any trigger runs.

``manage.py db_grant_app_role ROLE`` (run as the owner after every ``migrate``: new tables need
their grants) applies :func:`app_role_grants`; ``--sql`` prints the statements instead, for a
DBA who prefers to run them by hand.
"""

from __future__ import annotations

import re

from django.db import connection, transaction

from .models import AuditEvent

ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# The audit trail: append and read, nothing else (see medai_site/audit.py).
APPEND_ONLY_TABLES = (AuditEvent._meta.db_table,)
# Django's record of applied migrations: the app reads it (e.g. `showmigrations`), never writes.
READ_ONLY_TABLES = ("django_migrations",)


class RoleError(ValueError):
    """The role cannot serve as the app role (bad name, owns objects, is the owner, ...)."""


def _quote(name: str) -> str:
    return connection.ops.quote_name(name)


def check_role_name(role: str) -> None:
    if not ROLE_NAME.match(role):
        raise RoleError("Role names are lower-case letters, digits and underscores.")


def schema_tables() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1"
        )
        return [row[0] for row in cursor.fetchall()]


def app_role_grants(role: str) -> list[str]:
    """Statements that leave ``role`` with exactly the privileges the application needs.

    Starts by revoking everything on the schema's tables and sequences, so a re-run after a
    migration converges and nothing granted by hand survives unnoticed.
    """
    check_role_name(role)
    quoted = _quote(role)
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_database(), current_schema()")
        database, schema = cursor.fetchone()
    statements = [
        f"REVOKE ALL ON ALL TABLES IN SCHEMA {_quote(schema)} FROM {quoted}",
        f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {_quote(schema)} FROM {quoted}",
        f"GRANT CONNECT ON DATABASE {_quote(database)} TO {quoted}",
        f"GRANT USAGE ON SCHEMA {_quote(schema)} TO {quoted}",
        # nextval() for inserts; not UPDATE, which would allow setval().
        f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA {_quote(schema)} TO {quoted}",
    ]
    for table in schema_tables():
        if table in APPEND_ONLY_TABLES:
            privileges = "SELECT, INSERT"
        elif table in READ_ONLY_TABLES:
            privileges = "SELECT"
        else:
            privileges = "SELECT, INSERT, UPDATE, DELETE"
        statements.append(f"GRANT {privileges} ON TABLE {_quote(table)} TO {quoted}")
    return statements


def role_problems(role: str) -> list[str]:
    """Why ``role`` would not be a least-privileged app role (empty when it is fine)."""
    problems = []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT rolsuper, rolcreaterole, rolcreatedb, rolbypassrls FROM pg_roles "
            "WHERE rolname = %s",
            [role],
        )
        row = cursor.fetchone()
        if row is None:
            return [f"role {role} does not exist (use --create)"]
        if any(row):
            problems.append(f"role {role} has superuser, createrole, createdb or bypassrls rights")
        cursor.execute("SELECT current_user")
        (owner,) = cursor.fetchone()
        if owner == role:
            problems.append("the app role must not be the role running migrations")
        cursor.execute("SELECT pg_has_role(%s, %s, 'MEMBER')", [role, owner])
        if cursor.fetchone()[0]:
            problems.append(f"role {role} is a member of the owner role {owner}")
        cursor.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner "
            "WHERE r.rolname = %s",
            [role],
        )
        if cursor.fetchone()[0]:
            problems.append(f"role {role} owns tables or other relations; it must own nothing")
    return problems


def app_role_create(role: str, password: str | None) -> None:
    """Create a login role with no rights of its own (idempotent); set its password if given."""
    check_role_name(role)
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
        if cursor.fetchone() is None:
            cursor.execute(
                f"CREATE ROLE {_quote(role)} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
                "NOINHERIT NOREPLICATION NOBYPASSRLS"
            )
        if password:
            # Client-side parameter binding (Django's psycopg default) quotes the literal.
            cursor.execute(f"ALTER ROLE {_quote(role)} PASSWORD %s", [password])


def app_role_grant(role: str) -> list[str]:
    """Apply :func:`app_role_grants`; refuses a role that is not least-privileged."""
    problems = role_problems(role)
    if problems:
        raise RoleError("; ".join(problems))
    statements = app_role_grants(role)
    with transaction.atomic(), connection.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql)
    return statements
