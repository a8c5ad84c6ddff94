"""The admin's sign-in form: password and authenticator code in one submit.

django-otp's admin form asks the user to pick a device from a list it can only fill once the
password is known, so the first submit always failed with "Please select a device.". MedAI gives
each user at most one confirmed authenticator (``two_factor.confirmed_device``): when none is
chosen, that one is used. A device named in the form is still honoured when it is the user's own.
"""

from __future__ import annotations

from typing import Any

from django_otp.admin import OTPAdminAuthenticationForm, OTPAdminSite

from .two_factor import confirmed_device


class AdminSignInForm(OTPAdminAuthenticationForm):
    def _chosen_device(self, user: Any) -> Any:
        return super()._chosen_device(user) or confirmed_device(user)


class MedaiAdminSite(OTPAdminSite):
    """The admin requires a verified second factor (TOTP) on top of the password."""

    login_form = AdminSignInForm
