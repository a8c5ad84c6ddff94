"""Who is calling the REST API, what they may do, and how often.

* **Tokens** (:class:`~medai_site.models.ApiToken`): ``Authorization: Bearer medai_<secret>``.
  Only the sha256 of the token is stored; it expires, can be revoked and carries scopes. The
  token's user is the viewer in every selector, so care-team scoping applies unchanged.
* **Sessions**: the browser's own calls (CSRF enforced), once sign-in is complete including the
  second factor (:class:`VerifiedSessionAuthentication`). A session carries every scope its user's
  role allows.
* **Who may issue a token** (:func:`api_token_create`): a person issues their own (Account → API
  tokens, with their password); an integration-client account's tokens are issued by a hospital
  admin (the admin) or an operator (``manage.py create_api_token``). Nobody mints a token that
  acts as another person. The token records who created it, and every audit record written
  through it records the token.
* **Scopes**: each view names the scope each HTTP method needs (``required_scopes``); a view or
  method without a declaration is refused (fail closed). ``NO_SCOPE`` declares an operation any
  authenticated caller with a clinical role may use (reference data such as ICD-10).
* **Roles**: every call needs a clinical role (:func:`medai_site.roles.has_clinical_role`), the
  same rule the selectors apply; a user removed from their role loses the API with it.
* **Throttling**: one bucket per client (token, else user, else IP).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from redis.exceptions import RedisError
from rest_framework import exceptions, permissions
from rest_framework.authentication import (
    BaseAuthentication,
    SessionAuthentication,
    get_authorization_header,
)
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from .audit import audit_record
from .compiled_query import CompiledQuery
from .errors import Conflict, Forbidden, InvalidInput
from .models import ApiToken, AuditEvent
from .rate_limit import Budget, budget_spend
from .request_context import current_api_token_id
from .roles import (
    account_of,
    has_clinical_role,
    is_admin,
    is_integration_account,
    may_train_models,
    roles_preload,
    with_role_names,
)

logger = logging.getLogger(__name__)

Scope = ApiToken.Scope
TOKEN_PREFIX = "medai_"  # noqa: S105 (a public marker that makes leaked tokens greppable, not a secret)
MAX_TOKEN_DAYS = 366  # a token outlives no more than a year; clients rotate
# last_used_at is informational; writing it at most once a minute keeps reads read-only.
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


# A declaration in ``required_scopes`` for operations that need no particular scope: reference
# data any authenticated caller with a clinical role may read (ICD-10, the catalogue, models).
NO_SCOPE = ""


def token_issuer_problem(*, user: Any, actor: object | None) -> str | None:
    """Why ``actor`` may not issue a token acting as ``user`` (None when they may).

    A token acts as its user in every selector and audit record, so only that person may create
    one for themselves; integration-client accounts (no person behind them) get theirs from a
    hospital admin, or from an operator at the command line (``actor`` None).
    """
    if is_integration_account(user):
        if actor is None or is_admin(actor):
            return None
        return "Only a hospital administrator issues tokens for integration clients."
    if actor is not None and getattr(actor, "pk", None) == user.pk:
        return None
    return (
        "A person's API tokens are created by that person (Account → API tokens); admins issue "
        "tokens for integration-client accounts only."
    )


@transaction.atomic
def api_token_create(
    *, user: Any, name: str, scopes: Iterable[str], days: int, actor: object | None
) -> tuple[ApiToken, str]:
    """Create a token; returns it with its secret, which is never stored and never shown again.

    ``actor`` is who issues it: the user themselves, or (for an integration-client account) a
    hospital admin; None stands for an operator at the command line.
    """
    problem = token_issuer_problem(user=user, actor=actor)
    if problem is not None:
        raise Forbidden(problem)
    scopes = sorted(set(scopes))
    unknown = sorted(set(scopes) - set(Scope.values))
    if unknown:
        raise InvalidInput(
            f"Unknown scope(s): {', '.join(unknown)}.", fields={"scopes": ["Unknown scope."]}
        )
    if not scopes:
        raise InvalidInput("A token needs at least one scope.", fields={"scopes": ["Required."]})
    if not 1 <= days <= MAX_TOKEN_DAYS:
        raise InvalidInput(
            f"A token lives 1–{MAX_TOKEN_DAYS} days.",
            fields={"days": [f"Between 1 and {MAX_TOKEN_DAYS}."]},
        )
    if not (name or "").strip():
        raise InvalidInput("Name the client the token is for.", fields={"name": ["Required."]})
    if not getattr(user, "is_active", False):
        raise InvalidInput("The token's user is inactive.", fields={"user": ["Inactive user."]})
    if Scope.MODELS_MANAGE in scopes and not may_train_models(user):
        raise InvalidInput(
            "This user's role may not manage models; a token cannot grant more than the role.",
            fields={"scopes": ["models:manage is beyond this user's role."]},
        )
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        name=name.strip(),
        user=user,
        prefix=secret[: len(TOKEN_PREFIX) + 8],
        token_hash=token_hash(secret),
        scopes=scopes,
        expires_at=timezone.now() + dt.timedelta(days=days),
        created_by=account_of(actor),
    )
    audit_record(actor=actor, action=AuditEvent.Action.CREATE, obj=token)  # never the secret
    return token, secret


@transaction.atomic
def api_token_revoke(*, token: ApiToken, actor: object | None) -> ApiToken:
    token = ApiToken.objects.select_for_update().get(pk=token.pk)
    if token.revoked_at is not None:
        raise Conflict("This token is already revoked.")
    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at"])
    audit_record(
        actor=actor, action=AuditEvent.Action.UPDATE, obj=token
    )  # credentials: accounted for
    return token


@transaction.atomic
def api_tokens_revoke_for_user(*, user: Any, actor: object | None) -> int:
    """Revoke every live token of ``user`` (each revocation audited); returns how many.

    Called when the user loses a role or is deactivated (medai_site.accounts): a token must not
    outlive the standing that justified it.
    """
    live = ApiToken.objects.select_for_update().filter(user_id=user.pk, revoked_at__isnull=True)
    revoked = 0
    for token in live:
        api_token_revoke(token=token, actor=actor)
        revoked += 1
    return revoked


def _token_query(hashed: str) -> Any:
    return with_role_names(
        ApiToken.objects.select_related("user").filter(token_hash=hashed), "user_id"
    )


# Compiled once per process (medai_site.compiled_query): the look-up runs on every API request.
_TOKEN_WITH_ROLES = CompiledQuery(_token_query)


def _token_with_roles(hashed: str) -> ApiToken | None:
    """The token, its user and the user's role names in one query (PostgreSQL): the roles are
    read fresh with the token on every request, so nothing is cached, a role removed (or a token
    revoked) counts from the next request, and the ``auth_group`` look-up is saved."""
    token = _TOKEN_WITH_ROLES.first(hashed)
    if token is not None and hasattr(token, "role_names"):
        roles_preload(token.user, token.role_names)
    return token


class BearerTokenAuthentication(BaseAuthentication):
    """``Authorization: Bearer <token>`` → (token's user, ApiToken)."""

    keyword = b"bearer"

    def authenticate(self, request: Request) -> tuple[Any, ApiToken] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword:
            return None  # not ours: session authentication may still apply
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Malformed Authorization header.")
        try:
            raw = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid token.") from None
        token = _token_with_roles(token_hash(raw))
        now = timezone.now()
        if token is None or token.revoked_at is not None or not token.user.is_active:
            raise exceptions.AuthenticationFailed("Invalid or revoked token.")
        if token.expires_at <= now:
            raise exceptions.AuthenticationFailed("This token has expired.")
        if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        # Every audit record of this request names the token (reset by RequestContextMiddleware).
        current_api_token_id.set(token.pk)
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class VerifiedSessionAuthentication(SessionAuthentication):
    """The browser's session, but only once sign-in is complete (second factor included).

    A session that passed the password but still owes the TOTP code its account requires is
    treated as anonymous here, exactly as the pages treat it.
    """

    def authenticate(self, request: Request) -> tuple[Any, None] | None:
        from .two_factor import second_factor_missing

        result = super().authenticate(request)
        if result is not None and second_factor_missing(result[0]):
            return None
        return result


def request_scopes(request: Request) -> set[str]:
    """Scopes of the caller: a token's (or other credential's) own; for a session, what the
    user's role allows."""
    scopes = getattr(request.auth, "scopes", None)  # an ApiToken, or a CDS Hooks client's JWT
    if scopes is not None:
        granted = set(scopes)
    elif getattr(request.user, "is_authenticated", False):
        granted = set(Scope.values)
    else:
        return set()
    # A scope never exceeds what the user's role allows (pages use the same rule). Checked only
    # for the scope that needs it: the role look-up costs queries every other call can skip.
    if Scope.MODELS_MANAGE in granted and not may_train_models(request.user):
        granted.discard(Scope.MODELS_MANAGE)
    return granted


def require_scope(request: Request, scope: str) -> None:
    """For an operation that needs a further scope depending on its input (e.g. accepting advice,
    which records a diagnosis, also needs ``visits:write``)."""
    if scope not in request_scopes(request):
        raise exceptions.PermissionDenied(f"This operation needs the '{scope}' scope.")


def declared_scope(view: Any, method: str) -> str | None:
    """The scope ``view`` declares for ``method`` (None: undeclared, which is refused).

    HEAD is a GET without a body; OPTIONS describes the view and needs what its GET needs, else
    any scope the view declares.
    """
    declared = getattr(view, "required_scopes", None) or {}
    if method == "HEAD":
        method = "GET"
    if method == "OPTIONS":
        return declared.get("GET", next(iter(declared.values()), None))
    return declared.get(method)


class HasScope(permissions.BasePermission):
    """The scope a view names for the request's method (``required_scopes``). Fail closed: an
    undeclared method or a view with no declaration at all is refused."""

    message = "This token lacks the scope this operation needs."

    def has_permission(self, request: Request, view: Any) -> bool:
        method = request.method or ""
        if not hasattr(view, method.lower()):
            return True  # no handler: DRF answers 405 and nothing runs
        needed = declared_scope(view, method)
        if needed is None:
            self.message = "This operation declares no scope, so it is refused."
            return False
        if needed == NO_SCOPE or needed in request_scopes(request):
            return True
        self.message = f"This operation needs the '{needed}' scope."
        return False


class HasClinicalRole(permissions.BasePermission):
    """A clinical role (doctor, integration client, admin): the role half of the access rule
    that the selectors apply to every record (patients.access)."""

    message = "This account has no clinical role."

    def has_permission(self, request: Request, view: Any) -> bool:
        return has_clinical_role(request.user)


class IsHospitalAdmin(permissions.BasePermission):
    message = "Only hospital administrators may do this."

    def has_permission(self, request: Request, view: Any) -> bool:
        return is_admin(request.user)


class ClientRateThrottle(BaseThrottle):
    """One request budget per client: the API token, else the user, else the IP address.

    Counted as a fixed window in the shared cache, one round trip per request
    (:mod:`medai_site.rate_limit`). The rate is read from settings on every request (not at
    import), so deployments and tests can change ``MEDAI_API_RATE`` / ``MEDAI_API_ANON_RATE``.
    """

    scope = "client"
    rate_setting = "MEDAI_API_RATE"  # the authenticated callers' rate

    def __init__(self) -> None:
        self.retry_after: float | None = None

    def allow_request(self, request: Request, view: Any) -> bool:
        authenticated = getattr(request.user, "is_authenticated", False)
        rate = (
            getattr(settings, self.rate_setting) if authenticated else settings.MEDAI_API_ANON_RATE
        )
        try:
            spend = budget_spend(self.get_cache_key(request, view), Budget.parse(rate))
        except (RedisError, OSError) as exc:
            # The shared cache is down (a Redis outage): rate limiting fails open, so recording
            # visits keeps working through a broker outage as the outbox intends (issue 18);
            # the outage is logged (no request detail) and /metrics shows the broker's state.
            logger.warning(
                "rate limit not applied: the cache is unavailable (%s)", type(exc).__name__
            )
            return True
        self.retry_after = None if spend.allowed else spend.retry_after
        return spend.allowed

    def wait(self) -> float | None:
        """Seconds until the budget renews (DRF's ``Retry-After``)."""
        return self.retry_after

    def get_cache_key(self, request: Request, view: Any) -> str:
        if isinstance(request.auth, ApiToken):
            ident = f"token:{request.auth.pk}"
        elif getattr(request.user, "is_authenticated", False):
            ident = f"user:{request.user.pk}"
        else:
            ident = f"ip:{self.get_ident(request)}"
        # Not DRF's "throttle_..." keys: during a rolling deploy, workers still on DRF's sliding
        # log keep a pickled list there, which a counter must neither read nor overwrite.
        return f"budget:{self.scope}:{ident}"


class PredictRateThrottle(ClientRateThrottle):
    """The prediction API's own budget per client (``MEDAI_PREDICT_RATE``): scoring is cheap and
    integrators call it in bulk, so it neither eats nor is limited by the general budget."""

    scope = "predict"
    rate_setting = "MEDAI_PREDICT_RATE"


def client_id(request: Request) -> str:
    """The idempotency and throttling identity of the caller."""
    if isinstance(request.auth, ApiToken):
        return f"token:{request.auth.pk}"
    return f"user:{request.user.pk}"
