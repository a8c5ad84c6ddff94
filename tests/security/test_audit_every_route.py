"""Issue 12, finding 2: every route that returns patient data writes an audit record naming the
patient. The routes are enumerated, not listed: every URL pattern of the root URLconf (pages and
API), and every registered admin model's changelist, change and history page and every
autocomplete field, so a new route or a new admin model is covered without touching this test.

"Returns patient data" is decided by what the answer contains (canary values planted in one
patient's record: MRN, names, an allergy reaction, a complaint, a break-the-glass reason, a
finding quoted by advice) and, in the admin, by the model: a model whose rows belong to a
patient (``medai_site.admin.patient_path``) is patient data whatever its columns show.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import URLResolver, get_resolver, reverse
from rest_framework.test import APIClient

from medai_site.admin import patient_path
from medai_site.api_auth import api_token_create
from medai_site.models import ApiToken, AuditEvent
from patients.break_glass import break_glass_open
from patients.services import AllergyInput, patient_create
from predictions.cds_hooks.cards import SERVICES
from predictions.interop.models import Hl7Message, SourceCondition
from predictions.models import Advice
from predictions.services.feedback import feedback_record
from predictions.services.outbox import advice_request_create
from tests.factories import DiagnosisFactory, ObservationFactory, VisitEventFactory, VisitFactory

pytestmark = pytest.mark.django_db

CANARIES = (
    "MRN-CANARY-0042",
    "Quorinthe",  # given name
    "Vexmallow",  # family name
    "canaryhives",  # allergy reaction (encrypted at rest)
    "canarycough",  # chief complaint (encrypted at rest)
    "canarywitness",  # break-the-glass reason (encrypted at rest)
    "canaryfinding",  # a finding quoted by the advice payload (encrypted at rest)
)
# Values for the URL parameters of every pattern; a new parameter name fails the test until it
# is given one here (so no route is silently skipped).
PARAMS_MISSING = "no value for URL parameter"
UNRELATED_ID = 999_999  # models, jobs: no patient data behind them


@pytest.fixture
def record(team_a, doctor_a, doctor_b, monkeypatch):
    """One patient's record with a canary in every kind of patient data, and one of each row
    the admin shows (allergy, grant, visit, observation, diagnosis, event, advice, feedback)."""
    monkeypatch.setattr(
        "predictions.services.outbox.advice_request_dispatch", lambda **kwargs: True
    )
    patient = patient_create(
        mrn=CANARIES[0],
        sex="female",
        given_name=CANARIES[1],
        family_name=CANARIES[2],
        birth_date=dt.date(1950, 3, 4),
        care_teams=[team_a],
        allergies=[AllergyInput(substance="latex", reaction=CANARIES[3], severity="severe")],
        actor=None,
    )
    visit = VisitFactory(patient=patient, attending=doctor_a, chief_complaint=CANARIES[4])
    observation = ObservationFactory(visit=visit)
    diagnosis = DiagnosisFactory(visit=visit)
    VisitEventFactory(visit=visit)
    advice_request = advice_request_create(visit=visit, actor=doctor_a)
    payload = {
        "visit_id": visit.pk,
        "diagnoses": [{"code": "J18", "display": "Pneumonia", "probability": 0.6, "rank": 1}],
        "alerts": [{"rule": "r", "severity": "high", "message": f"{CANARIES[6]} noted"}],
    }
    advice = Advice.objects.create(
        visit=visit, input_hash="c" * 64, models_key="differential:1", payload=json.dumps(payload)
    )
    advice_request.status, advice_request.advice = "done", advice
    type(advice_request).objects.filter(pk=advice_request.pk).update(status="done", advice=advice)
    feedback_record(
        advice=advice, suggestion="J18", decision="override", reason="other", actor=doctor_a
    )
    SourceCondition.objects.create(
        patient=patient, visit=visit, system="http://snomed.info/sct", code="38341003"
    )
    Hl7Message.objects.create(
        key="k" * 64, outcome="AA", raw="MSH|^~\\&|", patient_id=patient.pk, visit_id=visit.pk
    )
    break_glass_open(
        viewer=doctor_b,
        mrn=patient.mrn,
        category="unconscious_patient",
        reason=f"Unconscious on arrival, {CANARIES[5]} says the team cannot be reached",
    )
    return {
        "patient_id": patient.pk,
        "visit_id": visit.pk,
        "diagnosis_id": diagnosis.pk,
        "advice_id": advice.pk,
        "request_id": advice_request.pk,
        "job_id": UNRELATED_ID,
        "version_id": UNRELATED_ID,
        "slug": "differential",
        "name": "roc",
        "code": "J18",
        "rest": "unknown",
        # CDS Hooks: services answer POSTed hook calls on EHR-supplied facts (GET is a 405).
        "service_id": next(iter(SERVICES)),
        # FHIR: the id of the resource the route serves (by the resource type in the route).
        "resource_id": {
            "Patient": patient.pk,
            "Encounter": visit.pk,
            "Observation": observation.pk,
            "Condition": diagnosis.pk,
            "AllergyIntolerance": patient.allergies.get().pk,
            "RiskAssessment": advice.pk,
        },
    }


def _patterns(patterns=None, prefix: str = "") -> Iterator[str]:
    """Every route of the URLconf, includes resolved (pages, API, admin)."""
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(entry, URLResolver):
            yield from _patterns(entry.url_patterns, prefix + str(entry.pattern))
        else:
            yield prefix + str(entry.pattern)


def _fill(route: str, values: dict) -> str:
    """The pattern's path with every parameter filled (route or regex syntax)."""

    def value(name: str) -> str:
        if name not in values:
            raise LookupError(f"{PARAMS_MISSING} {name!r} in {route!r}")
        found = values[name]
        if isinstance(found, dict):  # one value per resource type named in the route
            kind = next((k for k in found if f"/{k}/" in f"/{route}"), None)
            if kind is None:
                raise LookupError(f"{PARAMS_MISSING} {name!r} in {route!r}")
            found = found[kind]
        return str(found)

    path = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: value(m.group(1)), route)
    path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: value(m.group(1)), path)
    return "/" + path.strip("^$")


