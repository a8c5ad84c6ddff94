"""Issue 15: CDS Hooks 2.0 (discovery, patient-view, order-select/order-sign, feedback, JWT).

Requests are in the CDS Hooks sandbox's format (hookInstance, fhirServer, hook, context,
prefetch; an ES384 JWT with iss, sub, aud, exp, iat, jti and a kid), signed by keys made here.
"""

from __future__ import annotations

import copy
import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from rest_framework.test import APIClient

from medai_site import roles
from medai_site.errors import InvalidInput
from medai_site.models import AuditEvent
from predictions.models import CdsCard, Feedback, ModelUse, PredictionTask
from predictions.services.serving import observation_definitions_forget
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

ISSUER = "https://sandbox.cds-hooks.org"
SANDBOX_PATIENT = {
    "resourceType": "Patient",
    "id": "smart-1288992",
    "gender": "male",
    "birthDate": "1958-01-06",
    "name": [{"use": "official", "family": "Shaw", "given": ["Amy", "V"]}],
}


def _observation(code, value, unit, oid):
    return {
        "fullUrl": f"Observation/{oid}",
        "resource": {
            "resourceType": "Observation",
            "id": oid,
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
            "subject": {"reference": "Patient/smart-1288992"},
            "valueQuantity": {
                "value": value,
                "unit": unit,
                "system": "http://unitsofmeasure.org",
                "code": unit,
            },
        },
    }


def _bundle(entries):
    return {"resourceType": "Bundle", "type": "searchset", "total": len(entries), "entry": entries}


OBSERVATIONS = _bundle(
    [
        _observation("8310-5", 102.2, "[degF]", "t"),  # 39 °C, converted by the catalogue
        _observation("8867-4", 118, "/min", "hr"),
        _observation("9279-1", 26, "/min", "rr"),
        _observation("2708-6", 85, "%", "spo2"),  # hypoxaemia: a critical rule alert
        {
            "resource": {
                "resourceType": "Observation",
                "id": "bp",
                "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
                "component": [
                    {
                        "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
                        "valueQuantity": {"value": 96, "unit": "mm[Hg]", "code": "mm[Hg]"},
                    },
                    {
                        "code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
                        "valueQuantity": {"value": 60, "unit": "mm[Hg]", "code": "mm[Hg]"},
                    },
                ],
            }
        },
    ]
)
CONDITIONS = _bundle(
    [
        {
            "resource": {
                "resourceType": "Condition",
                "id": "c1",
                "subject": {"reference": "Patient/smart-1288992"},
                "code": {"text": "productive cough and fever for three days"},
            }
        }
    ]
)
ALLERGIES = _bundle(
    [
        {
            "resource": {
                "resourceType": "AllergyIntolerance",
                "id": "a1",
                "patient": {"reference": "Patient/smart-1288992"},
                "code": {"text": "Penicillin"},
            }
        }
    ]
)


def patient_view_request(**prefetch_overrides):
    prefetch = {
        "patient": SANDBOX_PATIENT,
        "observations": OBSERVATIONS,
        "conditions": CONDITIONS,
        "allergies": ALLERGIES,
    }
    prefetch.update(prefetch_overrides)
    return {
        "hookInstance": str(uuid.uuid4()),
        "fhirServer": "https://launch.smarthealthit.org/v/r4/fhir",
        "hook": "patient-view",
        "context": {"userId": "Practitioner/COREPRACTITIONER1", "patientId": "smart-1288992"},
        # A deep copy: tests mutate the request, never the shared resources.
        "prefetch": copy.deepcopy({k: v for k, v in prefetch.items() if v is not None}),
    }


