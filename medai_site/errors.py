"""The domain error hierarchy, and the one place that turns it into an HTTP answer.

Services raise these; the DRF exception handler below maps them (and DRF's own errors) to
``{"error": {"code", "message", "fields"}}`` with the right 4xx status; the database or broker
being unreachable is a 503 ``temporarily_unavailable`` with ``Retry-After`` (transient: retry).
Messages never carry PHI: they name fields and rules, not values.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response

logger = logging.getLogger(__name__)


class DomainError(Exception):
    """Base of every error a service raises on purpose."""

    code = "error"
    status = 400

    def __init__(
        self,
        message: str,
        *,
        fields: dict[str, list[str]] | None = None,
        record: Callable[[], object] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}
        # What must be recorded even though the transaction the error rolls back is gone (the
        # audit record of a denied probe): run once by whoever reports the error to the user,
        # outside that transaction (record_after_rollback).
        self.record = record


def record_after_rollback(exc: DomainError) -> None:
    """Write what the error asked to be recorded (once). The API's exception handler and the
    page forms that report domain errors call this after the service's transaction ended."""
    record, exc.record = exc.record, None
    if record is not None:
        record()


class InvalidInput(DomainError):
    code = "invalid"
    status = 400

    @classmethod
    def from_django(cls, error: DjangoValidationError) -> InvalidInput:
        if hasattr(error, "error_dict"):
            fields = {
                name: [str(m) for e in errs for m in e.messages]
                for name, errs in error.error_dict.items()
            }
            first = next(iter(fields.values()), ["Invalid input."])[0]
            return cls(first, fields=fields)
        return cls("; ".join(error.messages))


class NotFound(DomainError):
    """Also what a viewer gets for an object outside their care team: existence must not leak."""

    code = "not_found"
    status = 404


class Forbidden(DomainError):
    code = "forbidden"
    status = 403


class Conflict(DomainError):
    code = "conflict"
    status = 409


class RateLimited(DomainError):
    """Too many attempts of something that must not be tried in bulk; says when to try again."""

    code = "rate_limited"
    status = 429

    def __init__(self, message: str, *, retry_after: int, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = max(int(retry_after), 1)  # seconds


class ModelUnavailable(Conflict):
    """A model cannot serve now: switched off, never trained, or its artifact fails its checks."""

    code = "model_unavailable"


class DecryptionFailed(DomainError):
    """A stored value did not decrypt under any configured key: fail closed, never show ciphertext."""

    code = "decryption_failed"
    status = 500


class EncryptedFieldMisuse(DomainError):
    """A query that cannot work on ciphertext (``filter(name=...)``, SQL expressions in updates)."""

    code = "encrypted_field_misuse"
    status = 500


class TrainingDataError(DomainError):
    """The training snapshot cannot train a model (too few visits, one class); says why.

    Also what the app makes of the engine's own data errors (predictions.ml.errors stay pure).
    """

    code = "training_data"
    status = 422


class AdviceFailed(DomainError):
    """A permanent advice failure (e.g. an artifact failing its integrity check): no retry helps."""

    code = "advice_failed"
    status = 500


class ServiceUnavailable(DomainError):
    """The database or the broker is briefly unreachable: retry, the request was not applied.

    Never raised by a service on purpose; what :func:`transient_error` finds is answered as this
    (503 with ``Retry-After``), by the API's handler below and by the pages' ``handler500``.
    """

    code = "temporarily_unavailable"
    status = 503
    default_message = (
        "The service is briefly unavailable (its database or message broker did not answer). "
        "Nothing from this request was saved. Retry it in a few seconds; an Idempotency-Key "
        "makes the retry safe."
    )


# Long enough for a database failover or a Redis restart from its append-only file, short enough
# that a client retrying on it loses little time.
RETRY_AFTER_SECONDS = 5


def transient_error(exc: BaseException | None) -> bool:
    """True when ``exc`` (or what caused it) is the database or the broker being unreachable."""
    from django.db import InterfaceError, OperationalError
    from kombu.exceptions import OperationalError as BrokerUnreachable
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeout

    transient = (
        OperationalError,
        InterfaceError,
        BrokerUnreachable,
        RedisConnectionError,
        RedisTimeout,
    )
    for _depth in range(5):  # the error and the chain of errors it was raised from
        if exc is None:
            return False
        if isinstance(exc, transient):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def error_body(code: str, message: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's EXCEPTION_HANDLER: one error shape for every endpoint."""
    if transient_error(exc):
        # The type only: a driver's message names hosts and ports, never a patient, but it is
        # the operator's (readiness logs it), not the client's.
        logger.warning("service unavailable (%s): answered 503", type(exc).__name__)
        response = Response(
            error_body(ServiceUnavailable.code, ServiceUnavailable.default_message), status=503
        )
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    if isinstance(exc, DjangoValidationError):
        exc = InvalidInput.from_django(exc)
    if isinstance(exc, DomainError):
        if exc.status >= 500:
            logger.error("domain error %s in %s", exc.code, context.get("view").__class__.__name__)
        record_after_rollback(exc)
        response = Response(error_body(exc.code, exc.message, exc.fields), status=exc.status)
        if isinstance(exc, RateLimited):
            response["Retry-After"] = str(exc.retry_after)
        return response
    if isinstance(exc, RequestDataTooBig):
        # Raised while DRF reads the body; unhandled it would become Django's HTML 400.
        return Response(
            error_body("too_large", "The request body is larger than this server accepts."),
            status=413,
        )
    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf_exceptions.PermissionDenied()

    # Imported here: rest_framework.views loads DRF's settings, whose authentication classes
    # import this module (a cycle at import time).
    from rest_framework.views import exception_handler as drf_default_handler

    response = drf_default_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, drf_exceptions.ValidationError):
        detail = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        fields = {k: _flat_messages(v) for k, v in detail.items()}
        first = next(iter(fields.values()), ["Invalid input."])
        response.data = error_body("invalid", str(first[0]) if first else "Invalid input.", fields)
    else:
        code = getattr(exc, "default_code", "error")
        response.data = error_body(code, str(getattr(exc, "detail", exc)))
    return response


def _flat_messages(detail: Any, prefix: str = "") -> list[str]:
    """A nested serializer's errors as readable sentences ("item 2: substance: Required.")."""
    if isinstance(detail, dict):
        return [
            m
            for key, value in detail.items()
            for m in _flat_messages(
                value, prefix if key == "non_field_errors" else f"{prefix}{key}: "
            )
        ]
    if isinstance(detail, list):
        if all(not isinstance(item, dict | list) for item in detail):
            return [f"{prefix}{item}" for item in detail]
        return [
            m
            for i, item in enumerate(detail, start=1)
            if item
            for m in _flat_messages(item, f"{prefix}item {i}: ")
        ]
    return [f"{prefix}{detail}"]
