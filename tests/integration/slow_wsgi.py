"""The project's WSGI application, for fault tests that kill gunicorn mid-request.

A request carrying ``X-MedAI-ITest-Delay-Before: <s>`` waits before Django sees it (killed then,
nothing is stored); ``X-MedAI-ITest-Delay-After: <s>`` waits after Django answered — the visit is
committed — and before a byte of the answer is sent (killed then, the client never learns it was
stored). Either writes ``itest: request held by worker <pid>`` to the log once the request is
held, so a test can kill the very worker that holds it. Production code carries no test hooks:
gunicorn loads this module only in tests/integration/test_faults.py.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from medai_site.wsgi import application as django_application


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    before = float(environ.get("HTTP_X_MEDAI_ITEST_DELAY_BEFORE") or 0)
    after = float(environ.get("HTTP_X_MEDAI_ITEST_DELAY_AFTER") or 0)
    if before:
        _held()
        time.sleep(before)
    if not after:
        return django_application(environ, start_response)
    held: list[Any] = []

    def hold(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        held.append((status, headers, exc_info))

    body = b"".join(django_application(environ, hold))
    _held()
    time.sleep(after)
    start_response(*held[0])
    return [body]


def _held() -> None:
    print(f"itest: request held by worker {os.getpid()}", file=sys.stderr, flush=True)
