"""Per-request (or per-task) context: which request/job this is and through which interface.

Kept free of model imports so logging can use it before Django's apps are loaded.
"""

from __future__ import annotations

import contextvars

# Set by RequestContextMiddleware for pages/API/admin and by the Celery tasks for the worker.
current_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
current_interface: contextvars.ContextVar[str] = contextvars.ContextVar(
    "interface", default="command"
)
