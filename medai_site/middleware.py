"""Request context for the audit trail and logs: a request id and the interface in use."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from urllib.parse import unquote_to_bytes

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest

from .audit import current_interface, current_request_id
from .models import AuditEvent
from .request_context import current_api_token_id, is_api_path

_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


class RequestContextMiddleware:
    """Sets ``current_request_id`` (from a sane X-Request-ID or a new uuid) and the interface,
    and clears the API token id that the request's bearer authentication may set."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _SAFE_ID.match(incoming) else uuid.uuid4().hex
        if is_api_path(request.path):
            interface = AuditEvent.Interface.API
        elif request.path.startswith("/admin/"):
            interface = AuditEvent.Interface.ADMIN
        else:
            interface = AuditEvent.Interface.PAGE
        request.request_id = request_id
        id_token = current_request_id.set(request_id)
        interface_token = current_interface.set(interface)
        api_token = current_api_token_id.set(None)  # the bearer authentication sets it
        try:
            response = self.get_response(request)
        finally:
            current_request_id.reset(id_token)
            current_interface.reset(interface_token)
            current_api_token_id.reset(api_token)
        response["X-Request-ID"] = request_id
        return response


FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
_BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


class FormBodyMiddleware:
    """Outside the API, a request body is a UTF-8 form, or the request is refused unread.

    Django decodes form fields with ``errors="replace"``, so invalid UTF-8 would be stored as
    U+FFFD instead of being refused; and a page view handed a JSON or XML body sees an empty form
    and answers 200. Here such bodies get a 400 (invalid UTF-8) or a 415 (not a form), with no
    side effect. The APIs (``/api/``, ``/fhir/``, ``/cds-services``) parse their own JSON and
    answer their own 4xx.
    A multipart body is text throughout, except on the admin's file-upload pages listed in
    ``MEDAI_UPLOAD_PATHS`` (the import doors): Django streams their files to disk.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if (
            request.method in _BODY_METHODS
            and not is_api_path(request.path)
            and not request.path.startswith(tuple(settings.MEDAI_UPLOAD_PATHS))
        ):
            refused = self._refusal(request)
            if refused is not None:
                return refused
        return self.get_response(request)

    @staticmethod
    def _refusal(request: HttpRequest) -> HttpResponse | None:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return HttpResponse("Malformed Content-Length.", status=400, content_type="text/plain")
        if not length:
            return None  # a bodiless POST (sign-out, close a visit)
        if request.content_type not in FORM_TYPES:
            return HttpResponse(
                "Unsupported media type: send the form as a browser does.",
                status=415,
                content_type="text/plain; charset=utf-8",
            )
        body = request.body  # RequestDataTooBig above DATA_UPLOAD_MAX_MEMORY_SIZE: a 400
        if request.content_type == FORM_TYPES[0]:
            body = unquote_to_bytes(body.replace(b"+", b" "))
        try:
            body.decode(request.encoding or "utf-8")
        except (UnicodeDecodeError, LookupError):
            return HttpResponseBadRequest(
                "The form is not valid UTF-8 text.", content_type="text/plain; charset=utf-8"
            )
        return None
