"""The bilingual symptom benchmark: short presentations of 24 diagnoses, half English, half
Chinese, with negated findings. ``python -m tests.predictions.ml.text_data.generate`` rewrites
``bilingual_symptoms.csv`` (and ``english_symptoms_1200.csv`` for the speed benchmark).

Each diagnosis has findings with the chance a note mentions them, and findings a note often
*denies* (the ones that tell it apart from its look-alikes: cystitis "no fever, no flank pain",
GERD "no sweating", tension headache "no nausea or sensitivity to light"). Look-alike findings
are shared across diagnoses and each presentation draws only some of them, so no one keyword
decides a class; a fifth of presentations also carry a finding of a look-alike diagnosis.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from tests.predictions.ml.text_data.findings import FINDINGS

HERE = Path(__file__).resolve().parent

# diagnosis: (findings with the chance a note mentions them, often-denied findings, look-alikes)
DIAGNOSES: dict[str, tuple[dict[str, float], tuple[str, ...], tuple[str, ...]]] = {
    "common cold": (
        {
            "runny_nose": 0.7,
            "blocked_nose": 0.5,
            "sneezing": 0.5,
            "sore_throat": 0.6,
            "dry_cough": 0.4,
            "headache": 0.2,
            "low_fever": 0.2,
            "fatigue": 0.2,
        },
        ("fever", "myalgia", "dyspnoea", "chills"),
        ("influenza", "allergic rhinitis"),
    ),
    "influenza": (
        {
            "fever": 0.85,
            "myalgia": 0.75,
            "chills": 0.5,
            "headache": 0.5,
            "dry_cough": 0.5,
            "fatigue": 0.6,
            "sore_throat": 0.3,
            "runny_nose": 0.2,
        },
        ("dyspnoea", "productive_cough"),
        ("common cold", "pneumonia"),
    ),
    "pneumonia": (
        {
            "fever": 0.8,
            "productive_cough": 0.8,
            "dyspnoea": 0.6,
            "pleuritic_pain": 0.45,
            "chills": 0.4,
            "fatigue": 0.3,
            "anorexia": 0.2,
        },
        ("wheeze", "ankle_swelling"),
        ("influenza", "copd exacerbation"),
    ),
    "asthma exacerbation": (
        {
            "wheeze": 0.75,
            "chest_tightness": 0.6,
            "dyspnoea": 0.6,
            "night_cough": 0.5,
            "allergen_trigger": 0.5,
            "dry_cough": 0.3,
        },
        ("fever", "productive_cough", "smoker"),
        ("copd exacerbation", "allergic rhinitis"),
    ),
    "copd exacerbation": (
        {
            "smoker": 0.7,
            "chronic_lung": 0.5,
            "more_sputum": 0.7,
            "dyspnoea": 0.7,
            "wheeze": 0.5,
            "productive_cough": 0.4,
            "low_fever": 0.2,
        },
        ("chest_tightness", "pleuritic_pain"),
        ("asthma exacerbation", "pneumonia"),
    ),
    "acute coronary syndrome": (
        {
            "crushing_chest_pain": 0.8,
            "arm_radiation": 0.55,
            "sweating": 0.6,
            "nausea": 0.35,
            "dyspnoea": 0.35,
            "rest_pain": 0.4,
            "sudden_onset": 0.2,
        },
        ("fever", "pleuritic_pain"),
        ("stable angina", "gastro-oesophageal reflux"),
    ),
    "stable angina": (
        {
            "exertional_chest_pain": 0.85,
            "rest_relief": 0.7,
            "chest_tightness": 0.4,
            "exertional_dyspnoea": 0.3,
            "smoker": 0.2,
        },
        ("rest_pain", "sweating", "arm_radiation"),
        ("acute coronary syndrome", "gastro-oesophageal reflux"),
    ),
    "heart failure": (
        {
            "orthopnoea": 0.6,
            "pnd": 0.5,
            "ankle_swelling": 0.7,
            "exertional_dyspnoea": 0.6,
            "weight_gain": 0.35,
            "fatigue": 0.3,
        },
        ("chest_tightness", "fever", "crushing_chest_pain"),
        ("copd exacerbation", "iron deficiency anaemia"),
    ),
    "gastro-oesophageal reflux": (
        {
            "heartburn": 0.8,
            "regurgitation": 0.6,
            "worse_lying": 0.5,
            "dry_cough": 0.15,
            "chest_tightness": 0.2,
            "nausea": 0.15,
        },
        ("sweating", "arm_radiation", "dyspnoea", "exertional_chest_pain"),
        ("acute coronary syndrome", "peptic ulcer"),
    ),
    "peptic ulcer": (
        {
            "epigastric_pain": 0.85,
            "food_relation": 0.6,
            "nsaid_use": 0.45,
            "nausea": 0.3,
            "black_stool": 0.2,
            "heartburn": 0.2,
        },
        ("fever", "diarrhoea", "jaundice"),
        ("gastro-oesophageal reflux", "biliary colic"),
    ),
    "biliary colic": (
        {
            "ruq_pain": 0.8,
            "fatty_meal": 0.6,
            "shoulder_radiation": 0.45,
            "nausea": 0.5,
            "vomiting": 0.3,
            "low_fever": 0.15,
        },
        ("jaundice", "diarrhoea"),
        ("peptic ulcer", "acute appendicitis"),
    ),
    "acute appendicitis": (
        {
            "periumbilical_pain": 0.6,
            "rlq_pain": 0.8,
            "anorexia": 0.5,
            "nausea": 0.5,
            "low_fever": 0.4,
            "rebound": 0.4,
            "vomiting": 0.3,
        },
        ("diarrhoea", "dysuria"),
        ("gastroenteritis", "renal colic"),
    ),
    "gastroenteritis": (
        {
            "diarrhoea": 0.85,
            "vomiting": 0.6,
            "cramps": 0.6,
            "bad_food": 0.4,
            "low_fever": 0.3,
            "nausea": 0.4,
        },
        ("blood_in_stool", "rlq_pain"),
        ("acute appendicitis", "peptic ulcer"),
    ),
    "cystitis": (
        {
            "dysuria": 0.85,
            "frequency": 0.75,
            "urgency": 0.55,
            "suprapubic_pain": 0.45,
            "cloudy_urine": 0.35,
            "haematuria": 0.1,
        },
        ("fever", "flank_pain", "vomiting", "chills"),
        ("pyelonephritis", "renal colic"),
    ),
    "pyelonephritis": (
        {
            "fever": 0.85,
            "flank_pain": 0.8,
            "chills": 0.5,
            "dysuria": 0.7,
            "frequency": 0.6,
            "vomiting": 0.35,
            "renal_angle": 0.35,
        },
        (),
        ("cystitis", "renal colic"),
    ),
    "renal colic": (
        {
            "colicky_flank": 0.8,
            "groin_radiation": 0.6,
            "haematuria": 0.5,
            "nausea": 0.4,
            "vomiting": 0.3,
            "flank_pain": 0.4,
        },
        ("fever", "dysuria"),
        ("pyelonephritis", "acute appendicitis"),
    ),
    "migraine": (
        {
            "unilateral_headache": 0.8,
            "nausea": 0.6,
            "photophobia": 0.65,
            "phonophobia": 0.35,
            "aura": 0.35,
            "vomiting": 0.2,
        },
        ("weakness_one_side", "fever"),
        ("tension headache", "stroke"),
    ),
    "tension headache": (
        {"band_headache": 0.8, "stress": 0.5, "neck_tension": 0.5, "headache": 0.4, "fatigue": 0.2},
        ("nausea", "photophobia", "vomiting", "aura"),
        ("migraine",),
    ),
    "stroke": (
        {
            "weakness_one_side": 0.8,
            "slurred_speech": 0.6,
            "facial_droop": 0.5,
            "sudden_onset": 0.6,
            "blurred_vision": 0.2,
            "dizziness": 0.2,
        },
        ("headache", "fever"),
        ("migraine",),
    ),
    "type 2 diabetes": (
        {
            "thirst": 0.8,
            "polyuria": 0.7,
            "fatigue": 0.5,
            "weight_loss": 0.4,
            "blurred_vision": 0.3,
            "slow_healing": 0.35,
        },
        ("heat_intolerance", "tremor"),
        ("hyperthyroidism",),
    ),
    "hyperthyroidism": (
        {
            "weight_loss": 0.7,
            "palpitations": 0.6,
            "heat_intolerance": 0.6,
            "tremor": 0.5,
            "anxiety": 0.45,
            "goitre": 0.3,
            "sweating": 0.3,
            "diarrhoea": 0.1,
        },
        ("thirst", "cold_hands"),
        ("type 2 diabetes", "iron deficiency anaemia"),
    ),
    "iron deficiency anaemia": (
        {
            "fatigue": 0.85,
            "pallor": 0.6,
            "exertional_dyspnoea": 0.45,
            "dizziness": 0.4,
            "heavy_periods": 0.4,
            "brittle_nails": 0.35,
            "cold_hands": 0.3,
            "palpitations": 0.2,
        },
        ("weight_loss", "fever", "ankle_swelling"),
        ("hyperthyroidism", "heart failure"),
    ),
    "deep vein thrombosis": (
        {"calf_swelling": 0.85, "calf_pain": 0.7, "leg_warmth": 0.5, "immobility": 0.55},
        ("dyspnoea", "crushing_chest_pain", "fever"),
        ("heart failure",),
    ),
    "allergic rhinitis": (
        {
            "sneezing": 0.8,
            "runny_nose": 0.6,
            "itchy_eyes": 0.6,
            "itchy_nose": 0.5,
            "seasonal": 0.55,
            "blocked_nose": 0.4,
        },
        ("fever", "sore_throat", "myalgia"),
        ("common cold", "asthma exacerbation"),
    ),
}

# Openings name who, and for how long; the findings follow. English notes mix the clinician's
# shorthand with the patient's own words, as triage notes and web forms do.
EN_DURATIONS = (
    "for 2 days",
    "for three days",
    "for a week",
    "since yesterday",
    "for 10 days",
    "for a few hours",
    "for two weeks",
    "for 48 hours",
    "for about a month",
    "since last weekend",
)
# (how long, since when): "咳嗽三天" / "三天前出现咳嗽"
ZH_DURATIONS = (
    ("2天", "2天前"),
    ("三天", "三天前"),
    ("一周", "一周前"),
    ("1天", "昨日"),
    ("10天", "10天前"),
    ("数小时", "数小时前"),
    ("两周", "两周前"),
    ("48小时", "48小时前"),
    ("一个月左右", "一个月前"),
    ("5天", "5天前"),
)
EN_WHO = (
    "{age}-year-old man",
    "{age}-year-old woman",
    "{age}M",
    "{age}F",
    "Pt ({age})",
    "Patient, {age},",
    "{age} yo female",
    "{age} yo male",
)
ZH_WHO = ("患者男，{age}岁，", "患者女，{age}岁，", "{age}岁男性，", "{age}岁女性，", "患者，", "")
EN_NEG = ("no {x}", "denies {x}", "without {x}", "negative for {x}", "no {x} reported", "nil {x}")
ZH_NEG = ("无{x}", "否认{x}", "未见{x}", "没有{x}", "不伴{x}", "未诉{x}")


def _join_en(items: list[str], rng: np.random.Generator) -> str:
    if len(items) == 1:
        return items[0]
    glue = " and " if rng.random() < 0.7 else " as well as "
    return ", ".join(items[:-1]) + glue + items[-1]


def _join_zh(items: list[str], rng: np.random.Generator) -> str:
    return ("、" if rng.random() < 0.6 else "，").join(items)


def _phrase(finding: str, language: str, rng: np.random.Generator) -> str:
    en, zh = FINDINGS[finding]
    options = en if language == "en" else zh
    return options[int(rng.integers(len(options)))]


def presentation(diagnosis: str, language: str, rng: np.random.Generator) -> str:
    """One short presentation of ``diagnosis`` in ``language`` ("en" or "zh")."""
    findings, denied, lookalikes = DIAGNOSES[diagnosis]
    names = list(findings)
    present = [f for f in names if rng.random() < findings[f]]
    if not present:  # every note says something
        present = [names[int(rng.integers(len(names)))]]
    order = rng.permutation(len(present))
    present = [present[i] for i in order][:4]
    if rng.random() < 0.2 and lookalikes:  # a look-alike's finding, as real notes carry
        other = DIAGNOSES[lookalikes[int(rng.integers(len(lookalikes)))]][0]
        decoy = list(other)[int(rng.integers(len(other)))]
        if decoy not in present and decoy not in denied:
            present.insert(int(rng.integers(len(present) + 1)), decoy)
    negated = [d for d in denied if rng.random() < 0.45 and d not in present][:3]
    first, rest = present[0], present[1:]
    age = int(rng.integers(18, 86))
    if language == "en":
        duration = EN_DURATIONS[int(rng.integers(len(EN_DURATIONS)))]
        style = rng.random()
        phrases = [_phrase(f, "en", rng) for f in rest]
        if style < 0.4:
            who = EN_WHO[int(rng.integers(len(EN_WHO)))].format(age=age)
            text = f"{who} with {_phrase(first, 'en', rng)} {duration}."
            if phrases:
                text += f" Also {_join_en(phrases, rng)}."
        elif style < 0.75:
            text = f"I have had {_phrase(first, 'en', rng)} {duration}"
            text += f" and {_join_en(phrases, rng)}." if phrases else "."
        else:
            text = f"{_phrase(first, 'en', rng).capitalize()} {duration}"
            text += f"; {_join_en(phrases, rng)}." if phrases else "."
        if negated:
            forms = [EN_NEG[int(rng.integers(len(EN_NEG)))] for _ in negated]
            if rng.random() < 0.5:
                text += (
                    " "
                    + "; ".join(
                        f.format(x=_phrase(d, "en", rng))
                        for f, d in zip(forms, negated, strict=True)
                    ).capitalize()
                    + "."
                )
            else:
                words = [_phrase(d, "en", rng) for d in negated]
                lead = ("Denies", "No", "Negative for")[int(rng.integers(3))]
                text += f" {lead} {_join_en(words, rng).replace(' and ', ' or ')}."
        return text
    duration, since = ZH_DURATIONS[int(rng.integers(len(ZH_DURATIONS)))]
    who = ZH_WHO[int(rng.integers(len(ZH_WHO)))].format(age=age)
    phrases = [_phrase(f, "zh", rng) for f in rest]
    style = rng.random()
    if style < 0.4:
        text = f"{who}{_phrase(first, 'zh', rng)}{duration}"
        text += f"，伴{_join_zh(phrases, rng)}。" if phrases else "。"
    elif style < 0.75:
        text = f"{who}{since}出现{_phrase(first, 'zh', rng)}"
        text += f"，{_join_zh(phrases, rng)}。" if phrases else "。"
    else:
        text = f"自诉{_phrase(first, 'zh', rng)}{duration}"
        text += f"，还有{_join_zh(phrases, rng)}。" if phrases else "。"
    if negated:
        if rng.random() < 0.5:
            parts = [
                ZH_NEG[int(rng.integers(len(ZH_NEG)))].format(x=_phrase(d, "zh", rng))
                for d in negated
            ]
            text += "，".join(parts) + "。"
        else:
            lead = ("否认", "无", "未诉")[int(rng.integers(3))]
            text += lead + "、".join(_phrase(d, "zh", rng) for d in negated) + "。"
    return text


def generate(per_class: int, seed: int, languages: tuple[str, ...]) -> list[tuple[str, str]]:
    """(text, diagnosis) rows: ``per_class`` per diagnosis, languages alternating; no duplicates."""
    rng = np.random.default_rng(seed)
    rows: list[tuple[str, str]] = []
    seen: set[str] = set()
    for diagnosis in DIAGNOSES:
        made = 0
        while made < per_class:
            language = languages[made % len(languages)]
            text = presentation(diagnosis, language, rng)
            if text in seen:
                continue
            seen.add(text)
            rows.append((text, diagnosis))
            made += 1
    order = rng.permutation(len(rows))
    return [rows[i] for i in order]


def write(path: Path, rows: list[tuple[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    write(args.out / "bilingual_symptoms.csv", generate(30, seed=13, languages=("en", "zh")))
    write(args.out / "english_symptoms_1200.csv", generate(50, seed=24, languages=("en",)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
