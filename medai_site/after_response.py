"""Work a request leaves until its response has been sent, in the same thread.

Handing a new advice request to the broker (predictions.services.outbox) follows the visit's
commit, but nothing in the response depends on it: a Redis round trip, Celery's message
building and the bookkeeping UPDATE (a commit of its own) kept the client waiting about a sixth of
a visit create for nothing. :func:`after_response` runs such work once the WSGI server closes the
response, that is after the last byte was handed to the client.

:func:`wsgi_after_response` wraps the WSGI application (medai_site/wsgi.py, which gunicorn
serves): during a request, callbacks collect in a context variable of the request's thread and
run when the server closes the response, before Django's own ``request_finished`` handling, each
on its own (one failing is logged, never raised: the response is gone). Outside a request served
that way (Celery workers, commands, the relay, Django's test client, ASGI) a callback runs at
once, as before.

Only for work whose loss in a crash is recovered elsewhere: if the process dies between the
response and the callback, the advice request stays pending and the relay sends it after its
grace period (``DISPATCH_GRACE_SECONDS``), exactly as when a process died between the commit and
the dispatch before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from typing import Any

logger = logging.getLogger(__name__)

Callback = Callable[[], object]  # a return value is ignored
_pending: ContextVar[list[Callback] | None] = ContextVar("medai_after_response", default=None)


def after_response(callback: Callback) -> None:
    """Run ``callback`` once the current response has been sent; at once outside a request."""
    pending = _pending.get()
    if pending is None:
        callback()
    else:
        pending.append(callback)


def _run(callbacks: list[Callback]) -> None:
    while callbacks:
        callback = callbacks.pop(0)
        try:
            callback()
        except Exception:  # the response is sent: log, and let the next one run
            logger.exception(
                "after-response work %s failed", getattr(callback, "__qualname__", callback)
            )


class _ThenRun:
    """The response's iterable, whose ``close()`` first runs the request's deferred work."""

    def __init__(self, response: Iterable[bytes], callbacks: list[Callback]) -> None:
        self._response = response
        self._callbacks = callbacks

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._response)

    def close(self) -> None:
        try:
            _run(self._callbacks)
        finally:
            close = getattr(self._response, "close", None)
            if close is not None:
                close()


def wsgi_after_response(application: Callable[..., Any]) -> Callable[..., Any]:
    """``application`` with :func:`after_response` work run after each response is sent."""

    def with_after_response(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        callbacks: list[Callback] = []
        token = _pending.set(callbacks)
        try:
            response = application(environ, start_response)
        except BaseException:
            _pending.reset(token)
            _run(callbacks)
            raise
        _pending.reset(token)
        if not callbacks:
            return response  # unwrapped: a file response keeps the server's sendfile path
        return _ThenRun(response, callbacks)

    return with_after_response
