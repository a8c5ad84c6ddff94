"""Enrol a user's TOTP authenticator (the admin site requires one) and print its set-up key."""

from __future__ import annotations

import base64
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django_otp.plugins.otp_totp.models import TOTPDevice

from medai_site.two_factor import totp_device_create


class Command(BaseCommand):
    help = "Create (or replace) a user's TOTP device and print the key for an authenticator app."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("username")
        parser.add_argument("--replace", action="store_true", help="Replace an existing device.")

    def handle(self, *args: Any, username: str, replace: bool, **options: Any) -> None:
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}.")
        if TOTPDevice.objects.filter(user=user).exists() and not replace:
            raise CommandError("This user already has an authenticator; use --replace to re-enrol.")
        device = totp_device_create(user=user, confirmed=True, replace=True)
        self.stdout.write(enrolment_text(device))


def enrolment_text(device: TOTPDevice) -> str:
    secret = base64.b32encode(device.bin_key).decode().rstrip("=")
    return f"Authenticator key for {device.user.get_username()}: {secret}\n  {device.config_url}"