def order_request(hook, medication="Amoxicillin 500 MG Oral Capsule"):
    return {
        "hookInstance": str(uuid.uuid4()),
        "hook": hook,
        "context": {
            "userId": "Practitioner/1",
            "patientId": "smart-1288992",
            "selections": ["MedicationRequest/mr-1"],
            "draftOrders": _bundle(
                [
                    {
                        "resource": {
                            "resourceType": "MedicationRequest",
                            "id": "mr-1",
                            "status": "draft",
                            "intent": "order",
                            "subject": {"reference": "Patient/smart-1288992"},
                            "medicationCodeableConcept": {
                                "text": medication,
                                "coding": [
                                    {
                                        "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                        "code": "308182",
                                        "display": medication,
                                    }
                                ],
                            },
                        }
                    }
                ]
            ),
        },
        "prefetch": {"patient": SANDBOX_PATIENT, "allergies": ALLERGIES},
    }


@pytest.fixture
def ec_key():
    return ec.generate_private_key(ec.SECP384R1())


@pytest.fixture
def ehr_account(db):
    return UserFactory(username="sandbox-ehr", role=roles.INTEGRATION)


@pytest.fixture
def configured(settings, ec_key, ehr_account):
    public = jwt.algorithms.ECAlgorithm.to_jwk(ec_key.public_key(), as_dict=True)
    public["kid"] = "sandbox-1"
    settings.CDS_HOOKS_CLIENTS = {
        ISSUER: {"jwks": {"keys": [public]}, "user": ehr_account.username}
    }
    settings.CDS_HOOKS_BASE_URL = "http://testserver"
    settings.MEDAI_PREDICT_RATE = "100000/min"
    observation_definitions_forget()
    from django.core.cache import cache

    cache.clear()
    return settings


def token(key, path, *, iss=ISSUER, kid="sandbox-1", alg="ES384", **claims):
    now = int(time.time())
    body = {
        "iss": iss,
        "sub": "48163c5e88b4f4da6b71",
        "aud": f"http://testserver{path}",
        "exp": now + 300,
        "iat": now,
        "jti": str(uuid.uuid4()),
    }
    body.update(claims)
    return jwt.encode(
        body, key, algorithm=alg, headers={"kid": kid, "jku": "https://evil.example/jwks"}
    )


def call(key, service, body, **token_args):
    path = f"/cds-services/{service}"
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token(key, path, **token_args)}")
    return client.post(path, body, format="json")


def feedback(key, service, body):
    path = f"/cds-services/{service}/feedback"
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token(key, f'/cds-services/{service}')}")
    return client.post(path, body, format="json")


def test_discovery_lists_the_services_with_prefetch_templates(client):
    response = client.get("/cds-services")
    assert response.status_code == 200
    services = {s["id"]: s for s in response.json()["services"]}
    assert services["medai-patient-view"]["hook"] == "patient-view"
    assert services["medai-patient-view"]["prefetch"]["patient"] == "Patient/{{context.patientId}}"
    assert (
        "Observation?patient={{context.patientId}}"
        in (services["medai-patient-view"]["prefetch"]["observations"])
    )
    assert "Condition?" in services["medai-patient-view"]["prefetch"]["conditions"]
    assert {services["medai-order-select"]["hook"], services["medai-order-sign"]["hook"]} == {
        "order-select",
        "order-sign",
    }


def test_patient_view_returns_risk_differential_and_rule_cards(configured, ec_key, trained):
    before = AuditEvent.objects.count()
    response = call(ec_key, "medai-patient-view", patient_view_request())
    assert response.status_code == 200, response.content
    cards = response.json()["cards"]
    sources = [c["source"]["label"] for c in cards]
    by_model = {c["source"].get("topic", {}).get("code", "").split(":")[0]: c for c in cards}
    differential = by_model["differential"]
    assert f"v{trained.differential.number}" in differential["source"]["label"]
    assert trained.differential.artifact_sha256[:12] in differential["source"]["topic"]["code"]
    assert differential["source"]["url"].startswith("http://testserver/models/versions/")
    for card in cards:
        assert set(card) >= {"uuid", "summary", "indicator", "detail", "source"}
        assert len(card["summary"]) <= 140
        assert card["indicator"] in ("info", "warning", "critical")
    risk = by_model["cad-risk"]
    assert "risk" in risk["summary"]
    assert trained.risk.artifact_sha256[:12] in risk["source"]["topic"]["code"]
    # SpO2 85 % (prefetched) fires the hypoxaemia rule as a critical card.
    assert any(c["indicator"] == "critical" for c in cards), sources
    # Suggestions create a provisional Condition in the EHR (FHIR R4), when MedAI does not abstain.
    for suggestion in differential.get("suggestions", []):
        action = suggestion["actions"][0]
        assert action["type"] == "create"
        assert action["resource"]["resourceType"] == "Condition"
        assert action["resource"]["subject"] == {"reference": "Patient/smart-1288992"}
    # Model use recorded per model (client = issuer, no token), cards remembered; no PHI audit.
    uses = ModelUse.objects.filter(interface=ModelUse.Interface.CDS_HOOKS)
    assert uses.count() == 2
    assert set(uses.values_list("client", flat=True)) == {ISSUER}
    assert CdsCard.objects.count() == len(cards)
    assert AuditEvent.objects.count() == before


