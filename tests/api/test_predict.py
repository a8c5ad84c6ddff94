"""Issue 15: the synchronous prediction API (predict, predict:batch, schema).

Valid inputs are scored by the active model in the request; invalid and hostile inputs are
refused with the API's error shape and nothing is written; every answer names the version and
its artifact's sha256, and each call leaves one model-use record (never a PHI audit event).
"""

from __future__ import annotations

import jsonschema
import pytest

from medai_site.api_auth import Scope
from medai_site.models import AuditEvent
from predictions.models import ModelUse, PredictionTask
from predictions.services.serving import observation_definitions_forget
from tests.predictions.conftest import fast_training  # noqa: F401 (autouse here too)

# ``trained``: the trained population and models every package shares (tests/predictions/trained.py).

pytestmark = pytest.mark.django_db

URL = "/api/v1/models/{}/predict"
BATCH = "/api/v1/models/{}/predict:batch"
SCHEMA = "/api/v1/models/{}/schema"


@pytest.fixture(autouse=True)
def _fresh_catalogue():
    observation_definitions_forget()
    yield
    observation_definitions_forget()


@pytest.fixture
def api(client_for, doctor_a):
    return client_for(doctor_a, [Scope.MODELS_PREDICT])


def row(**overrides):
    body = {
        "age": 67,
        "sex": "male",
        "visit_type": "emergency",
        "chief_complaint": "fever and productive cough for three days",
        "history": "shortness of breath, chills",
        "observations": [
            {"code": "8310-5", "value": 38.9},
            {"name": "Heart rate", "value": 112},
            {"code": "9279-1", "value": 24},
            {"code": "8480-6", "value": 118},
            {"code": "8462-4", "value": 72},
            {"code": "2708-6", "value": 93},
        ],
    }
    body.update(overrides)
    return body


