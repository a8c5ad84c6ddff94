"""The honest "why": only recorded findings are reasons, each as entered with its unit and in
plain words; tests not done that would help are listed apart; abstention in plain words."""

from __future__ import annotations

import pytest

from predictions.why import abstain_text, reasons, would_help

pytestmark = pytest.mark.django_db

RECORD = {
    "age": 65.0,
    "sex": "male",
    "visit_type": "emergency",
    "chief_complaint": "crushing chest pain radiating to the left arm, sweating",
    "history": "",
    "obs_2345-7": 176.56,
    "obs_8867-4": 118.0,
}
ENTERED = {"2345-7": "9.8 mmol/L", "8867-4": "118 /min"}


def test_only_recorded_findings_are_reasons_with_the_value_and_unit_as_entered():
    raw = [
        {"feature": "obs_2345-7", "value": 176.56, "contribution": 0.4},
        {"feature": "obs_718-7", "value": None, "contribution": -0.3},  # haemoglobin: not done
        {"feature": "obs_10839-9", "value": None, "contribution": -0.5},  # troponin: not done
        {"feature": "age", "value": 65.0, "contribution": 0.2},
        {"feature": "visit_type", "value": "emergency", "contribution": 0.1},
        {"feature": "chief_complaint", "value": "crushing…", "contribution": 0.9},
        {"feature": "history", "value": "", "contribution": -0.1},  # nothing written
        {"feature": "engine_internal_9", "value": 1, "contribution": 0.05},
    ]
    shown, unmeasured = reasons(raw, RECORD, ENTERED)
    assert [(c.feature, c.kind, c.label, c.value) for c in shown] == [
        ("obs_2345-7", "observation", "Glucose", "9.8 mmol/L"),
        ("age", "age", "Age", "65"),
        ("visit_type", "visit_type", "Visit type", "emergency"),
        ("chief_complaint", "text", "Chief complaint", RECORD["chief_complaint"]),
    ]
    assert unmeasured == ["718-7", "10839-9"]
    assert not any("176" in str(c.value) or "obs_" in c.label for c in shown)


def test_not_measured_lists_what_the_model_leaned_on_and_what_a_rule_asks_for():
    listed = would_help(["718-7", "8867-4"], ["possible_acs", "hypoxaemia"], ENTERED)
    assert [(t.code, t.label, t.source) for t in listed] == [
        ("10839-9", "Troponin I", "rule"),
        ("ECG", "12-lead ECG", "rule"),
        ("718-7", "Hemoglobin", "model"),
    ]


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        (
            "9 of 12 usually recorded inputs are missing (obs_2708-6, obs_29463-7, age, obs_718-7, "
            "obs_6690-2, ...)",
            "Only 3 of the 12 findings usually recorded were entered (not recorded: oxygen "
            "saturation, body weight, age, hemoglobin, white blood cell count …).",
        ),
        (
            "obs_8310-5 = 80 is physiologically impossible (ignored)",
            "The body temperature value 80 is not physiologically possible and was ignored.",
        ),
        (
            "obs_8867-4 = 240 is far outside the training range 40 to 160",
            "The heart rate value 240 /min is far outside what the model learned from (40–160 /min).",
        ),
        (
            "top probability 0.23 is below the confidence floor 0.30",
            "No diagnosis stands out: the most likely has only 23% (below the 30%",
        ),
        ("obs_2345-7 something new", "glucose something new"),
    ],
)
def test_abstention_reasons_read_in_plain_words_without_feature_codes(reason, expected):
    text = abstain_text(reason)
    assert text.startswith(expected)
    assert "obs_" not in text
    assert "_" not in text
