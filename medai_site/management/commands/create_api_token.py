"""Create an API token for an integration-client account; prints the secret once (not stored).

People create their own tokens (Account → API tokens); an operator cannot mint one that acts as
a person. The token records no creator (``created_by`` empty = issued at the command line).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from medai_site.api_auth import MAX_TOKEN_DAYS, Scope, api_token_create
from medai_site.errors import Forbidden, InvalidInput


class Command(BaseCommand):
    help = (
        "Create a scoped, expiring API token for the integration-client account USER. The "
        "token's user is the viewer in every read, so the client sees what that user's care "
        "teams allow. The secret is printed once. People create their own tokens in the app."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", required=True, help="Username the token acts as.")
        parser.add_argument(
            "--scopes",
            required=True,
            nargs="+",
            metavar="SCOPE",
            help=f"One or more of: {', '.join(Scope.values)} (space or comma separated).",
        )
        parser.add_argument(
            "--days", type=int, default=90, help=f"Lifetime in days (1–{MAX_TOKEN_DAYS})."
        )
        parser.add_argument("--name", default="", help="The client system (default: the user).")

    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        try:
            user = User.objects.get(username=options["user"])
        except User.DoesNotExist:
            raise CommandError(f"No user named {options['user']!r}.") from None
        scopes = [s for chunk in options["scopes"] for s in chunk.split(",") if s.strip()]
        try:
            token, secret = api_token_create(
                user=user,
                name=options["name"] or f"{user.get_username()} client",
                scopes=[s.strip() for s in scopes],
                days=options["days"],
                actor=None,
            )
        except (InvalidInput, Forbidden) as exc:
            raise CommandError(exc.message) from None
        self.stderr.write(
            f"Token {token.prefix}… for {user.get_username()}, scopes {', '.join(token.scopes)}, "
            f"expires {token.expires_at:%Y-%m-%d %H:%M %Z}. Store the secret now; it is not shown again:"
        )
        self.stdout.write(secret)