def _body(response) -> str:
    if getattr(response, "streaming", False):  # event streams, files: read what they send
        content = b"".join(response.streaming_content)  # the test client closes it at the end
    else:
        content = response.content
    return content.decode("utf-8", "replace")


def _shows_patient_data(response, echo: str = "") -> bool:
    body = _body(response)
    if echo:
        body = body.replace(echo, "")  # the search term the page repeats is the user's own input
    return any(canary in body for canary in CANARIES)


class Probe:
    """Requests one URL and checks the audit records it wrote against what it returned."""

    def __init__(self, patient_id: int) -> None:
        self.patient_id = patient_id
        self.failures: list[str] = []
        self.data_routes: list[str] = []

    def __call__(self, client, url: str, *, must_audit: bool = False, **kwargs) -> None:
        method = kwargs.pop("method", "get")
        echo = (kwargs.get("data") or {}).get("q", "")
        before = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
        try:
            response = getattr(client, method)(url, **kwargs)
        except Exception as exc:  # a crash is a finding of its own
            self.failures.append(f"{method.upper()} {url}: raised {type(exc).__name__}")
            return
        shows = response.status_code == 200 and _shows_patient_data(response, echo)
        if shows:
            self.data_routes.append(url)
        if not (shows or (must_audit and response.status_code == 200)):
            return
        written = AuditEvent.objects.filter(pk__gt=before)
        names_patient = [
            e
            for e in written
            if e.patient_id == self.patient_id or self.patient_id in e.patient_ids
        ]
        if not names_patient:
            why = "returned patient data" if shows else "shows a model of patient data"
            self.failures.append(f"{method.upper()} {url} {why} but wrote no audit record of it")


def test_every_route_that_returns_patient_data_writes_an_audit_record(record, doctor_a, admin_user):
    page_client, admin_client = Client(), Client()
    page_client.force_login(doctor_a)
    admin_client.force_login(admin_user)
    api_client = APIClient()
    _, secret = api_token_create(
        user=doctor_a,
        name="route probe",
        scopes=[s for s in ApiToken.Scope.values if s != "models:manage"],
        days=1,
        actor=doctor_a,
    )
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    probe = Probe(record["patient_id"])

    # Pages and the API: every pattern of the URLconf (the admin's object pages come below).
    for route in _patterns():
        if route.startswith("admin/") and ("<" in route or "(?P" in route):
            continue  # per-object admin pages: enumerated from the admin registry below
        url = _fill(route, record)
        if route.startswith("admin/"):
            probe(admin_client, url)
        elif route.startswith(("api/", "fhir/")):
            probe(api_client, url)
            probe(page_client, url)  # the session API as well
        else:
            probe(page_client, url)
    # Reads that need input: searching by the canary MRN (page, API body) and the admin search.
    probe(page_client, reverse("patient_search"), data={"q": CANARIES[0]})
    probe(
        api_client,
        "/api/v1/patients/search",
        method="post",
        data={"q": CANARIES[0]},
        format="json",
    )

    # The admin: every registered model's list, object and history pages, every autocomplete.
    for model, model_admin in admin.site._registry.items():
        opts = model._meta
        holds_patient_data = patient_path(model) is not None
        base = f"admin:{opts.app_label}_{opts.model_name}"
        probe(admin_client, reverse(f"{base}_changelist"), must_audit=holds_patient_data)
        # Searching by the MRN (a search may find nothing: only what it shows must be recorded).
        probe(admin_client, reverse(f"{base}_changelist"), data={"q": CANARIES[0]})
        obj = model._default_manager.order_by("pk").first()
        if obj is None:
            assert not holds_patient_data, f"the fixture has no {opts.label} row to open"
            continue
        for page in ("change", "history"):
            probe(
                admin_client,
                reverse(f"{base}_{page}", args=[obj.pk]),
                must_audit=holds_patient_data,
            )
        for field_name in model_admin.autocomplete_fields:
            probe(
                admin_client,
                "/admin/autocomplete/",
                data={
                    "app_label": opts.app_label,
                    "model_name": opts.model_name,
                    "field_name": field_name,
                    "term": "",
                },
                must_audit=patient_path(opts.get_field(field_name).related_model) is not None,
            )

    assert not probe.failures, "\n".join(probe.failures)
    # Not vacuous: the chart, the visit, advice, the API and the admin all showed the canaries.
    assert len(probe.data_routes) >= 15, probe.data_routes


def test_a_pattern_with_an_unknown_parameter_is_not_skipped():
    """A new route whose parameter has no value here fails the enumeration instead of being
    left out of it."""
    with pytest.raises(LookupError, match=PARAMS_MISSING):
        _fill("things/<int:thing_id>/", {})
    assert _fill("visits/<int:visit_id>/advice/", {"visit_id": 3}) == "/visits/3/advice/"
    assert _fill("^api/(?P<rest>.*)$", {"rest": "x"}) == "/api/x"
    assert _fill("fhir/r4/Encounter/<str:resource_id>", {"resource_id": {"Encounter": 4}}) == (
        "/fhir/r4/Encounter/4"
    )
    with pytest.raises(LookupError, match=PARAMS_MISSING):
        _fill("fhir/r4/Goal/<str:resource_id>", {"resource_id": {"Encounter": 4}})
