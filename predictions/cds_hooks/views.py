"""CDS Hooks 2.0 endpoints: discovery, the services, and the feedback on their cards.

``GET /cds-services`` (discovery, public: it holds no data), ``POST /cds-services/{id}`` (a hook
call from a configured EHR, JWT-authenticated) and ``POST /cds-services/{id}/feedback``. They are
outside the versioned REST API and its OpenAPI schema: the CDS Hooks specification is their
contract. Errors keep the API's shape (``{"error": {...}}``).
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from medai_site.api_auth import PredictRateThrottle, Scope
from medai_site.api_fields import StrictCharField
from medai_site.api_input import validate_input
from medai_site.errors import Conflict, InvalidInput, NotFound
from predictions.models import CdsCard, Feedback
from predictions.services.feedback import cds_card_feedback_record

from .auth import CdsClient, CdsHooksJwtAuthentication
from .cards import OVERRIDE_SYSTEM, SERVICES, Service, hook_answer

MAX_FEEDBACK = 100  # feedback items per call


def _service(service_id: str) -> Service:
    service = SERVICES.get(service_id)
    if service is None:
        raise NotFound("No such CDS service.")
    return service


class CdsDiscoveryApi(APIView):
    schema = None  # CDS Hooks' own contract, not the REST API's OpenAPI document
    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]  # discovery lists services, no data (CDS Hooks 2.0)

    def get(self, request: Request) -> Response:
        return Response({"services": [s.discovery() for s in SERVICES.values()]})


class _CdsApi(APIView):
    schema = None
    authentication_classes = [CdsHooksJwtAuthentication]
    throttle_classes = [PredictRateThrottle]
    required_scopes = {"POST": Scope.MODELS_PREDICT}


class HookRequestSerializer(serializers.Serializer):
    hook = StrictCharField(max_length=64)
    hookInstance = StrictCharField(max_length=64)  # CDS Hooks names (camelCase)
    fhirServer = serializers.URLField(required=False, max_length=500)
    fhirAuthorization = serializers.DictField(
        required=False
    )  # accepted, never used: MedAI does not query the EHR
    context = serializers.DictField()
    prefetch = serializers.DictField(required=False, allow_null=True)

    def validate_context(self, context: dict[str, Any]) -> dict[str, Any]:
        patient = context.get("patientId")
        if not isinstance(patient, str) or not 0 < len(patient) <= 64:
            raise serializers.ValidationError("context.patientId is required (a FHIR id).")
        encounter = context.get("encounterId")
        if encounter is not None and (not isinstance(encounter, str) or len(encounter) > 64):
            raise serializers.ValidationError("context.encounterId must be a FHIR id.")
        selections = context.get("selections")
        if selections is not None and (
            not isinstance(selections, list) or not all(isinstance(s, str) for s in selections)
        ):
            raise serializers.ValidationError("context.selections must be a list of references.")
        return context


class CdsServiceApi(_CdsApi):
    def post(self, request: Request, service_id: str) -> Response:
        service = _service(service_id)
        body = validate_input(HookRequestSerializer, request.data)
        if body["hook"] != service.hook:
            raise InvalidInput(
                f"This service answers the '{service.hook}' hook.",
                fields={"hook": [f"Expected {service.hook}."]},
            )
        client: CdsClient = request.auth
        return Response(
            hook_answer(
                service=service, request_body=body, actor=request.user, client=client.issuer
            )
        )


class CodingSerializer(serializers.Serializer):
    system = StrictCharField(max_length=500, required=False)
    code = StrictCharField(max_length=64)
    display = StrictCharField(max_length=500, required=False)


class OverrideReasonSerializer(serializers.Serializer):
    reason = CodingSerializer(required=False)
    userComment = StrictCharField(max_length=2000, required=False, allow_blank=True)


class FeedbackItemSerializer(serializers.Serializer):
    card = serializers.UUIDField()
    outcome = serializers.ChoiceField(choices=["accepted", "overridden"])
    acceptedSuggestions = serializers.ListField(
        child=serializers.DictField(), required=False, max_length=20
    )
    overrideReason = OverrideReasonSerializer(required=False)
    outcomeTimestamp = serializers.DateTimeField()


class FeedbackRequestSerializer(serializers.Serializer):
    feedback = FeedbackItemSerializer(many=True, min_length=1, max_length=MAX_FEEDBACK)


class CdsFeedbackApi(_CdsApi):
    def post(self, request: Request, service_id: str) -> Response:
        service = _service(service_id)
        serializer = FeedbackRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        client: CdsClient = request.auth
        items = serializer.validated_data["feedback"]
        cards = {
            c.uuid: c
            for c in CdsCard.objects.filter(
                uuid__in=[i["card"] for i in items], service=service.id, client=client.issuer
            )
        }
        recorded = 0
        for item in items:
            card = cards.get(item["card"])
            if card is None:  # another EHR's card is as unknown as a made-up one
                raise NotFound("Unknown card.")
            override = item.get("overrideReason") or {}
            reason = override.get("reason") or {}
            try:
                cds_card_feedback_record(
                    card=card,
                    decision=(
                        Feedback.Decision.ACCEPT
                        if item["outcome"] == "accepted"
                        else Feedback.Decision.OVERRIDE
                    ),
                    reason=reason.get("code", "")
                    if reason.get("system", OVERRIDE_SYSTEM) == OVERRIDE_SYSTEM
                    else Feedback.Reason.OTHER,
                    comment=override.get("userComment", ""),
                    actor=request.user,
                )
            except Conflict:
                continue  # the EHR sent it again: recorded once (idempotent)
            recorded += 1
        return Response({"recorded": recorded})
