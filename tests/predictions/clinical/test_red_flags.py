"""Red-flag screens fire on the vignettes that carry them, in English and Chinese, through the
rules the advice runs, and stay silent when the finding is negated; no model is involved."""

from __future__ import annotations

import pytest

from predictions.ml import red_flags
from predictions.rules import ObservationFact, evaluate_rules
from tests.predictions.clinical import vignettes as vig

WITH_FLAGS = [v for v in vig.vignettes() if v["red_flags"] or v["must_not_fire"]]


def _facts(values: dict[str, float]) -> dict[str, ObservationFact]:
    return {
        code: ObservationFact(code, code, value, "", "", None, None)
        for code, value in values.items()
    }


def test_every_red_flag_has_vignettes_in_both_languages() -> None:
    for rule in vig.RED_FLAG_RULES:
        languages = {v["language"] for v in vig.vignettes() if rule in v["red_flags"]}
        assert languages == {"en", "zh"}, rule
        negated = {v["language"] for v in vig.vignettes() if rule in v["must_not_fire"]}
        assert negated, f"{rule}: no vignette with the finding negated"
    assert set(red_flags.SCREENS) == set(vig.RED_FLAG_RULES)


@pytest.mark.parametrize("vignette", WITH_FLAGS, ids=lambda v: v["id"])
def test_each_red_flag_fires_its_rule_through_the_advice_rules(vignette) -> None:
    alerts = evaluate_rules(
        facts=_facts(vig.vitals(vignette)),
        free_text=vignette["complaint"],
        suggested_codes=[],
        allergies=[],
    )
    fired = {a["rule"] for a in alerts}
    assert set(vignette["red_flags"]) <= fired
    assert not set(vignette["must_not_fire"]) & fired


def test_possible_acs_asks_for_an_ecg_within_ten_minutes_and_troponin() -> None:
    for note in ("Chest pain radiating to the left arm", "胸痛三小时，伴出汗，活动后加重"):
        (flag,) = red_flags.screen(note)
        assert flag.rule == "possible_acs"
        assert flag.severity == "critical"
        assert "12-lead ECG within 10 minutes, troponin" in flag.message


@pytest.mark.parametrize(
    ("note", "rule"),
    [
        ("Chest pain with sweating", "possible_acs"),
        ("Chest pain, no sweating", None),
        ("胸痛伴大汗", "possible_acs"),
        ("胸痛，无大汗", None),
        ("胸痛，否认放射痛", None),
        ("Chest tightness when climbing stairs", "possible_acs"),
        ("Chest tightness, not related to exertion", None),
        ("Slurred speech since this morning", "stroke_fast"),
        ("No slurred speech", None),
        ("突发言语不清", "stroke_fast"),
        ("无言语不清，无口角歪斜", None),
        ("Stiff neck and fever", "meningism"),
        ("Fever, denies stiff neck", None),
        ("颈项强直伴发热", "meningism"),
        ("发热，无颈项强直", None),
        ("Black tarry stools", "gi_bleed"),
        ("No melaena or haematemesis", None),
        ("黑便两次", "gi_bleed"),
        ("否认黑便", None),
        ("Known diabetic, vomiting since last night", "dka_pattern"),
        ("Known diabetic, no vomiting", None),
        ("糖尿病，呕吐一天", "dka_pattern"),
        ("糖尿病，无呕吐", None),
        ("Throat swelling after a wasp sting", "anaphylaxis"),
        ("No throat swelling", None),
        ("喉头水肿", "anaphylaxis"),
        ("无喉头水肿", None),
    ],
)
def test_negation_is_respected_in_both_languages(note: str, rule: str | None) -> None:
    fired = [f.rule for f in red_flags.screen(note)]
    assert fired == ([rule] if rule else [])


def test_vitals_escalate_gi_bleeding_and_can_complete_dka_and_meningism() -> None:
    (calm,) = red_flags.screen("vomited blood once", {"8867-4": 80, "8480-6": 130})
    (shocked,) = red_flags.screen("vomited blood once", {"8867-4": 120, "8480-6": 92})
    assert (calm.severity, shocked.severity) == ("high", "critical")
    assert "heart rate 120/min" in shocked.message
    assert red_flags.screen("vomiting and abdominal pain", {"2345-7": 90}) == []
    (dka,) = red_flags.screen("vomiting and abdominal pain", {"2345-7": 420})
    assert dka.rule == "dka_pattern"
    assert red_flags.screen("headache and photophobia", {"8310-5": 36.9}) == []
    (meningitis,) = red_flags.screen("headache and photophobia", {"8310-5": 39.2})
    assert meningitis.rule == "meningism"


def test_a_red_flag_replaces_the_phrase_alert_it_covers() -> None:
    alerts = evaluate_rules(
        facts={},
        free_text="Crushing chest pain radiating to the jaw",
        suggested_codes=[],
        allergies=[],
    )
    assert [a["rule"] for a in alerts] == ["possible_acs"]
    alerts = evaluate_rules(
        facts={}, free_text="Crushing chest pain for an hour", suggested_codes=[], allergies=[]
    )
    assert [a["rule"] for a in alerts] == ["critical_phrase"]
