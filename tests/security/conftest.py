"""Fixtures for the data-protection tests.

The canary test reuses the integration suite's real processes (a private redis-server on a free
port, real Celery workers against the pytest database); they are imported here so pytest finds
them for this package too.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from tests.integration.conftest import broker, redis_server, workers  # noqa: F401 (fixtures)


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    """Every log record of this process at DEBUG, formatted as production formats it.

    The handler borrows the formatter and filters of the configured console handler (JSON lines,
    request-id filter that drops Django's request object), so what is scanned is what a log
    shipper would receive.
    """
    root = logging.getLogger()
    console = next(
        (h for h in root.handlers if isinstance(h, logging.StreamHandler) and h.filters), None
    )
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setLevel(logging.DEBUG)
    if console is not None:
        handler.setFormatter(console.formatter)
        for log_filter in console.filters:
            handler.addFilter(log_filter)
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield buffer
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)
