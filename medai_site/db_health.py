"""The check of a kept PostgreSQL connection before reuse, without a round trip when it can.

Connections are kept between requests and tasks (``CONN_MAX_AGE``) and checked before reuse
(``CONN_HEALTH_CHECKS``), so a restarted database is survived. Django's check is a ``SELECT 1``
before the first query of every request: a round trip that cost as much as the API's token
look-up. Here the check first asks the socket: a kept connection that is open, idle, outside a
transaction, and on which the server has sent nothing is healthy (a server that restarts or
terminates the session sends its FATAL message and closes the socket, which then reads as
ready), provided a real check passed in the last few seconds (:data:`TRUST_SECONDS`: a server
gone without a word is found by the next real check). Anything else (data waiting, a broken or busy connection) is left to Django's
``SELECT 1`` exactly as before. Installed on each PostgreSQL connection as it is made.
"""

from __future__ import annotations

import select
import time
from typing import Any

from django.db.backends.signals import connection_created


def server_silent(raw: Any) -> bool:
    """True when the psycopg connection ``raw`` is open, idle, and nothing waits on its socket."""
    from psycopg import pq

    if raw is None or raw.closed or raw.broken:
        return False
    if raw.pgconn.status != pq.ConnStatus.OK:
        return False
    if raw.info.transaction_status != pq.TransactionStatus.IDLE:
        return False
    try:
        readable, _, _ = select.select([raw.fileno()], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


# How long a real check (Django's SELECT 1) vouches for a silent socket. A server that restarts
# or ends the session speaks (FATAL) and is caught at once; one that vanishes without a word (a
# fail-over to another host, a dropped NAT entry) leaves the socket silent, and only a round trip
# finds out. So a silent socket is trusted for a few seconds after a real check, never longer.
TRUST_SECONDS = 5.0


def is_usable_without_round_trip(connection: Any) -> bool:
    """``connection.is_usable()``: the socket's word when the server is silent and a real check
    passed within :data:`TRUST_SECONDS`, else Django's (which then vouches afresh)."""
    checked_at = getattr(connection, "_medai_checked_at", None)
    if (
        checked_at is not None
        and time.monotonic() - checked_at < TRUST_SECONDS
        and server_silent(connection.connection)
    ):
        return True
    usable = bool(type(connection).is_usable(connection))
    connection._medai_checked_at = time.monotonic() if usable else None
    return usable


def _install(sender: Any, connection: Any, **kwargs: Any) -> None:
    if connection.vendor == "postgresql" and not getattr(connection, "_medai_socket_check", False):
        connection.is_usable = lambda: is_usable_without_round_trip(connection)
        connection._medai_socket_check = True


def connect() -> None:
    connection_created.connect(_install, dispatch_uid="medai-health-check-without-round-trip")
