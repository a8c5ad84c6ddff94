"""Inactivity expiry for the pages, with a clear message when it happens.

Two server-side guards, both sized by ``SESSION_COOKIE_AGE`` (MEDAI_SESSION_IDLE_SECONDS):

- Django's own session expiry (``SESSION_SAVE_EVERY_REQUEST``): the session dies after that long
  without any request.
- Background polling (the advice panel, a training job's progress bar, the idle timer) sends
  ``X-MedAI-Poll: 1``. Polls keep nothing alive: the session stores the time of the last request
  the *user* made, and a session idle for longer than the limit is ended even while a page polls.

A signed-in browser carries a small marker cookie (no PHI, no session data). A request that
arrives with the marker but without a live session therefore comes from a session that expired,
and is sent to the sign-in page, which says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

MARKER_COOKIE = "medai_signed_in"
POLL_HEADER = "X-MedAI-Poll"
LAST_ACTIVITY_KEY = "medai_last_activity"
# Paths outside the pages: the API authenticates on its own and the admin has its own login.
_NOT_PAGES = ("/api/", "/admin/", "/static/", "/healthz", "/readyz")


def idle_minutes() -> int:
    return max(1, round(settings.SESSION_COOKIE_AGE / 60))


def is_poll(request: HttpRequest) -> bool:
    return request.headers.get(POLL_HEADER) == "1"


class SessionIdleMiddleware:
    """Ends idle sessions (polls excluded) and routes expired ones to the sign-in page."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith(_NOT_PAGES):
            return self.get_response(request)
        had_marker = MARKER_COOKIE in request.COOKIES
        user = request.user
        if user.is_authenticated:
            now = time.time()
            last = request.session.get(LAST_ACTIVITY_KEY)
            if last is not None and now - float(last) > settings.SESSION_COOKIE_AGE:
                logout(request)
                return self._expired(request)
            if not is_poll(request) or last is None:
                request.session[LAST_ACTIVITY_KEY] = now
        elif had_marker:
            return self._expired(request)

        response = self.get_response(request)
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

    def _expired(self, request: HttpRequest) -> HttpResponse:
        login_url = reverse("login")
        if request.path == login_url:
            # The sign-in page itself: show it with the message, forget the marker.
            request.session_expired = True  # type: ignore[attr-defined]
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
