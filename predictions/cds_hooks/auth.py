"""CDS Hooks authentication: the EHR's signed JWT, from configured issuers and keys only.

CDS Hooks 2.0 ("Trusting CDS Clients"): every call carries ``Authorization: Bearer <JWT>``
signed by the EHR, with ``iss``, ``aud`` (this service's endpoint), ``exp`` (at most five
minutes after ``iat``), ``iat`` and ``jti``. MedAI accepts only the issuers listed in
``CDS_HOOKS_CLIENTS`` (``{issuer: {"jwks": {"keys": [...]}, "user": "<username>"}}``), verifies
the signature with that issuer's configured public keys (asymmetric algorithms only; a
``jku`` header is never followed: keys are configuration, not something a caller can point to),
refuses a replayed ``jti``, and acts as the integration-client account the issuer is bound to,
so roles, scopes, throttling and the model-use record work as for API tokens.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import jwt
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from medai_site.api_auth import Scope
from medai_site.compiled_query import CompiledQuery
from medai_site.roles import roles_preload, with_role_names

# RS384 and ES384 are the algorithms CDS Hooks names; the 256/512 variants of the same families
# are accepted too. Never "none" and never HMAC: a shared secret could be replayed as a key.
ALGORITHMS = ("RS384", "ES384", "RS256", "ES256", "RS512", "ES512", "PS384", "PS256")
MAX_LIFETIME_SECONDS = 300  # the specification's limit on exp - iat
LEEWAY_SECONDS = 30  # clock skew between the EHR and MedAI


@dataclass(frozen=True)
class CdsClient:
    """``request.auth`` of a CDS Hooks call: which EHR, and what it may do."""

    issuer: str
    subject: str
    jti: str
    scopes: frozenset[str] = field(default_factory=lambda: frozenset({Scope.MODELS_PREDICT}))


def _fail(message: str) -> exceptions.AuthenticationFailed:
    return exceptions.AuthenticationFailed(message)


# Public keys parsed from the configured JWKs, by (JWK as canonical JSON, algorithm): parsing a
# key costs about as much as verifying a signature with it. Keyed by the key's own content, so a
# changed configuration (a rotated key) is never answered from here.
_PARSED_KEYS: dict[tuple[str, str], Any] = {}
_PARSED_KEYS_MAX = 64  # a handful of EHRs with a key or two each; bounded all the same


def _key(client: dict[str, Any], kid: Any, alg: Any) -> Any:
    keys = (client.get("jwks") or {}).get("keys") or []
    candidates = [k for k in keys if kid is None or k.get("kid") == kid]
    if kid is None and len(candidates) > 1:
        raise _fail("The JWT names no key (kid) and the issuer has several.")
    if not candidates:
        raise _fail("The JWT's key (kid) is not configured for its issuer.")
    if alg not in ALGORITHMS:
        raise _fail("The JWT's algorithm is not accepted.")
    cache_key = (json.dumps(candidates[0], sort_keys=True), alg)
    parsed = _PARSED_KEYS.get(cache_key)
    if parsed is None:
        try:
            parsed = jwt.PyJWK(candidates[0], algorithm=alg).key
        except jwt.PyJWTError:
            raise _fail("The configured key does not fit the JWT's algorithm.") from None
        if len(_PARSED_KEYS) >= _PARSED_KEYS_MAX:
            _PARSED_KEYS.clear()
        _PARSED_KEYS[cache_key] = parsed
    return parsed


def _account_query(username: str) -> Any:
    users = get_user_model().objects.filter(username=username, is_active=True)
    return with_role_names(users)  # its roles in the same query


# Compiled once per process (medai_site.compiled_query), read fresh on every call: an account
# deactivated or a role removed counts from the next hook call.
_ACCOUNT = CompiledQuery(_account_query)


def audiences(request: Request, service_path: str) -> list[str]:
    """What ``aud`` may be: the service's endpoint as discovery names it (behind a proxy, under
    ``CDS_HOOKS_BASE_URL``), or the URL called (the feedback endpoint)."""
    base = settings.CDS_HOOKS_BASE_URL.rstrip("/")
    if base:
        return [f"{base}{service_path}", f"{base}{request.path}"]
    return [request.build_absolute_uri(service_path), request.build_absolute_uri(request.path)]


class CdsHooksJwtAuthentication(BaseAuthentication):
    """``Authorization: Bearer <JWT>`` from a configured EHR -> (its bound account, CdsClient)."""

    def authenticate(self, request: Request) -> tuple[Any, CdsClient]:
        parts = get_authorization_header(request).split()
        if len(parts) != 2 or parts[0].lower() != b"bearer":
            raise exceptions.NotAuthenticated(
                "A CDS Hooks call needs 'Authorization: Bearer <JWT>'."
            )
        try:
            token = parts[1].decode("ascii")
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except (UnicodeDecodeError, jwt.PyJWTError):
            raise _fail("Malformed JWT.") from None
        issuer = unverified.get("iss")
        client = settings.CDS_HOOKS_CLIENTS.get(issuer) if isinstance(issuer, str) else None
        if client is None:
            raise _fail("Unknown JWT issuer.")
        key = _key(client, header.get("kid"), header.get("alg"))
        service_path = (
            request.parser_context["kwargs"].get("service_id", "")
            if hasattr(request, "parser_context") and request.parser_context
            else ""
        )
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=[header["alg"]],
                audience=audiences(request, f"/cds-services/{service_path}"),
                issuer=issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["iss", "aud", "exp", "iat", "jti"]},
            )
        except jwt.ExpiredSignatureError:
            raise _fail("The JWT has expired.") from None
        except jwt.InvalidAudienceError:
            raise _fail("The JWT's audience is not this service.") from None
        except jwt.PyJWTError:
            raise _fail("The JWT's signature or claims do not verify.") from None
        if claims["exp"] - claims["iat"] > MAX_LIFETIME_SECONDS + LEEWAY_SECONDS:
            raise _fail("The JWT lives longer than five minutes.")
        jti = str(claims["jti"])[:200]
        # A JWT is good once: remember its id until it would have expired anyway.
        if not cache.add(f"cds-hooks-jti:{issuer}:{jti}", 1, timeout=MAX_LIFETIME_SECONDS * 2):
            raise _fail("This JWT was already used.")
        username = client.get("user")
        user = _ACCOUNT.first(username) if isinstance(username, str) else None
        if user is None:
            raise _fail("The issuer's account is missing or inactive.")
        if hasattr(user, "role_names"):
            roles_preload(user, user.role_names)
        return user, CdsClient(issuer=issuer, subject=str(claims.get("sub", ""))[:200], jti=jti)

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="cds-hooks"'
