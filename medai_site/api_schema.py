"""What drf-spectacular cannot infer: the error shape on every operation, the bearer scheme, the
``Idempotency-Key`` header and the scope each operation needs."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers

API_PREFIX = "/api/v1/"

_ERROR_DESCRIPTIONS = {
    "400": "Invalid input (malformed JSON, wrong types, values outside their plausible range).",
    "401": "No credentials, or an invalid, expired or revoked token.",
    "403": "Authenticated, but the token lacks the scope (or the user the role) this needs.",
    "404": "No such object, or one outside the caller's care teams (existence does not leak).",
    "409": "Conflicts with the current state (duplicate, closed visit, reused Idempotency-Key).",
    "415": "The request body is not application/json.",
    "429": "Too many requests from this client; retry after the Retry-After header's seconds.",
}
_WRITE_ONLY_ERRORS = {"409", "415"}


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable machine-readable code, e.g. 'invalid'.")
    message = serializers.CharField(help_text="A readable sentence; never contains PHI.")
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Per-field messages (empty when the error concerns the whole request).",
    )

    class Meta:
        ref_name = "ErrorDetail"


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()

    class Meta:
        ref_name = "Error"


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "medai_site.api_auth.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: AutoSchema) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": (
                "A per-client API token (`medai_…`). A person creates their own under "
                "Account → API tokens; an integration-client account's token is issued by an "
                "admin (admin site or `manage.py create_api_token`). Scopes: patients:read, "
                "patients:write, visits:write, advice:request, models:manage, models:predict."
            ),
        }


class MedaiAutoSchema(AutoSchema):
    def _is_versioned(self) -> bool:
        return self.path.startswith(API_PREFIX)

    def get_override_parameters(self) -> list[Any]:
        params = list(super().get_override_parameters())
        if self.method == "POST" and getattr(self.view, "idempotent", False):
            params.append(
                OpenApiParameter(
                    "Idempotency-Key",
                    {"type": "string", "pattern": "^[!-~]{1,255}$"},
                    OpenApiParameter.HEADER,
                    required=False,
                    description=(
                        "Any unique string (1–255 printable characters). A retry with the same "
                        "key and body returns the first response and creates nothing; the same "
                        "key with a different body is a 409."
                    ),
                )
            )
        return params

    def get_description(self) -> str:
        description = super().get_description() or ""
        scope = (getattr(self.view, "required_scopes", None) or {}).get(self.method)
        if scope:  # NO_SCOPE ("") says nothing beyond signing in
            description = f"{description}\n\nRequired scope: `{scope}`.".strip()
        return description

    def _get_response_bodies(self, direction: str = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        if not self._is_versioned():
            return responses
        writes = self.method in ("POST", "PUT", "PATCH")
        for code, description in _ERROR_DESCRIPTIONS.items():
            if code in responses or (code in _WRITE_ONLY_ERRORS and not writes):
                continue
            response = self._get_response_for_code(ErrorSerializer, code, direction=direction)
            response["description"] = description
            responses[code] = response
        return responses


class VerifiedSessionScheme(OpenApiAuthenticationExtension):
    """The browser's own session (cookie), valid once sign-in including any second factor is done."""

    target_class = "medai_site.api_auth.VerifiedSessionAuthentication"
    name = "cookieAuth"

    def get_security_definition(self, auto_schema: AutoSchema) -> dict[str, Any]:
        return {"type": "apiKey", "in": "cookie", "name": "sessionid"}
