"""Inactivity expiry for every session-authenticated request — pages, the admin and the
browser's own API calls — with a clear message when it happens.

Two server-side guards, both sized by ``SESSION_COOKIE_AGE`` (MEDAI_SESSION_IDLE_SECONDS):

- Django's own session expiry (``SESSION_SAVE_EVERY_REQUEST``): the session dies after that long
  without any request.
- The activity clock: the session stores the time of the last request the *user* made, and a
  session idle for longer than the limit is ended on its next request, whatever that request
  is — a page, an admin page, a session API call, or a background poll.

Background polls (the advice panel while advice is pending, a training job's progress bar, the
page's idle timer) run as usual but never move the clock. A poll is recognised two ways: views
that exist only to be polled are marked :func:`background_poll` on the server, so a poll that
forgets its header still keeps nothing alive; and any request may mark itself with
``X-MedAI-Poll: 1``. The header can only *withhold* activity — it never exempts a request from
the idle check — so a normal page that sends it gains nothing (it just does not count as use).

A signed-in browser carries a small marker cookie (no PHI, no session data). A page or admin
request that arrives with the marker but without a live session therefore comes from a session
that expired, and is sent to the sign-in page, which says so. An API call answers 401 with
``session_expired``. Requests authenticated by a bearer token have no session and are left alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.urls import reverse

from .request_context import is_api_path

MARKER_COOKIE = "medai_signed_in"
POLL_HEADER = "X-MedAI-Poll"
LAST_ACTIVITY_KEY = "medai_last_activity"
# Paths that never use the session: static files and the health probes.
_SESSIONLESS = ("/static/", "/healthz", "/readyz")
_BACKGROUND_POLL_ATTR = "medai_background_poll"


def background_poll(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Mark a view that is only ever polled in the background: it never counts as activity."""
    setattr(view, _BACKGROUND_POLL_ATTR, True)
    return view


def idle_minutes() -> int:
    return max(1, round(settings.SESSION_COOKIE_AGE / 60))


def is_poll(request: HttpRequest) -> bool:
    return request.headers.get(POLL_HEADER) == "1"


# The REST API, the FHIR API and CDS Hooks answer for themselves: no redirects.
def _is_api(request: HttpRequest) -> bool:
    return is_api_path(request.path)


def _bearer(request: HttpRequest) -> bool:
    return request.headers.get("Authorization", "").lower().startswith("bearer ")


class SessionIdleMiddleware:
    """Ends idle sessions on any path, counts only the user's own requests as activity, and
    routes expired ones to the sign-in page (pages, admin) or a 401 (API)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith(_SESSIONLESS) or (_is_api(request) and _bearer(request)):
            return self.get_response(request)
        api = _is_api(request)
        had_marker = MARKER_COOKIE in request.COOKIES
        user = request.user
        if user.is_authenticated:
            now = time.time()
            last = request.session.get(LAST_ACTIVITY_KEY)
            if last is not None and now - float(last) > settings.SESSION_COOKIE_AGE:
                logout(request)
                return self._expired(request, api=api)
            if last is None:  # the session's first request starts the clock
                request.session[LAST_ACTIVITY_KEY] = now
        elif had_marker and not api:
            return self._expired(request, api=False)

        response = self.get_response(request)
        if api:
            return response  # the marker belongs to the pages' sign-in; the API answers itself
        signed_in = request.user.is_authenticated
        if signed_in and not had_marker:
            response.set_cookie(
                MARKER_COOKIE,
                "1",
                httponly=True,
                samesite="Lax",
                secure=settings.SESSION_COOKIE_SECURE,
            )
        elif not signed_in and had_marker:
            response.delete_cookie(MARKER_COOKIE, samesite="Lax")
        return response

    def process_view(
        self,
        request: HttpRequest,
        view_func: Callable[..., HttpResponse],
        view_args: Any,
        view_kwargs: Any,
    ) -> None:
        """The user's own request moves the activity clock; a background poll does not."""
        if not request.user.is_authenticated or request.path.startswith(_SESSIONLESS):
            return
        if _is_api(request) and _bearer(request):
            return
        if is_poll(request) or getattr(view_func, _BACKGROUND_POLL_ATTR, False):
            return
        request.session[LAST_ACTIVITY_KEY] = time.time()

    def _expired(self, request: HttpRequest, *, api: bool) -> HttpResponse:
        if api and request.path.startswith("/fhir/"):
            message = (
                f"Your session expired after {idle_minutes()} minutes of inactivity. Sign in again."
            )
            outcome = {
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "login", "diagnostics": message}],
            }
            return JsonResponse(outcome, status=401, content_type="application/fhir+json")
        if api:
            from .errors import error_body

            return JsonResponse(
                error_body(
                    "session_expired",
                    f"Your session expired after {idle_minutes()} minutes of inactivity. "
                    "Sign in again.",
                ),
                status=401,
            )
        login_url = reverse("login")
        if request.path == login_url:
            # The sign-in page itself: show it with the message, forget the marker.
            request.session_expired = True
            response = self.get_response(request)
        else:
            query = {"expired": "1"}
            if request.method == "GET" and not request.headers.get("HX-Request"):
                query["next"] = request.get_full_path()
            target = f"{login_url}?{urlencode(query)}"
            if request.headers.get("HX-Request"):
                # htmx would swap a redirect's page into a fragment; ask it to navigate instead.
                response = HttpResponse(status=204)
                response["HX-Redirect"] = target
            else:
                response = HttpResponseRedirect(target)
        response.delete_cookie(MARKER_COOKIE, samesite="Lax")
        return response
