"""Forms of the site-wide pages (sign-in's second step, two-factor settings)."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _


class CodeForm(forms.Form):
    """A current 6-digit code from the authenticator app."""

    code = forms.CharField(
        label=_("6-digit code from your authenticator app"),
        max_length=12,
        widget=forms.TextInput(
            attrs={
                "autocomplete": "one-time-code",
                "inputmode": "numeric",
                "autocapitalize": "none",
                "autofocus": True,
            }
        ),
    )

    def clean_code(self) -> str:
        code = "".join(self.cleaned_data["code"].split())
        if not (code.isdigit() and len(code) == 6):
            raise forms.ValidationError(_("Enter the 6 digits your authenticator app shows."))
        return code


class CurrentPasswordMixin(forms.Form):
    """Asks for the account's current password: a session alone (a borrowed or stolen browser)
    must not change how the account signs in or mint credentials that outlive the session.

    Checked through ``authenticate()``, so wrong passwords count towards the account's lockout
    (django-axes) exactly as at sign-in.
    """

    password = forms.CharField(
        label=_("Your current password"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )

    def __init__(self, *args: object, request: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.request = request

    def clean_password(self) -> str:
        from django.contrib.auth import authenticate
        from django.core.exceptions import PermissionDenied

        user = self.request.user
        password = self.cleaned_data["password"]
        try:
            checked = authenticate(self.request, username=user.get_username(), password=password)
        except PermissionDenied:  # locked out after too many failures
            checked = None
        if checked is None or checked.pk != user.pk:
            raise forms.ValidationError(_("That is not your current password."))
        return password


class AuthenticatorChangeForm(CurrentPasswordMixin, CodeForm):
    """Adding an authenticator (the new app's code) or removing it (its current code), with the
    account's current password either way."""


class ApiTokenForm(CurrentPasswordMixin):
    """A personal API token: the caller's own, scopes no wider than their role, with a lifetime."""

    name = forms.CharField(
        label=_("What the token is for"),
        max_length=100,
        help_text=_("e.g. 'ward tablet script'. Shown in lists; never the secret."),
    )
    scopes = forms.MultipleChoiceField(label=_("Scopes"), widget=forms.CheckboxSelectMultiple)
    days = forms.IntegerField(label=_("Lifetime in days"), min_value=1, max_value=366, initial=30)

    field_order = ["name", "scopes", "days", "password"]

    def __init__(
        self, *args: object, request: object, scopes: list[tuple[str, str]], **kwargs: object
    ) -> None:
        super().__init__(*args, request=request, **kwargs)
        self.fields["scopes"].choices = scopes
