"""Middleware that serves the browser only, passed over by API calls that carry a bearer token.

A call to the APIs (``/api/``, ``/fhir/``, ``/cds-services``) with ``Authorization: Bearer``
is authenticated by its token (or, for CDS Hooks, the EHR's JWT) alone: it has no session, no
second factor, no flash messages, no static file and no sign-in form to lock out. Running the
session, authentication, OTP, messages, idle-session, sign-in lockout, form-body and static-file
middleware for it cost a fifth of a prediction request's time and changed nothing. Each of those
middleware is listed in ``settings.MIDDLEWARE`` through :func:`browser_only`, which keeps its
place in the order and every hook Django collects from it (``process_view``,
``process_exception``, ``process_template_response``), and skips it for bearer API calls.
Security headers, CSRF (Django's deployment check wants it by name; it costs little for the
APIs' CSRF-exempt views), the request id, localisation, metrics and the common middleware run
for every request.

A bearer call is never given the browser's identity: no session is loaded, and
``request.user`` is what the token says.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.utils.module_loading import import_string

from .request_context import is_api_path

_HOOKS = ("process_view", "process_exception", "process_template_response")


def bearer_api_call(request: HttpRequest) -> bool:
    """An API call authenticated by a bearer credential (decided once per request)."""
    decided = getattr(request, "_medai_bearer_api_call", None)
    if decided is None:
        authorization = request.META.get("HTTP_AUTHORIZATION", "")
        decided = is_api_path(request.path) and authorization[:7].lower() == "bearer "
        request._medai_bearer_api_call = decided  # type: ignore[attr-defined]
    return decided


def browser_only(path: str) -> type:
    """The middleware at ``path``, passed over for bearer API calls (see the module's text).

    A subclass, so Django's and the packages' own checks ("is the session middleware
    installed?") still find it.
    """
    inner_class = import_string(path)

    class BrowserOnly(inner_class):  # type: ignore[misc, valid-type]
        # Synchronous only: under ASGI Django adapts around it (its __call__ is not a coroutine).
        async_capable = False
        sync_capable = True

        def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
            self._next = get_response
            super().__init__(get_response)  # MiddlewareNotUsed propagates as usual

        def __call__(self, request: HttpRequest) -> HttpResponse:
            if bearer_api_call(request):
                return self._next(request)
            return super().__call__(request)

    for hook in _HOOKS:
        if hasattr(inner_class, hook):
            setattr(BrowserOnly, hook, _skipping(inner_class, hook))
    BrowserOnly.__name__ = BrowserOnly.__qualname__ = inner_class.__name__
    BrowserOnly.__doc__ = f"{path}, for everything but bearer API calls."
    return BrowserOnly


def _skipping(inner_class: type, hook: str) -> Callable[..., Any]:
    inner_hook = getattr(inner_class, hook)

    def call(self: Any, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        if bearer_api_call(request):
            return None  # Django's convention: this middleware has nothing to say
        return inner_hook(self, request, *args, **kwargs)

    call.__name__ = hook
    return call


# The entries of settings.MIDDLEWARE (Django imports middleware by dotted path).
FormBodyMiddleware = browser_only("medai_site.middleware.FormBodyMiddleware")
WhiteNoiseMiddleware = browser_only("whitenoise.middleware.WhiteNoiseMiddleware")
SessionMiddleware = browser_only("django.contrib.sessions.middleware.SessionMiddleware")
AuthenticationMiddleware = browser_only("django.contrib.auth.middleware.AuthenticationMiddleware")
OTPMiddleware = browser_only("django_otp.middleware.OTPMiddleware")
MessageMiddleware = browser_only("django.contrib.messages.middleware.MessageMiddleware")
SessionIdleMiddleware = browser_only("medai_site.session_idle.SessionIdleMiddleware")
AxesMiddleware = browser_only("axes.middleware.AxesMiddleware")
