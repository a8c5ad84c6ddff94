"""Issue 12, point 5: every API operation declares its scope and a missing declaration is
refused (fail closed); accepting a suggestion, which records a diagnosis, needs visits:write."""

from __future__ import annotations

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory, force_authenticate
from rest_framework.views import APIView

from medai_site.api_auth import NO_SCOPE, HasClinicalRole, HasScope, Scope
from tests.api.test_advice import _advice_with_suggestion
from visits.models import Diagnosis

pytestmark = pytest.mark.django_db
HTTP_METHODS = ("get", "post", "put", "patch", "delete")
# Served to anyone by design: liveness/readiness probes and the API's own documentation.
PUBLIC_VIEWS = {
    "LivenessApi",
    "ReadinessApi",
    "SpectacularAPIView",
    "SpectacularSwaggerView",
    "SpectacularRedocView",
    "FhirMetadataApi",  # the FHIR CapabilityStatement: clients read it before authenticating
    "CdsDiscoveryApi",  # CDS Hooks discovery: the services offered, no data (as the spec has it)
}


def _api_views(resolver: URLResolver | None = None, prefix: str = "") -> list[tuple[str, type]]:
    """Every DRF view reachable from the root URLconf, with its route (new routes included)."""
    found = []
    for entry in (resolver or get_resolver()).url_patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            found += _api_views(entry, route)
        elif isinstance(entry, URLPattern):
            view_class = getattr(entry.callback, "view_class", None) or getattr(
                entry.callback, "cls", None
            )
            if isinstance(view_class, type) and issubclass(view_class, APIView):
                found.append((route, view_class))
    return found


def test_every_api_view_declares_its_scopes():
    views = _api_views()
    assert len([v for _, v in views if v.__name__ not in PUBLIC_VIEWS]) >= 20  # the walk works
    for route, view in views:
        if view.__name__ in PUBLIC_VIEWS:
            assert not route.startswith("api/v1/"), route
            continue
        permissions = view().get_permissions()
        assert any(isinstance(p, HasScope) for p in permissions), route
        assert any(isinstance(p, HasClinicalRole) for p in permissions), route
        assert not any(isinstance(p, AllowAny) for p in permissions), route
        declared = getattr(view, "required_scopes", None)
        assert declared, f"{route} ({view.__name__}) declares no required_scopes"
        implemented = {m.upper() for m in HTTP_METHODS if hasattr(view, m)}
        assert implemented <= set(declared), f"{route}: {implemented - set(declared)} undeclared"
        for scope in declared.values():
            assert scope == NO_SCOPE or scope in Scope.values, (route, scope)


def test_api_views_without_required_scopes_are_refused(doctor_a):
    """Fail closed: an operation that forgot its declaration is a 403, not an open door."""

    class Undeclared(APIView):
        def get(self, request):
            return None  # never reached

    class HalfDeclared(APIView):
        required_scopes = {"GET": Scope.PATIENTS_READ}

        def get(self, request):
            return Response({})

        def post(self, request):  # forgotten
            return None

    factory = APIRequestFactory()
    for view, method in ((Undeclared, "get"), (HalfDeclared, "post")):
        request = getattr(factory, method)("/x")
        force_authenticate(request, user=doctor_a)
        response = view.as_view()(request)
        assert response.status_code == 403, (view, method)
        assert "declares no scope" in response.data["error"]["message"]
    request = factory.get("/x")
    force_authenticate(request, user=doctor_a)
    assert HalfDeclared.as_view()(request).status_code == 200


def test_reference_endpoints_declare_no_scope_but_still_need_a_clinical_role(client_for, doctor_a):
    from rest_framework.test import APIClient

    from tests.factories import UserFactory

    urls = (
        "/api/v1/icd10?q=pneum",
        "/api/v1/icd10/J18",
        "/api/v1/observation-definitions",
        "/api/v1/models",
    )
    narrow = client_for(doctor_a, [Scope.VISITS_WRITE])
    for url in urls:
        assert narrow.get(url).status_code == 200, url
    roleless = APIClient()
    roleless.force_login(UserFactory(role=None))
    for url in urls:
        assert roleless.get(url).status_code == 403, url


@pytest.fixture
def visit_id(api_a, patient_a):
    from tests.api.conftest import vitals

    body = {"chief_complaint": "fever", "observations": vitals(**{"2708-6": 86})}
    return api_a.post(f"/api/v1/patients/{patient_a.pk}/visits", body, format="json").json()["id"]


def test_accepting_a_suggestion_with_only_advice_request_scope_is_refused(
    client_for, doctor_a, visit_id
):
    advice = _advice_with_suggestion(visit_id)
    url = f"/api/v1/advice/{advice.pk}/feedback"
    advice_only = client_for(doctor_a, [Scope.ADVICE_REQUEST])
    refused = advice_only.post(url, {"suggestion": "J18", "decision": "accept"}, format="json")
    assert refused.status_code == 403
    assert "visits:write" in refused.json()["error"]["message"]
    assert not Diagnosis.objects.filter(visit_id=visit_id).exists()
    # Overriding records no diagnosis: advice:request is enough for it.
    override = {"suggestion": "A41", "decision": "override", "reason": "implausible"}
    assert advice_only.post(url, override, format="json").status_code == 201
    both = client_for(doctor_a, [Scope.ADVICE_REQUEST, Scope.VISITS_WRITE])
    accepted = both.post(url, {"suggestion": "J18", "decision": "accept"}, format="json")
    assert accepted.status_code == 201
    assert Diagnosis.objects.filter(visit_id=visit_id, code="J18").exists()