def test_the_prefetch_is_read_like_a_visit_units_converted(configured, ec_key, trained):
    """102.2 °F in the prefetch is scored as 39 °C: the same inputs as the prediction API's."""
    from predictions.services.serving import PredictionInput, predictions_make
    from visits.services import ObservationInput

    call(ec_key, "medai-patient-view", patient_view_request())
    use = ModelUse.objects.filter(version=trained.differential).get()
    task = PredictionTask.objects.get(slug="differential")
    same = predictions_make(
        task=task,
        inputs=[
            PredictionInput(
                age=use.at.year - 1958 - (1 if (use.at.month, use.at.day) < (1, 6) else 0),
                sex="male",
                history="productive cough and fever for three days",
                observations=(
                    ObservationInput("8310-5", 39.0),
                    ObservationInput("8867-4", 118),
                    ObservationInput("9279-1", 26),
                    ObservationInput("2708-6", 85),
                    ObservationInput("8480-6", 96),
                    ObservationInput("8462-4", 60),
                ),
                allergies=("Penicillin",),
            )
        ],
        actor=None,
    )
    assert same.input_hash == use.input_hash


def test_order_sign_with_a_conflicting_allergy_is_a_critical_card_with_a_delete(
    configured, ec_key, db
):
    response = call(ec_key, "medai-order-sign", order_request("order-sign"))
    assert response.status_code == 200, response.content
    (card,) = response.json()["cards"]
    assert card["indicator"] == "critical"
    assert "Penicillin" in card["summary"]
    action = card["suggestions"][0]["actions"][0]
    assert action == {
        "type": "delete",
        "description": "Remove the draft order for Amoxicillin 500 MG Oral Capsule",
        "resourceId": ["MedicationRequest/mr-1"],
    }
    select = call(ec_key, "medai-order-select", order_request("order-select")).json()["cards"]
    assert [c["indicator"] for c in select] == ["warning"]
    safe = call(ec_key, "medai-order-sign", order_request("order-sign", "Paracetamol 500 MG"))
    assert safe.json() == {"cards": []}


def test_feedback_is_recorded_in_the_feedback_table_once(configured, ec_key, ehr_account, db):
    card = call(ec_key, "medai-order-sign", order_request("order-sign")).json()["cards"][0]
    body = {
        "feedback": [
            {
                "card": card["uuid"],
                "outcome": "overridden",
                "overrideReason": {
                    "reason": card["overrideReasons"][0],
                    "userComment": "tolerated amoxicillin before",
                },
                "outcomeTimestamp": "2026-11-29T18:00:00Z",
            }
        ]
    }
    response = feedback(ec_key, "medai-order-sign", body)
    assert response.status_code == 200, response.content
    assert response.json() == {"recorded": 1}
    recorded = Feedback.objects.get()
    assert recorded.cds_card.uuid == uuid.UUID(card["uuid"])
    assert recorded.advice is None
    assert recorded.decision == Feedback.Decision.OVERRIDE
    assert recorded.reason == card["overrideReasons"][0]["code"]
    assert recorded.comment == "tolerated amoxicillin before"
    assert recorded.actor == ehr_account
    assert feedback(ec_key, "medai-order-sign", body).json() == {"recorded": 0}  # once
    assert Feedback.objects.count() == 1
    unknown = {"feedback": [{**body["feedback"][0], "card": str(uuid.uuid4())}]}
    assert feedback(ec_key, "medai-order-sign", unknown).status_code == 404


