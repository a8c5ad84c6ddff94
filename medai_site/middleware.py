"""Request context for the audit trail and logs: a request id and the interface in use."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from .audit import current_interface, current_request_id
from .models import AuditEvent

_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


class RequestContextMiddleware:
    """Sets ``current_request_id`` (from a sane X-Request-ID or a new uuid) and the interface."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _SAFE_ID.match(incoming) else uuid.uuid4().hex
        if request.path.startswith("/api/"):
            interface = AuditEvent.Interface.API
        elif request.path.startswith("/admin/"):
            interface = AuditEvent.Interface.ADMIN
        else:
            interface = AuditEvent.Interface.PAGE
        request.request_id = request_id  # type: ignore[attr-defined]
        id_token = current_request_id.set(request_id)
        interface_token = current_interface.set(interface)
        try:
            response = self.get_response(request)
        finally:
            current_request_id.reset(id_token)
            current_interface.reset(interface_token)
        response["X-Request-ID"] = request_id
        return response
