"""Site-wide pages: sign in/out, the idle check, and the friendly error pages.

The dashboard reads every app, so it is a predictions page (predictions.views.dashboard_view).

Sign-in is two steps for an account with an authenticator (medai_site.two_factor_views).
"""

from __future__ import annotations

import logging
import sys

from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.html import escape
from django.views.decorators.http import require_GET

from . import two_factor
from .errors import RETRY_AFTER_SECONDS, ServiceUnavailable, error_body, transient_error
from .request_context import is_api_path
from .roles import is_doctor
from .session_idle import idle_minutes
from .two_factor_views import second_step_begin

logger = logging.getLogger(__name__)


class LoginView(auth_views.LoginView):
    template_name = "registration/login.html"
    redirect_authenticated_user = True

    def form_valid(self, form: AuthenticationForm) -> HttpResponse:
        """The password is right; an account with a second factor still owes its code."""
        user = form.get_user()
        if not two_factor.second_factor_required(user):
            return super().form_valid(form)
        if two_factor.confirmed_device(user) is None:  # an admin who never enrolled one
            context = self.get_context_data(form=form, needs_authenticator=True)
            return self.render_to_response(context, status=403)
        return second_step_begin(self.request, user, next_url=self.get_success_url())

    def get_context_data(self, **kwargs: object) -> dict[str, object]:
        context = super().get_context_data(**kwargs)
        context["session_expired"] = getattr(self.request, "session_expired", False) or (
            self.request.GET.get("expired") == "1"
        )
        context["idle_minutes"] = idle_minutes()
        return context


class LogoutView(auth_views.LogoutView):
    """POST only (Django's default): a link cannot sign a doctor out by accident."""

    next_page = "login"


@require_GET
def session_check(request: HttpRequest) -> HttpResponse:
    """The page's idle timer asks here (as a poll: it keeps nothing alive) whether to leave."""
    if request.user.is_authenticated:
        response = HttpResponse(status=204)
    else:
        response = HttpResponse(status=401)
    response["Cache-Control"] = "no-store"
    return response


def _api(request: HttpRequest) -> bool:
    return is_api_path(request.path)


def error_403(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _api(request):
        return JsonResponse(error_body("forbidden", "Not allowed."), status=403)
    return render(request, "errors/403.html", status=403)


def error_404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _api(request):
        return JsonResponse(error_body("not_found", "Not found."), status=404)
    # A doctor who reached a chart outside their care teams is offered emergency access.
    break_glass = request.path.startswith(("/patients/", "/visits/")) and is_doctor(request.user)
    return render(request, "errors/404.html", {"break_glass": break_glass}, status=404)


def _kept_fields(request: HttpRequest) -> list[tuple[str, str]]:
    """The POSTed form as (name, value) pairs, to re-send from the "try again" page."""
    if request.method != "POST":
        return []
    try:
        return [(name, value) for name, values in request.POST.lists() for value in values]
    except Exception:  # an unreadable body: nothing to keep
        return []


def error_unavailable(request: HttpRequest) -> HttpResponse:
    """503 with Retry-After: the database or broker did not answer; nothing was saved.

    The page is self-contained (no base template: it would read the session and the user, from
    the database that just failed) and keeps what the user typed: "Try again" re-sends the same
    form, CSRF token included, to the same address.
    """
    request_id = getattr(request, "request_id", "")
    if _api(request):
        response: HttpResponse = JsonResponse(
            error_body(ServiceUnavailable.code, ServiceUnavailable.default_message), status=503
        )
    else:
        context = {
            "request_id": request_id,
            "fields": _kept_fields(request),
            "retry_after": RETRY_AFTER_SECONDS,
        }
        try:
            response = render(request, "errors/503.html", context, status=503)
        except Exception:
            response = HttpResponse(
                "<!doctype html><title>MedAI</title><h1>Temporarily unavailable</h1>"
                "<p>Please try again in a few seconds.</p>",
                status=503,
            )
        response["Cache-Control"] = "no-store"  # it may echo the user's own input
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def error_500(request: HttpRequest) -> HttpResponse:
    # Django calls this inside its exception handler: the exception is the current one.
    if transient_error(sys.exc_info()[1]):
        logger.warning(
            "service unavailable (%s), request %s: answered 503",
            type(sys.exc_info()[1]).__name__,
            getattr(request, "request_id", ""),
        )
        return error_unavailable(request)
    # Only the request id: the failing request's details may carry PHI.
    request_id = getattr(request, "request_id", "")
    logger.error("page error, request %s", request_id)
    if _api(request):
        return JsonResponse(error_body("server_error", "Server error."), status=500)
    try:
        return render(request, "errors/500.html", {"request_id": request_id}, status=500)
    except Exception:  # the templates themselves may be what failed
        return HttpResponse(
            "<!doctype html><title>MedAI</title><h1>Something went wrong</h1>"
            f"<p>Reference: {escape(request_id)}</p>",
            status=500,
        )