def test_unknown_issuer_wrong_key_and_bad_claims_are_refused(configured, ec_key, db):
    body = order_request("order-sign")
    other = ec.generate_private_key(ec.SECP384R1())
    cases = {
        "unknown issuer": call(ec_key, "medai-order-sign", body, iss="https://evil.example"),
        "wrong key": call(other, "medai-order-sign", body),
        "unknown kid": call(ec_key, "medai-order-sign", body, kid="other"),
        "expired": call(
            ec_key, "medai-order-sign", body, exp=int(time.time()) - 120, iat=int(time.time()) - 400
        ),
        "too long": call(ec_key, "medai-order-sign", body, exp=int(time.time()) + 3600),
        "other audience": call(
            ec_key, "medai-order-sign", body, aud="http://testserver/cds-services/x"
        ),
    }
    for name, response in cases.items():
        assert response.status_code == 401, (name, response.content)
        assert set(response.json()["error"]) == {"code", "message", "fields"}
    hmac = jwt.encode(
        {
            "iss": ISSUER,
            "aud": "http://testserver/cds-services/medai-order-sign",
            "exp": int(time.time()) + 60,
            "iat": int(time.time()),
            "jti": "x",
        },
        "secret",
        algorithm="HS256",
        headers={"kid": "sandbox-1"},
    )
    for auth in (f"Bearer {hmac}", "Bearer not.a.jwt", "Basic abc", ""):
        client = APIClient()
        if auth:
            client.credentials(HTTP_AUTHORIZATION=auth)
        response = client.post("/cds-services/medai-order-sign", body, format="json")
        assert response.status_code == 401, auth
    assert not CdsCard.objects.exists()


def test_a_replayed_jwt_is_refused(configured, ec_key, db):
    path = "/cds-services/medai-order-sign"
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token(ec_key, path)}")
    assert client.post(path, order_request("order-sign"), format="json").status_code == 200
    assert client.post(path, order_request("order-sign"), format="json").status_code == 401


def test_an_rsa_key_works_too(configured, ehr_account, db):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    public["kid"] = "rsa-1"
    configured.CDS_HOOKS_CLIENTS = {
        "https://ehr.example": {"jwks": {"keys": [public]}, "user": ehr_account.username}
    }
    response = call(
        key,
        "medai-order-sign",
        order_request("order-sign"),
        iss="https://ehr.example",
        kid="rsa-1",
        alg="RS384",
    )
    assert response.status_code == 200, response.content


def test_an_issuer_bound_to_an_account_without_clinical_role_is_refused(
    configured, ec_key, ehr_account
):
    ehr_account.groups.clear()
    assert call(ec_key, "medai-order-sign", order_request("order-sign")).status_code == 403


@pytest.mark.parametrize(
    ("mutate", "status"),
    [
        (lambda b: b.update(hook="order-sign"), 400),  # wrong hook for the service
        (lambda b: b["context"].pop("patientId"), 400),
        (lambda b: b["context"].update(patientId={"$ne": 1}), 400),
        (lambda b: b.pop("prefetch"), 412),  # MedAI never queries the EHR
        (
            lambda b: b["prefetch"].update(
                patient={"resourceType": "Patient", "birthDate": "not a date"}
            ),
            400,
        ),
        (lambda b: b["prefetch"].update(observations="Observation?patient=1"), 400),
        (
            lambda b: b["prefetch"].update(
                observations={
                    "resourceType": "Bundle",
                    "type": "searchset",
                    "entry": [{"resource": {"resourceType": "Observation", "status": "final"}}],
                }
            ),
            400,
        ),
        (lambda b: b["prefetch"]["patient"].update(gender=["x"] * 10_000), 400),
    ],
)
def test_invalid_and_hostile_hook_requests(configured, ec_key, trained, mutate, status):
    body = patient_view_request()
    mutate(body)
    response = call(ec_key, "medai-patient-view", body)
    assert response.status_code == status, response.content
    assert set(response.json()["error"]) == {"code", "message", "fields"}
    assert not ModelUse.objects.exists()
    assert not CdsCard.objects.exists()


