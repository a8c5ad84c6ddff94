"""Two-factor sign-in (TOTP, django-otp): required for admins, a doctor's choice.

Only a *confirmed* device counts: enrolment creates an unconfirmed one, and it is confirmed by
a correct current code from the authenticator app. Once a user has a confirmed device (admins
always), a session is only signed in after a current code (``django_otp.login``); the page
sign-in does the password step first and keeps the user "pending" until then, and the page
helper (medai_site.pages) sends any authenticated but unverified session back to the code step.
"""

from __future__ import annotations

import base64
import logging
from typing import Any

from django.db import transaction
from django_otp.plugins.otp_totp.models import TOTPDevice

from .errors import Conflict, Forbidden, InvalidInput
from .roles import is_admin

logger = logging.getLogger(__name__)
DEVICE_NAME = "authenticator"


def confirmed_device(user: object) -> TOTPDevice | None:
    if not getattr(user, "is_authenticated", False):
        return None
    return TOTPDevice.objects.filter(user_id=user.pk, confirmed=True).first()


def pending_device(user: object) -> TOTPDevice | None:
    """An enrolment begun but not yet confirmed with a code (it does not protect anything)."""
    return TOTPDevice.objects.filter(user_id=user.pk, confirmed=False).first()


def second_factor_required(user: object) -> bool:
    """Admins always; anyone else once they have confirmed an authenticator."""
    return is_admin(user) or confirmed_device(user) is not None


def second_factor_missing(user: object) -> bool:
    """Signed in with the password but not (yet) with the code this account requires."""
    if not getattr(user, "is_authenticated", False):
        return False
    is_verified = getattr(user, "is_verified", None)  # installed by django_otp's OTPMiddleware
    if is_verified is not None and is_verified():
        return False
    return second_factor_required(user)


def setup_key(device: TOTPDevice) -> str:
    """The base32 key an authenticator app asks for when the QR code cannot be scanned."""
    return base64.b32encode(device.bin_key).decode().rstrip("=")


def _clean(token: str) -> str:
    return "".join((token or "").split())


def check_code(device: TOTPDevice, token: str) -> bool:
    """A current code from this device (throttled by django-otp; a code is accepted once).

    Callers must not wrap this in their own transaction: a failed attempt's throttle increment
    has to be committed even when the caller then raises.
    """
    token = _clean(token)
    if not (token.isdigit() and len(token) == device.digits):
        return False
    with transaction.atomic():
        locked = TOTPDevice.objects.select_for_update().get(pk=device.pk)
        if locked.verify_token(token):
            device.refresh_from_db()
            return True
    return False


def totp_device_create(*, user: Any, confirmed: bool, replace: bool = False) -> TOTPDevice:
    """The one place a TOTP device is made, with a fresh random key.

    ``confirmed=False``: the start of self-enrolment (a correct code confirms it). ``True``: an
    operator enrols the account directly and hands over the set-up key (``totp_enroll``, the
    demo's admin). ``replace`` drops the user's devices first; otherwise a user who already has
    a confirmed device is refused.
    """
    devices = TOTPDevice.objects.filter(user_id=user.pk)
    if replace:
        devices.delete()
    elif devices.filter(confirmed=True).exists():
        raise Conflict("Two-factor sign-in is already on for this account.")
    device = TOTPDevice.objects.create(user=user, name=DEVICE_NAME, confirmed=confirmed)
    if confirmed:
        logger.info("two-factor sign-in enrolled for user %s", user.pk)
    return device


def totp_enrol_start(*, user: object) -> TOTPDevice:
    """A fresh unconfirmed device (replacing an abandoned enrolment)."""
    if confirmed_device(user) is not None:
        raise Conflict("Two-factor sign-in is already on for this account.")
    TOTPDevice.objects.filter(user_id=user.pk, confirmed=False).delete()
    return totp_device_create(user=user, confirmed=False)


def totp_enrol_confirm(*, user: object, token: str) -> TOTPDevice:
    device = pending_device(user)
    if device is None:
        raise InvalidInput("Start the set-up first.")
    if not check_code(device, token):
        raise InvalidInput("That code is not correct.", fields={"code": ["Invalid."]})
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    logger.info("two-factor sign-in enrolled for user %s", user.pk)
    return device


def totp_enrol_cancel(*, user: object) -> None:
    TOTPDevice.objects.filter(user_id=user.pk, confirmed=False).delete()


def totp_disable(*, user: object, token: str) -> None:
    if is_admin(user):
        raise Forbidden("Administrators must keep two-factor sign-in.")
    device = confirmed_device(user)
    if device is None:
        raise Conflict("Two-factor sign-in is not on for this account.")
    if not check_code(device, token):
        raise InvalidInput("That code is not correct.", fields={"code": ["Invalid."]})
    TOTPDevice.objects.filter(user_id=user.pk).delete()
    logger.info("two-factor sign-in disabled for user %s", user.pk)
