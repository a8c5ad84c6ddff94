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
# The id of the API token a request authenticated with (set by BearerTokenAuthentication, reset
# by RequestContextMiddleware): every audit record written during the request names it.
current_api_token_id: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "api_token_id", default=None
)
# Who is acting when a change reaches the audit trail through a model signal rather than a
# service call (e.g. a role removed in the admin's user form): set around such views.
current_actor: contextvars.ContextVar[object | None] = contextvars.ContextVar("actor", default=None)


# Machine interfaces that parse their own JSON and answer their own errors: the REST API, the
# FHIR API (predictions.interop) and CDS Hooks, whose path its specification fixes
# ({base}/cds-services).
API_PATH_PREFIXES = ("/api/", "/fhir/", "/cds-services")


def is_api_path(path: str) -> bool:
    return path.startswith(API_PATH_PREFIXES)