def test_predict_returns_calibrated_probabilities_contributions_and_the_version(api, trained):
    before = AuditEvent.objects.count()
    response = api.post(URL.format("differential"), row(), format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    version = trained.differential
    assert body["model"]["version_id"] == version.pk
    assert body["model"]["version"] == version.number
    assert body["model"]["sha256"] == version.artifact_sha256
    prediction = body["prediction"]
    probabilities = [c["probability"] for c in prediction["probabilities"]]
    assert probabilities == sorted(probabilities, reverse=True)
    assert abs(sum(probabilities) - 1) < 1e-3
    assert {c["label"] for c in prediction["probabilities"]} == set(body["classes"])
    assert prediction["predicted"] == prediction["probabilities"][0]["label"]
    assert prediction["contributions"]
    assert all(
        {"feature", "label", "value", "contribution"} <= set(c) for c in prediction["contributions"]
    )
    assert len(prediction["input_hash"]) == 64
    # Model use, not a PHI read: one ModelUse row naming token and version, no audit event.
    use = ModelUse.objects.get()
    assert use.version_id == version.pk
    assert use.api_token_id is not None
    assert use.input_hash == body["input_hash"] == prediction["input_hash"]
    assert use.rows == 1
    assert use.interface == ModelUse.Interface.API
    assert AuditEvent.objects.count() == before


def test_risk_model_answers_both_classes(api, trained):
    body = api.post(URL.format("cad-risk"), row(), format="json").json()
    assert body["model"]["sha256"] == trained.risk.artifact_sha256
    classes = {c["label"]: c for c in body["prediction"]["probabilities"]}
    assert sorted(classes) == ["negative", "positive"]
    assert classes["positive"]["display"] == PredictionTask.objects.get(slug="cad-risk").config.get(
        "label", "Coronary artery disease"
    )


def test_units_are_converted_through_the_catalogue_like_visits(api, trained):
    celsius = api.post(URL.format("differential"), row(), format="json").json()
    observations = row()["observations"]
    observations[0] = {"name": "body temperature", "value": 102.02, "unit": "°F"}  # 38.9 °C
    fahrenheit = api.post(
        URL.format("differential"), row(observations=observations), format="json"
    ).json()
    assert fahrenheit["input_hash"] == celsius["input_hash"]
    assert fahrenheit["prediction"]["probabilities"] == celsius["prediction"]["probabilities"]


def test_rules_alert_and_abstention_come_with_the_prediction(api, trained):
    hypoxic = row(observations=[{"code": "2708-6", "value": 85}], chief_complaint="", history="")
    prediction = api.post(URL.format("differential"), hypoxic, format="json").json()["prediction"]
    assert any(a["severity"] == "critical" for a in prediction["alerts"])
    # Most usually recorded inputs are missing: the model abstains and says why.
    assert prediction["abstained"] is True
    assert any("not recorded" in reason for reason in prediction["abstain_reasons"])
    assert not any("obs_" in reason for reason in prediction["abstain_reasons"])


def test_allergy_conflict_rule_sees_the_allergies_sent(api, trained):
    body = row(allergies=["Penicillin"])
    prediction = api.post(URL.format("differential"), body, format="json").json()["prediction"]
    from predictions.rules import TREATMENT_CONFLICTS

    top3 = [c["label"] for c in prediction["probabilities"][:3]]
    expected = [c for c in top3 if "penicillin" in TREATMENT_CONFLICTS.get(c, ("", ()))[1]]
    conflicts = [a for a in prediction["alerts"] if a["rule"] == "allergy_conflict"]
    assert len(conflicts) == len(expected)  # one per suggested category that clashes
    for code, alert in zip(expected, conflicts, strict=True):
        assert code in alert["message"]
    without = api.post(URL.format("differential"), row(), format="json").json()["prediction"]
    assert not [a for a in without["alerts"] if a["rule"] == "allergy_conflict"]


def test_batch_scores_each_row_like_predict(api, trained):
    rows = [row(), row(age=30, observations=[{"code": "8867-4", "value": 70}]), row(sex="female")]
    response = api.post(BATCH.format("differential"), {"rows": rows}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert len(body["predictions"]) == 3
    single = api.post(URL.format("differential"), rows[1], format="json").json()
    assert body["predictions"][1]["probabilities"] == single["prediction"]["probabilities"]
    assert ModelUse.objects.filter(rows=3).count() == 1


@pytest.mark.parametrize(
    ("observation", "field"),
    [
        ({"code": "8867-4", "value": 900}, "8867-4"),  # impossible heart rate
        ({"code": "8310-5", "value": 38, "unit": "kg"}, "8310-5"),  # wrong unit
        ({"code": "99999-9", "value": 1}, "99999-9"),  # not in the catalogue
        ({"name": "heart rate'; DROP TABLE visits_visit;--", "value": 1}, None),
    ],
)
def test_invalid_observations_are_refused_with_the_field_named(api, trained, observation, field):
    response = api.post(URL.format("differential"), row(observations=[observation]), format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid"
    if field:
        assert field in error["fields"]
    assert not ModelUse.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        {"age": -1},
        {"age": "1e400"},
        {"age": True},
        {"sex": "robot"},
        {"observations": [{"code": "8867-4", "value": "NaN"}]},
        {"observations": [{"code": "8867-4", "name": "Heart rate", "value": 80}]},
        {"observations": [{"value": 80}]},
        {"observations": [{"code": "8867-4", "value": 80}, {"name": "heart rate", "value": 81}]},
        {"observations": "8867-4=80"},
        {"allergies": [{"$ne": None}]},
        {"chief_complaint": "x" * 20_001},
        {"chief_complaint": "nul\x00byte"},
    ],
)
def test_hostile_inputs_are_400_never_500(api, trained, body):
    response = api.post(URL.format("differential"), row(**body), format="json")
    assert response.status_code == 400, (body, response.content)
    assert set(response.json()["error"]) == {"code", "message", "fields"}
    assert not ModelUse.objects.exists()


def test_batch_errors_name_the_row_and_nothing_is_scored(api, trained):
    bad = row(observations=[{"code": "2708-6", "value": 140}])
    response = api.post(BATCH.format("differential"), {"rows": [row(), bad]}, format="json")
    assert response.status_code == 400
    assert "rows[1].2708-6" in response.json()["error"]["fields"]
    assert not ModelUse.objects.exists()


def test_batch_size_is_bounded(api, trained):
    too_many = {"rows": [{"age": 50}] * 1001}
    assert api.post(BATCH.format("differential"), too_many, format="json").status_code == 400
    assert api.post(BATCH.format("differential"), {"rows": []}, format="json").status_code == 400
    assert not ModelUse.objects.exists()


def test_non_json_body_is_415(api, trained):
    response = api.post(URL.format("differential"), "age=5", content_type="text/plain")
    assert response.status_code == 415


def test_predict_needs_the_models_predict_scope(client_for, doctor_a, trained):
    narrow = client_for(doctor_a, [Scope.PATIENTS_READ, Scope.ADVICE_REQUEST])
    response = narrow.post(URL.format("differential"), row(), format="json")
    assert response.status_code == 403
    assert "models:predict" in response.json()["error"]["message"]
    assert narrow.get(SCHEMA.format("differential")).status_code == 403


def test_unknown_and_unavailable_models(api, trained):
    assert api.post(URL.format("nope"), row(), format="json").status_code == 404
    PredictionTask.objects.filter(slug="differential").update(enabled=False)
    response = api.post(URL.format("differential"), row(), format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "model_unavailable"


def test_a_model_switched_off_after_answering_is_refused_from_the_next_request(api, trained):
    """The process keeps the task it read; the model-use write checks it is still current."""
    assert api.post(URL.format("differential"), row(), format="json").status_code == 200
    PredictionTask.objects.filter(slug="differential").update(enabled=False)
    response = api.post(URL.format("differential"), row(), format="json")
    assert response.status_code == 409
    assert "switched off" in response.json()["error"]["message"]
    assert ModelUse.objects.count() == 1  # the refused answer is not recorded


def test_a_model_switched_back_on_answers_from_the_next_request(api, trained):
    assert api.post(URL.format("differential"), row(), format="json").status_code == 200
    PredictionTask.objects.filter(slug="differential").update(enabled=False)
    assert api.post(URL.format("differential"), row(), format="json").status_code == 409
    PredictionTask.objects.filter(slug="differential").update(enabled=True)
    assert api.post(URL.format("differential"), row(), format="json").status_code == 200


def test_a_promotion_answers_from_the_next_request(api, trained):
    from predictions.models import ModelVersion

    first = api.post(URL.format("cad-risk"), row(), format="json").json()
    assert first["model"]["version_id"] == trained.risk.pk
    promoted = ModelVersion.objects.get(pk=trained.risk.pk)
    promoted.pk, promoted.number, promoted.training_job = None, trained.risk.number + 1, None
    promoted.save()
    PredictionTask.objects.filter(slug="cad-risk").update(active_version=promoted)
    second = api.post(URL.format("cad-risk"), row(), format="json").json()
    assert second["model"]["version_id"] == promoted.pk
    assert list(ModelUse.objects.order_by("id").values_list("version_id", flat=True)) == [
        trained.risk.pk,
        promoted.pk,
    ]


def test_a_kept_task_costs_no_query_the_answer_is_checked_at_the_write(api, trained):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    assert api.post(URL.format("differential"), row(), format="json").status_code == 200
    with CaptureQueriesContext(connection) as queries:
        assert api.post(URL.format("differential"), row(), format="json").status_code == 200
    statements = [q["sql"] for q in queries.captured_queries]
    assert not any(s.startswith('SELECT "predictions_predictiontask"') for s in statements)
    writes = [s for s in statements if s.startswith('INSERT INTO "predictions_modeluse"')]
    assert len(writes) == 1
    assert "predictions_predictiontask" in writes[0]
    assert len(statements) == 2  # the token with its roles, and the conditional write


def test_a_model_without_active_version_is_unavailable(api, db):
    response = api.post(URL.format("differential"), row(), format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "model_unavailable"


def test_a_tampered_artifact_is_refused_not_served(api, trained):
    from pathlib import Path

    Path(trained.differential.artifact_path).write_bytes(b"not the model")
    response = api.post(URL.format("differential"), row(), format="json")
    assert response.status_code == 409
    assert "cannot be used" in response.json()["error"]["message"]


def test_predict_is_rate_limited_per_token(api, client_for, doctor_a, trained, settings):
    settings.MEDAI_PREDICT_RATE = "2/min"
    for _ in range(2):
        assert api.post(URL.format("cad-risk"), row(), format="json").status_code == 200
    limited = api.post(URL.format("cad-risk"), row(), format="json")
    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "throttled"
    other = client_for(doctor_a, [Scope.MODELS_PREDICT])  # another token: its own budget
    assert other.post(URL.format("cad-risk"), row(), format="json").status_code == 200


def test_schema_describes_the_inputs_and_accepts_a_valid_row(api, trained):
    response = api.get(SCHEMA.format("differential"))
    assert response.status_code == 200
    body = response.json()
    assert body["model"]["sha256"] == trained.differential.artifact_sha256
    schema = body["json_schema"]
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(row(), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(row(sex="robot"), schema)
    assert "8867-4" in schema["x-used-by-model"]
    heart = next(o for o in schema["x-observations"] if o["code"] == "8867-4")
    assert heart["name"] == "Heart rate"
    assert heart["maximum"] == 250


# Issue 15: SQL statements per prediction (the test transaction's savepoints aside): the token
# with its user's roles, the task with its active version (no reports), the model-use row.
PREDICT_STATEMENTS = 3


def test_predict_statement_count(api, trained):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    api.post(URL.format("differential"), row(), format="json")  # warm: token, catalogue, model
    with CaptureQueriesContext(connection) as queries:
        response = api.post(URL.format("differential"), row(), format="json")
    assert response.status_code == 200, response.content
    statements = [q["sql"] for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]]
    assert len(statements) <= PREDICT_STATEMENTS, statements
    assert sum(s.startswith("INSERT") for s in statements) == 1  # the model-use record, always
    assert not any('"report"' in s for s in statements)
