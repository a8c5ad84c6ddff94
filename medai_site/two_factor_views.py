"""Two-factor pages: the code step of sign-in, and enrolling/removing an authenticator.

After a correct password, an account that needs a second factor is not signed in yet: the
session only remembers, for a few minutes, who is half-way ("pending"). A correct current code
signs the user in (``auth.login``) and marks the session verified (``django_otp.login``). A
session that is signed in but unverified (e.g. the user enrolled an authenticator in another
browser) is sent here too by the page helper, and finishes the same way.
"""

from __future__ import annotations

import contextlib
import time

import django_otp
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth import login as auth_login
from django.contrib.auth import logout as auth_logout
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render, resolve_url
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_http_methods

from . import two_factor
from .audit import audit_record
from .errors import Conflict, InvalidInput
from .forms import AuthenticatorChangeForm, CodeForm
from .models import AuditEvent
from .pages import page
from .roles import is_admin

PENDING_KEY = "medai_second_factor_pending"
PENDING_SECONDS = 5 * 60  # the password step is good for this long
MAX_CODE_FAILURES = 5  # then back to the password step (django-otp also slows each retry)


def second_step_begin(request: HttpRequest, user: object, *, next_url: str) -> HttpResponse:
    """Password accepted: remember who is half-way, and ask for the code."""
    request.session.cycle_key()
    request.session[PENDING_KEY] = {
        "user": user.pk,
        "backend": user.backend,  # set by authenticate()
        "next": next_url,
        "at": time.time(),
        "failures": 0,
    }
    return redirect("login_verify")


def _safe_next(request: HttpRequest, candidate: str | None) -> str:
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return resolve_url("dashboard")


def _pending(request: HttpRequest) -> dict | None:
    pending = request.session.get(PENDING_KEY)
    if not pending or time.time() - pending.get("at", 0) > PENDING_SECONDS:
        request.session.pop(PENDING_KEY, None)
        return None
    return pending


@never_cache
@csrf_protect
@require_http_methods(["GET", "POST"])
def login_code_view(request: HttpRequest) -> HttpResponse:
    pending = None
    if request.user.is_authenticated:  # signed in with the password, code still owed
        if not two_factor.second_factor_missing(request.user):
            return redirect(_safe_next(request, request.GET.get("next")))
        user = request.user
        next_url = _safe_next(request, request.POST.get("next") or request.GET.get("next"))
    else:
        pending = _pending(request)
        if pending is None:
            return redirect("login")
        user = get_user_model().objects.filter(pk=pending["user"], is_active=True).first()
        next_url = pending["next"]
    device = two_factor.confirmed_device(user) if user is not None else None
    if device is None:  # the account vanished, or an admin's authenticator was removed
        request.session.pop(PENDING_KEY, None)
        auth_logout(request)
        return redirect("login")

    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if two_factor.check_code(device, form.cleaned_data["code"]):
            if pending is not None:
                auth_login(request, user, backend=pending["backend"])
                request.session.pop(PENDING_KEY, None)
            django_otp.login(request, device)
            return redirect(next_url)
        failures = _count_failure(request, pending)
        if failures >= MAX_CODE_FAILURES:
            request.session.pop(PENDING_KEY, None)
            auth_logout(request)
            messages.error(request, _("Too many wrong codes. Sign in again."))
            return redirect("login")
        form.add_error(
            "code",
            _(
                "That code is not correct, or it was already used. Wait for the next code "
                "and try again."
            ),
        )
    return render(
        request,
        "registration/login_code.html",
        {"form": form, "next": next_url if pending is None else ""},
        status=400 if form.errors else 200,
    )


def _count_failure(request: HttpRequest, pending: dict | None) -> int:
    if pending is not None:
        pending["failures"] = pending.get("failures", 0) + 1
        request.session[PENDING_KEY] = pending
        return pending["failures"]
    failures = request.session.get("medai_second_factor_failures", 0) + 1
    request.session["medai_second_factor_failures"] = failures
    return failures


DEVICE_TYPE = "otp_totp.totpdevice"  # the audit trail's name for an authenticator


def _audit_authenticator(request: HttpRequest, action: str, device_id: object) -> None:
    """Adding, removing, and refused attempts at either: who, when, which device (no secret)."""
    audit_record(
        actor=request.user, action=action, object_type=DEVICE_TYPE, object_id=str(device_id or "")
    )


@page
@never_cache
@require_http_methods(["GET", "POST"])
def two_factor_view(request: HttpRequest) -> HttpResponse:
    """Turn two-factor sign-in on (enrol + confirm with a code) or off (with a code).

    Confirming a new authenticator and removing one both need the current password as well (a
    signed-in session alone must not change how the account signs in); removing also needs the
    current code. Every change, and every refused attempt, is audited.
    """
    user = request.user
    action = request.POST.get("action", "")
    form = AuthenticatorChangeForm(
        request.POST if action in {"confirm", "disable"} else None, request=request
    )
    if request.method == "POST":
        if action == "start":
            with contextlib.suppress(Conflict):  # already on: the page shows it
                two_factor.totp_enrol_start(user=user)
            return redirect("two_factor")
        if action == "cancel":
            two_factor.totp_enrol_cancel(user=user)
            return redirect("two_factor")
        if action == "confirm" and form.is_valid():
            try:
                device = two_factor.totp_enrol_confirm(user=user, token=form.cleaned_data["code"])
            except InvalidInput:
                pending = two_factor.pending_device(user)
                _audit_authenticator(request, AuditEvent.Action.DENIED, pending and pending.pk)
                form.add_error("code", _("That code is not correct. Check the key and try again."))
            else:
                _audit_authenticator(request, AuditEvent.Action.CREATE, device.pk)
                django_otp.login(request, device)  # this session has just proved the code
                messages.success(request, _("Two-factor sign-in is on."))
                return redirect("two_factor")
        elif action == "disable" and form.is_valid():
            device = two_factor.confirmed_device(user)
            try:
                two_factor.totp_disable(user=user, token=form.cleaned_data["code"])
            except InvalidInput:
                _audit_authenticator(request, AuditEvent.Action.DENIED, device and device.pk)
                form.add_error("code", _("That code is not correct."))
            except Conflict:
                return redirect("two_factor")
            else:
                _audit_authenticator(request, AuditEvent.Action.DELETE, device and device.pk)
                messages.success(request, _("Two-factor sign-in is off."))
                return redirect("two_factor")
        elif action in {"confirm", "disable"}:  # the form refused it, e.g. a wrong password
            if "password" in form.errors:
                device = two_factor.confirmed_device(user) or two_factor.pending_device(user)
                _audit_authenticator(request, AuditEvent.Action.DENIED, device and device.pk)
        else:
            return HttpResponse(status=400)
    device = two_factor.confirmed_device(user)
    enrolling = None if device is not None else two_factor.pending_device(user)
    return render(
        request,
        "registration/two_factor.html",
        {
            "device": device,
            "enrolling": enrolling,
            "setup_key": two_factor.setup_key(enrolling) if enrolling else "",
            "setup_uri": enrolling.config_url if enrolling else "",
            "form": form,
            "required": is_admin(user),
        },
        status=400 if form.errors else 200,
    )
