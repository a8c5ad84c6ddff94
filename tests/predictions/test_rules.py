"""Clinical rules read English and Chinese: confusion in qSOFA, allergy wording, critical phrases;
negated findings never fire."""

from __future__ import annotations

import pytest

from predictions.rules import (
    ObservationFact,
    allergy_conflicts,
    critical_phrases,
    evaluate_rules,
    qsofa,
    row_alerts,
)

TACHYPNOEA = {"9279-1": ObservationFact("9279-1", "Respiratory rate", 26, "/min", "H", None, None)}


@pytest.mark.parametrize(
    "note",
    [
        "患者意识模糊",
        "家属诉嗜睡半天，反应迟钝",
        "New confusion this morning",
        "GCS 13",
        "? disorientated",
    ],
)
def test_qsofa_counts_confusion_written_in_either_language(note: str) -> None:
    alerts = qsofa(TACHYPNOEA, note)
    assert len(alerts) == 1
    assert "qSOFA 2/3" in alerts[0].message
    assert "altered mentation" in alerts[0].message


@pytest.mark.parametrize(
    "note",
    [
        "无意识障碍，神志清楚",
        "否认意识模糊",
        "No confusion, alert",
        "denies drowsiness",
        "Fever and cough",
    ],
)
def test_qsofa_ignores_negated_or_absent_confusion(note: str) -> None:
    assert qsofa(TACHYPNOEA, note) == []


@pytest.mark.parametrize(
    ("allergy", "code"),
    [
        ("青霉素", "J18.9"),
        ("Penicillin (rash)", "J18.9"),
        ("阿莫西林过敏", "J06.9"),
        ("磺胺类", "N39.0"),
        ("阿司匹林 - 哮喘", "I21.9"),
        ("头孢类抗生素", "K35.8"),
        ("NSAIDs", "G43.9"),
    ],
)
def test_allergy_conflicts_are_found_in_english_and_chinese_wording(
    allergy: str, code: str
) -> None:
    alerts = allergy_conflicts([code], [allergy])
    assert [a.rule for a in alerts] == ["allergy_conflict"]
    assert allergy in alerts[0].message  # named as the doctor recorded it


@pytest.mark.parametrize(
    "allergy",
    ["否认青霉素过敏", "No penicillin allergy", "无药物过敏史", "NKDA", "denies sulfa allergy"],
)
def test_denied_allergies_raise_no_conflict(allergy: str) -> None:
    assert allergy_conflicts(["J18.9", "N39.0"], [allergy]) == []


@pytest.mark.parametrize(
    ("note", "severity", "phrase"),
    [
        ("Crushing chest pain for an hour", "critical", "crushing chest pain"),
        ("压榨样胸痛1小时，伴大汗", "critical", "压榨样胸痛"),
        ("Worst headache of my life, sudden", "critical", "worst headache of my life"),
        ("突发雷击样头痛", "critical", "雷击样头痛"),
        ("口角歪斜，言语不清2小时", "critical", "口角歪斜"),
        ("呕血两次", "high", "呕血"),
        ("Says he wants to die", "high", "wants to die"),
    ],
)
def test_critical_phrases_in_both_languages(note: str, severity: str, phrase: str) -> None:
    alerts = critical_phrases(note)
    assert alerts
    assert alerts[0].rule == "critical_phrase"
    assert alerts[0].severity == severity
    assert phrase in alerts[0].message.lower()  # quoted as written


@pytest.mark.parametrize(
    "note",
    [
        "无呕血，无黑便",
        "否认胸痛放射至左臂",
        "No slurred speech or facial droop",
        "denies suicidal thoughts",
    ],
)
def test_negated_critical_phrases_do_not_fire(note: str) -> None:
    assert critical_phrases(note) == []


def test_evaluate_rules_runs_the_bilingual_rules_together() -> None:
    alerts = evaluate_rules(
        facts=TACHYPNOEA,
        free_text="患者意识模糊，压榨样胸痛",
        suggested_codes=["I21"],
        allergies=["阿司匹林"],
    )
    assert {a["rule"] for a in alerts} == {"sepsis_qsofa", "critical_phrase", "allergy_conflict"}
    assert alerts[0]["severity"] == "critical"


def test_evaluate_rules_given_the_rows_alerts_answers_as_without_them() -> None:
    """A caller scoring one row with several models passes row_alerts once: same alerts."""
    facts, note = TACHYPNOEA, "患者意识模糊，压榨样胸痛"
    row = row_alerts(facts=facts, free_text=note)
    for suggested in ([], ["I21"], ["J18", "I21"]):
        assert evaluate_rules(
            facts=facts, free_text=note, suggested_codes=suggested, allergies=["阿司匹林"], row=row
        ) == evaluate_rules(
            facts=facts, free_text=note, suggested_codes=suggested, allergies=["阿司匹林"]
        )
    assert "allergy_conflict" not in {a.rule for a in row}  # depends on the suggestions
