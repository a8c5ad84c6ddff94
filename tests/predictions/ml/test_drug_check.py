"""The allergy and drug check on the doctor's plan (pure engine, no database): drugs and classes
in English and Chinese, class cross-reactivity, avoided drugs and denied allergies."""

from __future__ import annotations

import pytest

from predictions.ml.drug_check import (
    AllergyRecord,
    allergies_from_text,
    check_plan,
    drug_keys,
    lexicon,
)

A = AllergyRecord


@pytest.mark.parametrize(
    ("plan", "allergy", "expected"),
    [
        # The same drug, in either language; a severe allergy makes it critical.
        ("aspirin 300 mg chewed", A("aspirin", "severe"), ("same_drug", "critical", "aspirin")),
        ("阿司匹林300mg嚼服", A("阿司匹林", "severe"), ("same_drug", "critical", "阿司匹林")),
        ("阿司匹林 300mg 嚼服", A("Aspirin", "moderate"), ("same_drug", "high", "阿司匹林")),
        # Aspirin and the other NSAIDs are one class.
        ("ibuprofen 400 mg tds", A("aspirin", "moderate"), ("same_class", "high", "ibuprofen")),
        ("布洛芬缓释胶囊 0.3g", A("阿司匹林", "moderate"), ("same_class", "high", "布洛芬")),
        ("naproxen 500 mg", A("NSAIDs", "severe"), ("same_class", "critical", "naproxen")),
        ("start NSAIDs for pain", A("aspirin", "mild"), ("same_class", "high", "NSAIDs")),
        # Penicillins: amoxicillin is one.
        (
            "amoxicillin 500 mg tds",
            A("penicillin", "severe"),
            ("same_class", "critical", "amoxicillin"),
        ),
        ("阿莫西林胶囊 0.5g tid", A("青霉素", "severe"), ("same_class", "critical", "阿莫西林")),
        (
            "co-amoxiclav 625 mg",
            A("amoxicillin", "moderate"),
            ("same_drug", "high", "co-amoxiclav"),
        ),
        # Cephalosporins with a penicillin allergy: a caution, not a contraindication.
        (
            "ceftriaxone 2 g IV",
            A("penicillin", "severe"),
            ("cross_reactive", "warning", "ceftriaxone"),
        ),
        ("头孢克肟 100mg", A("青霉素", "moderate"), ("cross_reactive", "warning", "头孢克肟")),
        (
            "cefalexin 500 mg",
            A("penicillins", "moderate"),
            ("cross_reactive", "warning", "cefalexin"),
        ),
        # A beta-lactam allergy covers both.
        (
            "ceftriaxone 1 g",
            A("beta-lactam antibiotics", "severe"),
            ("same_class", "critical", "ceftriaxone"),
        ),
        ("celecoxib 200 mg", A("aspirin", "moderate"), ("cross_reactive", "warning", "celecoxib")),
        (
            "co-trimoxazole 960 mg bd",
            A("sulfa", "moderate"),
            ("same_class", "high", "co-trimoxazole"),
        ),
    ],
)
def test_a_plan_drug_that_conflicts_with_an_allergy_is_flagged(plan, allergy, expected):
    (conflict,) = check_plan(text=plan, allergies=[allergy])
    assert (conflict.kind, conflict.severity, conflict.written) == expected
    assert allergy.substance in conflict.message
    assert expected[2] in conflict.message


@pytest.mark.parametrize(
    ("plan", "allergy"),
    [
        ("avoid NSAIDs, paracetamol 1 g qds", A("aspirin", "severe")),
        ("stop aspirin; clopidogrel 75 mg", A("aspirin", "severe")),
        ("停用阿司匹林，改用氯吡格雷", A("阿司匹林", "severe")),
        ("禁用青霉素类，阿奇霉素 0.5g qd", A("青霉素", "severe")),
        ("penicillin allergy noted; azithromycin 500 mg", A("penicillin", "severe")),
        ("青霉素过敏，予阿奇霉素", A("青霉素", "severe")),
        ("paracetamol 1 g, rest, fluids", A("aspirin", "severe")),
        ("aspirin 75 mg", A("no known drug allergies", "")),
        ("aspirin 75 mg", A("否认阿司匹林过敏", "")),
        ("azithromycin 500 mg", A("penicillin", "severe")),  # a macrolide: no cross-reaction
    ],
)
def test_avoided_drugs_denied_allergies_and_unrelated_drugs_raise_nothing(plan, allergy):
    assert check_plan(text=plan, allergies=[allergy]) == []


def test_one_plan_against_several_allergies_lists_the_worst_first():
    conflicts = check_plan(
        text="aspirin 300 mg stat, ceftriaxone 2 g IV",
        allergies=[A("penicillin", "moderate"), A("aspirin", "severe")],
    )
    assert [(c.written, c.allergy, c.severity) for c in conflicts] == [
        ("aspirin", "aspirin", "critical"),
        ("ceftriaxone", "penicillin", "warning"),
    ]
    assert "caution" in conflicts[1].message


def test_allergy_history_text_names_allergies_unless_denied():
    assert [a.substance for a in allergies_from_text("青霉素过敏，否认磺胺过敏")] == ["青霉素"]
    assert [
        a.substance for a in allergies_from_text("allergic to aspirin; no penicillin allergy")
    ] == ["aspirin"]
    assert allergies_from_text("NKDA") == []


def test_drug_keys_name_what_the_plan_prescribes_without_its_text():
    assert drug_keys("aspirin 300mg and NSAIDs, no ibuprofen") == ["aspirin", "nsaid"]


def test_the_lexicon_states_its_sources_and_every_drug_has_english_and_chinese_names():
    data = lexicon()
    assert any("BNF" in s for s in data["sources"])
    assert any("药典" in s for s in data["sources"])
    for key, drug in data["drugs"].items():
        assert drug["en"], key
        assert drug["zh"], key
        assert set(drug["classes"]) <= set(data["classes"]), key
    for rule in data["cross_reactivity"]:
        assert {rule["allergy"], rule["drug"]} <= set(data["classes"])
        assert rule["severity"] in ("high", "warning")