def test_impossible_prefetched_values_are_left_out_and_named(configured, ec_key, trained):
    entries = [*OBSERVATIONS["entry"], _observation("8867-4", 900, "/min", "typo")]
    entries = [e for e in entries if e["resource"]["id"] != "hr"]
    response = call(
        ec_key, "medai-patient-view", patient_view_request(observations=_bundle(entries))
    )
    assert response.status_code == 200, response.content
    details = " ".join(c["detail"] for c in response.json()["cards"])
    assert "Left out" in details
    assert "8867-4" in details


def test_unknown_service_is_404(configured, ec_key, db):
    assert call(ec_key, "nope", order_request("order-sign")).status_code == 404


# Issue 15: SQL statements per patient-view call (savepoints of the test transaction aside): the
# EHR's account with its roles, the servable tasks (no reports, no feature schemas), and the
# models' use rows written with the cards in one statement. Lower it when you can; a regression
# fails here.
PATIENT_VIEW_STATEMENTS = 3


def test_patient_view_statement_count(configured, ec_key, trained):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    call(ec_key, "medai-patient-view", patient_view_request())  # warm: catalogue, artifacts
    with CaptureQueriesContext(connection) as queries:
        response = call(ec_key, "medai-patient-view", patient_view_request())
    assert response.status_code == 200, response.content
    statements = [q["sql"] for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]]
    assert len(statements) <= PATIENT_VIEW_STATEMENTS, statements
    assert not any(s.startswith('SELECT "auth_group"') for s in statements)  # roles come along
    assert not any('"report"' in s for s in statements)  # a version's report is never decoded
    assert not any('"feature_schema"' in s for s in statements)  # nor its feature schema


# --- the hot path's caches never outlive what they stand for -----------------------------------
# Issuer keys are parsed once per key (keyed by the key's own content: a rotated key is never
# answered from the cache); the EHR's account and the scoring tasks are read fresh on every call
# through statements compiled once (medai_site.compiled_query).


def _configure(settings, key, account) -> None:
    public = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    public["kid"] = "sandbox-1"
    settings.CDS_HOOKS_CLIENTS = {ISSUER: {"jwks": {"keys": [public]}, "user": account.username}}


def test_a_rotated_key_under_the_same_kid_refuses_the_old_keys_jwts(
    configured, ec_key, ehr_account
):
    assert call(ec_key, "medai-order-sign", order_request("order-sign")).status_code == 200
    rotated = ec.generate_private_key(ec.SECP384R1())
    _configure(configured, rotated, ehr_account)
    assert call(ec_key, "medai-order-sign", order_request("order-sign")).status_code == 401
    assert call(rotated, "medai-order-sign", order_request("order-sign")).status_code == 200


def test_the_ehr_account_deactivated_after_a_call_is_refused_on_the_next(
    configured, ec_key, ehr_account
):
    assert call(ec_key, "medai-order-sign", order_request("order-sign")).status_code == 200
    type(ehr_account).objects.filter(pk=ehr_account.pk).update(is_active=False)
    response = call(ec_key, "medai-order-sign", order_request("order-sign"))
    assert response.status_code == 401
    assert "inactive" in response.json()["error"]["message"]


def test_a_task_switched_off_after_a_call_gives_no_card_on_the_next(configured, ec_key, trained):
    def sources() -> set[str]:
        response = call(ec_key, "medai-patient-view", patient_view_request())
        assert response.status_code == 200, response.content
        return {
            c["source"].get("topic", {}).get("code", "").split(":")[0]
            for c in response.json()["cards"]
        }

    assert "differential" in sources()
    PredictionTask.objects.filter(slug="differential").update(enabled=False)
    assert "differential" not in sources()


