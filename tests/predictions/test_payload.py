"""The typed advice payload: one shape, versioned; old payloads still read; the API follows it."""

from __future__ import annotations

import dataclasses
import json

from predictions import payload
from predictions.api.payload import AdviceSerializer, serializer_for
from predictions.payload import (
    PAYLOAD_VERSION,
    AdvicePayload,
    Alert,
    RankedDiagnosis,
    Risk,
    payload_dumps,
    payload_loads,
)
from tests.pages.conftest import advice_payload as legacy_payload


def test_a_payload_round_trips_with_its_version():
    built = AdvicePayload(
        visit_id=7,
        computed_at="2026-01-01T00:00:00+00:00",
        diagnoses=[RankedDiagnosis(code="J18", display="Pneumonia", probability=0.6, rank=1)],
        risks=[Risk(task="cad-risk", probability=0.2)],
        alerts=[Alert(rule="hypoxaemia", severity="high", message="SpO2 85 %")],
        rules_version=1,
    )
    stored = json.loads(payload_dumps(built))
    assert stored["version"] == PAYLOAD_VERSION
    assert payload_loads(payload_dumps(built)) == built


def test_a_payload_stored_before_versioning_reads_as_version_1():
    old = legacy_payload(3)
    assert "version" not in old
    read = payload_loads(json.dumps(old))
    assert read.version == 1
    assert read.top_diagnosis.code == "J18"
    assert read.explanation.contributions[0].label == "Oxygen saturation"
    assert [a.message for a in read.critical_alerts] == [old["alerts"][1]["message"]]
    assert read.similar_cases[0].year == 2025
    assert read.suggestions() == {"J18": 1, "J06": 2, "other": 3}


def test_a_partial_payload_reads_with_defaults_and_ignores_unknown_keys():
    read = payload_loads(
        json.dumps({"risks": [{"task": "cad-risk", "probability": 0.9}], "future": 1})
    )
    assert read.risk("cad-risk").probability == 0.9
    assert read.diagnoses == []
    assert read.risk("other") is None


def test_the_api_serializer_has_exactly_the_payload_fields_plus_the_rows_id_and_time():
    fields = set(AdviceSerializer().fields)
    assert fields == {f.name for f in dataclasses.fields(AdvicePayload)} | {"id", "created_at"}
    risk = serializer_for(payload.Risk)()
    assert set(risk.fields) == {f.name for f in dataclasses.fields(payload.Risk)}
    severity = serializer_for(payload.Alert)().fields["severity"]
    assert set(severity.choices) == {"critical", "high", "warning"}


def test_a_version_1_similar_case_reads_without_the_other_patients_visit_id():
    """Payloads stored before finding 6 named the other patient's visit and exact age: read in
    the version-2 shape, which has no field to hold them."""
    read = payload_loads(json.dumps(legacy_payload(3)))
    (case,) = read.similar_cases
    assert dataclasses.asdict(case) == {
        "age_band": "60-69",
        "sex": "male",
        "year": 2025,
        "diagnoses": ["J18.9 Pneumonia, unspecified"],
        "outcome": "emergency",
    }
    assert "visit_id" not in json.dumps(dataclasses.asdict(case))
