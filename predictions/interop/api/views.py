"""The read-only FHIR R4 API under /fhir/r4/ (issue 16).

Same door as /api/v1: bearer tokens (or the signed-in browser's session), a clinical role, the
``patients:read`` scope, care-team scoping in the selectors (a resource outside it is a 404), every
resource returned audited. Answers ``application/fhir+json``; every error is an OperationOutcome;
writes (POST, PUT, PATCH, DELETE) are 405: MedAI's records change through its own pages, API and
import doors, not through FHIR. ``/fhir/r4/metadata`` (the CapabilityStatement) is public, as FHIR
clients expect to read it before they authenticate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from medai_site.api_auth import Scope
from predictions.interop import selectors

from .fhir import (
    FHIR_JSON,
    PARAMETERS,
    FhirJSONRenderer,
    bundle,
    fhir_exception_handler,
    operation_outcome,
    paging_links,
    parse_search,
)

FHIR_VERSION = "4.0.1"


def fhir_base(request: Request) -> str:
    return request.build_absolute_uri("/fhir/r4/")


class FhirApi(APIView):
    """Base of every /fhir/r4 view: FHIR JSON out, OperationOutcome errors, reads only."""

    renderer_classes = [FhirJSONRenderer, JSONRenderer]
    required_scopes = {"GET": Scope.PATIENTS_READ}
    schema = None  # FHIR describes itself (CapabilityStatement), not in the /api/ OpenAPI schema

    def get_exception_handler(self) -> Callable[[Exception, dict[str, Any]], Response]:
        return fhir_exception_handler

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)
        response["Cache-Control"] = "no-store"  # PHI: never kept by a shared cache
        return response


class FhirMetadataApi(FhirApi):
    """GET /fhir/r4/metadata: what this server supports (public, no PHI)."""

    authentication_classes = ()
    permission_classes = (AllowAny,)
    required_scopes = {}

    def get(self, request: Request) -> Response:
        resources = []
        for name, params in PARAMETERS.items():
            entry: dict[str, Any] = {
                "type": name,
                "interaction": [{"code": "read"}, {"code": "search-type"}],
                "searchParam": [
                    {"name": p, "type": _PARAM_TYPES.get(p, "token")} for p in sorted(params)
                ]
                + [{"name": "_id", "type": "token"}],
            }
            if name == "Patient":
                entry["operation"] = [
                    {
                        "name": "everything",
                        "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
                    }
                ]
            resources.append(entry)
        return Response(
            {
                "resourceType": "CapabilityStatement",
                "status": "active",
                "date": timezone.now().date().isoformat(),
                "publisher": "MedAI",
                "kind": "instance",
                "software": {"name": "MedAI"},
                "implementation": {
                    "description": "MedAI FHIR R4 read API",
                    "url": fhir_base(request),
                },
                "fhirVersion": FHIR_VERSION,
                "format": [FHIR_JSON, "json"],
                "rest": [
                    {
                        "mode": "server",
                        "documentation": (
                            "Read-only. Authorization: Bearer <MedAI API token> with the "
                            "patients:read scope; only patients of the token user's care teams "
                            "are visible. Paging: _count (max 100) and _offset."
                        ),
                        "security": {
                            "description": "Bearer API tokens issued by their owners in MedAI."
                        },
                        "resource": resources,
                    }
                ],
            }
        )


_PARAM_TYPES = {
    "patient": "reference",
    "subject": "reference",
    "encounter": "reference",
    "date": "date",
}


class FhirSearchApi(FhirApi):
    """GET /fhir/r4/<type>?params: a searchset Bundle, paged with _count/_offset."""

    resource_type = ""

    def get(self, request: Request) -> Response:
        search, offset, count = parse_search(self.resource_type, request.query_params)
        page = selectors.fhir_search(
            viewer=request.user,
            resource_type=self.resource_type,
            search=search,
            offset=offset,
            count=count,
        )
        return Response(
            bundle(
                bundle_type="searchset",
                resources=page.resources,
                base=fhir_base(request),
                total=page.total,
                links=paging_links(
                    request, request.query_params, offset=offset, count=count, total=page.total
                ),
            )
        )


class FhirReadApi(FhirApi):
    """GET /fhir/r4/<type>/<id>: one resource (404 OperationOutcome outside the caller's scope)."""

    resource_type = ""

    def get(self, request: Request, resource_id: str) -> Response:
        return Response(
            selectors.fhir_read(
                viewer=request.user, resource_type=self.resource_type, resource_id=resource_id
            )
        )


class FhirPatientEverythingApi(FhirApi):
    """GET /fhir/r4/Patient/<id>/$everything: the patient's record as a searchset Bundle."""

    def get(self, request: Request, resource_id: str) -> Response:
        resources = selectors.fhir_everything(viewer=request.user, patient_id=resource_id)
        return Response(
            bundle(
                bundle_type="searchset",
                resources=resources,
                base=fhir_base(request),
                total=len(resources),
                links=[{"relation": "self", "url": request.build_absolute_uri()}],
            )
        )


@csrf_exempt  # changes nothing, answers the same to every method: nothing to forge
def fhir_unknown(request: HttpRequest, rest: str = "") -> JsonResponse:
    """Any other /fhir/ path: an unsupported resource type or operation, as an OperationOutcome.
    Writes anywhere (e.g. a transaction Bundle POSTed to the base) are 405."""
    if request.method in ("GET", "HEAD"):
        status, message = 404, "This server has no such FHIR endpoint (see /fhir/r4/metadata)."
    else:
        status, message = 405, "This FHIR server is read-only."
    response = JsonResponse(
        operation_outcome(status, message), status=status, content_type=FHIR_JSON
    )
    if status == 405:
        response["Allow"] = "GET, HEAD, OPTIONS"
    return response
