"""medai_site.db_health: a kept connection is checked by its socket, not by a SELECT 1 round trip,
and a connection the server has ended is still caught (and replaced) before a request uses it."""

from __future__ import annotations

import select
import time

import psycopg
import pytest
from django.db import connection

from medai_site.db_health import TRUST_SECONDS, server_silent


class CaptureStatements:
    """Every statement sent on the psycopg connection ``raw`` (Django's query log misses the
    health check's own SELECT 1, which bypasses Django's cursor)."""

    def __init__(self, raw) -> None:
        self.raw = raw
        self.sent: list[str] = []

    def __enter__(self) -> list[str]:
        self.original = type(self.raw).cursor
        sent = self.sent
        original = self.original

        def cursor(conn, *args, **kwargs):
            cur = original(conn, *args, **kwargs)
            execute = cur.execute

            def spy(query, *a, **k):
                sent.append(str(query))
                return execute(query, *a, **k)

            cur.execute = spy
            return cur

        type(self.raw).cursor = cursor
        return self.sent

    def __exit__(self, *exc) -> None:
        type(self.raw).cursor = self.original


def _server_spoke(raw) -> bool:
    readable, _, _ = select.select([raw.fileno()], [], [], 0)
    return bool(readable)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_an_idle_connection_skips_the_round_trip_and_a_terminated_one_is_replaced():
    connection.ensure_connection()
    assert connection.health_check_enabled
    raw = connection.connection
    connection._medai_checked_at = None
    with CaptureStatements(raw) as sent:
        connection.health_check_done = False
        connection.close_if_health_check_failed()
    assert sent == ["SELECT 1"]  # nothing vouched for this connection yet: a real check
    with CaptureStatements(raw) as sent:
        connection.health_check_done = False
        connection.close_if_health_check_failed()
    assert sent == []  # idle, silent, and checked seconds ago: no SELECT 1
    assert connection.connection is raw
    # A silent socket is trusted only for a while after a real check: a server gone without a
    # word (a fail-over to another host) is found by the next real check.
    connection._medai_checked_at -= TRUST_SECONDS
    with CaptureStatements(raw) as sent:
        connection.health_check_done = False
        connection.close_if_health_check_failed()
    assert sent == ["SELECT 1"]

    pid = raw.info.backend_pid
    settings = connection.get_connection_params()
    with psycopg.connect(
        **{k: v for k, v in settings.items() if k not in ("cursor_factory", "context")},
        autocommit=True,
    ) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    for _ in range(200):  # the server's FATAL message reaches the socket (a wait, not a bound)
        if _server_spoke(raw):
            break
        time.sleep(0.01)
    assert not server_silent(raw)
    connection.health_check_done = False
    connection.close_if_health_check_failed()  # Django's SELECT 1 fails: the connection is closed
    assert connection.connection is None
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
    assert connection.connection.info.backend_pid != pid


@pytest.mark.django_db
def test_a_connection_inside_a_transaction_is_left_to_djangos_check():
    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")  # the test's transaction is open on the server
    assert not server_silent(connection.connection)
    assert not server_silent(None)