def test_patient_view_validates_the_row_and_runs_its_rules_once_for_every_model(
    configured, ec_key, trained, monkeypatch
):
    """Two models score the prefetch: the catalogue validation (prepare_row) and the rules that
    read the row (the free-text ones are the costly part) run once per call, not once per model;
    the card records carry their issue time."""
    from predictions.cds_hooks import cards
    from predictions.services import serving

    counts = {"prepare_row": 0, "row_alerts": 0}

    def counted(name, function):
        def wrapper(*args, **kwargs):
            counts[name] += 1
            return function(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(cards, "prepare_row", counted("prepare_row", serving.prepare_row))
    monkeypatch.setattr(serving, "prepare_row", counted("prepare_row", serving.prepare_row))
    monkeypatch.setattr(serving, "row_alerts", counted("row_alerts", serving.row_alerts))
    response = call(ec_key, "medai-patient-view", patient_view_request())
    assert response.status_code == 200, response.content
    assert ModelUse.objects.filter(interface=ModelUse.Interface.CDS_HOOKS).count() == 2
    assert counts == {"prepare_row": 1, "row_alerts": 1}
    # The hypoxaemia alert (SpO2 85 %) is still there, once, as a critical card.
    critical = [c for c in response.json()["cards"] if c["indicator"] == "critical"]
    assert len({c["summary"] for c in critical}) == len(critical) >= 1
    assert not CdsCard.objects.filter(issued_at__isnull=True).exists()


# --- prefetch validation: the usual searchset takes a cheaper path to the same verdict ----------
def _full_bundle_verdict(data, key, model):
    """What validating the whole Bundle with fhir.resources says (the reference)."""
    from predictions.cds_hooks import fhir

    try:
        bundle = fhir._validated(fhir.Bundle, data, key)
    except InvalidInput as exc:
        return ("refused", exc.message, exc.fields)
    return ("accepted", [e.resource for e in bundle.entry or [] if isinstance(e.resource, model)])


def _bad_observation_bundles():
    def bundle_with(resource, **entry):
        return _bundle([*copy.deepcopy(OBSERVATIONS["entry"]), {"resource": resource, **entry}])

    good = copy.deepcopy(OBSERVATIONS["entry"][0]["resource"])
    yield bundle_with({"resourceType": "Observation", "status": "final"})  # no code
    yield bundle_with({**good, "issued": "not an instant"})
    yield bundle_with({**good, "valueQuantity": {"value": "high"}})
    yield bundle_with({**good, "valueQuantity": {"value": 1}, "valueString": "both"})  # value[x]
    yield bundle_with({**good, "unknownElement": 1})
    yield bundle_with({**good, "code": {"coding": [None]}})
    yield bundle_with(good, fullUrl=["not", "a", "uri"])  # the entry itself, not its resource
    yield {**OBSERVATIONS, "timestamp": "yesterday"}  # the Bundle itself
    yield {**OBSERVATIONS, "total": "many"}
    yield bundle_with({"resourceType": "Condition", "code": "not a concept"})  # another type
    yield bundle_with({"resourceType": "Observation", "status": "final", "code": {}, "id": 5})


@pytest.mark.parametrize("data", list(_bad_observation_bundles()))
def test_an_invalid_prefetched_bundle_is_refused_as_the_whole_bundles_validation_refuses_it(data):
    from predictions.cds_hooks import fhir

    expected = _full_bundle_verdict(data, "observations", fhir.Observation)
    assert expected[0] == "refused"
    with pytest.raises(InvalidInput) as caught:
        fhir._resources(data, "observations", fhir.Observation)
    assert (caught.value.message, caught.value.fields) == expected[1:]


def test_a_valid_prefetched_bundle_gives_the_whole_bundles_resources(monkeypatch):
    """The usual searchset (one resource type) is validated entry by entry with the resource's
    own model, never handed whole to the Bundle model: same resources, same values."""
    from predictions.cds_hooks import fhir

    mixed = _bundle([*OBSERVATIONS["entry"], *CONDITIONS["entry"]])  # takes the whole path
    for data in (OBSERVATIONS, mixed):
        (verdict, expected) = _full_bundle_verdict(data, "observations", fhir.Observation)
        assert verdict == "accepted"
        found = fhir._resources(data, "observations", fhir.Observation)
        assert [r.model_dump() for r in found] == [r.model_dump() for r in expected]
    whole = fhir.Bundle.model_validate
    monkeypatch.setattr(
        fhir.Bundle,
        "model_validate",
        lambda data, **kw: (
            pytest.fail("whole bundle validated")
            if any("resource" in e for e in data.get("entry", []))
            else whole(data, **kw)
        ),
    )
    assert len(fhir._resources(OBSERVATIONS, "observations", fhir.Observation)) == 5


def test_the_cards_are_written_with_the_model_uses_they_name(configured, ec_key, trained):
    """One statement writes both models' use rows and the cards: each model's card names its own
    use, the rules' cards none, and the uses carry what a use always records."""
    response = call(ec_key, "medai-patient-view", patient_view_request())
    assert response.status_code == 200, response.content
    cards = {c["uuid"]: c for c in response.json()["cards"]}
    stored = CdsCard.objects.select_related("model_use__version").filter(uuid__in=list(cards))
    assert len(stored) == len(cards)
    for card in stored:
        topic = cards[str(card.uuid)]["source"].get("topic", {}).get("code", "")
        if card.suggestion == "rule":
            assert (card.model_use, card.rank, topic) == (None, None, "")
            continue
        use = card.model_use
        assert topic.split(":")[:2] == [use.version.task.slug, str(use.version.number)]
        assert (use.client, use.interface, use.rows) == (ISSUER, ModelUse.Interface.CDS_HOOKS, 1)
        assert (card.client, card.service) == (ISSUER, "medai-patient-view")
        assert card.issued_at is not None
    assert ModelUse.objects.count() == 2
    assert {c.model_use_id for c in stored if c.model_use_id} == set(
        ModelUse.objects.values_list("pk", flat=True)
    )


def test_uses_of_one_version_are_written_before_their_cards_apart(db, trained):
    """cds_cards_record tells the uses apart by version in its one statement; two uses of the
    same version (no hook call makes them) take two statements and still link each card."""
    from predictions.services.serving import CardIssued, _model_use, cds_cards_record

    uses = [
        _model_use(
            version=trained.risk,
            actor=None,
            api_token_id=None,
            client=ISSUER,
            interface=ModelUse.Interface.CDS_HOOKS,
            input_hash=f"{n:064x}",
            rows=1,
        )
        for n in range(2)
    ]
    cards = [CardIssued(uuid=uuid.uuid4(), suggestion="cad-risk", model_use=u) for u in uses]
    cds_cards_record(service="medai-patient-view", client=ISSUER, cards=cards, uses=uses)
    assert all(u.pk for u in uses)
    linked = dict(CdsCard.objects.values_list("uuid", "model_use__input_hash"))
    assert linked == {c.uuid: c.model_use.input_hash for c in cards}


def test_a_cards_report_link_is_resolved_once_per_version(configured, ec_key, trained, monkeypatch):
    from django.urls import reverse

    from predictions.cds_hooks import cards

    cards._report_path.cache_clear()
    resolved = []
    monkeypatch.setattr(cards, "reverse", lambda *a, **kw: resolved.append(kw) or reverse(*a, **kw))
    for _ in range(2):
        response = call(ec_key, "medai-patient-view", patient_view_request())
        assert response.status_code == 200, response.content
    urls = {c["source"]["url"] for c in response.json()["cards"] if "url" in c["source"]}
    assert urls == {
        f"http://testserver{reverse('version_report', kwargs={'version_id': v.pk})}"
        for v in (trained.differential, trained.risk)
    }
    assert len(resolved) == 2  # one per version, not one per card
