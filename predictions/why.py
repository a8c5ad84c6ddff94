"""The honest "why" of an advice: what was recorded, in the doctor's units; what was not.

The engine explains a prediction per input column, measured or not (a missing value is imputed
and may still push the prediction). A doctor must read only findings that were actually recorded
as reasons, each with the value as entered ("Glucose 9.8 mmol/L", never "176.56") and a label in
plain words (never "obs_2345-7" or "age (65.0)"). Inputs the model leaned on although they were
not measured, and tests a rule asks for, are listed apart: "not measured — would help". Abstention
reasons are reworded from the engine's terms into plain sentences.

Labels are the catalogue's English displays (msgids of the translation catalogue: pages translate
them, predictions/templatetags/why.py); the API returns them as they are.
"""

from __future__ import annotations

import re
from typing import Any

from medai_site.templatetags.medai import unit_display
from visits.catalogue import BY_CODE
from visits.models import Visit
from visits.units import value_text

from .payload import Contribution, NotMeasured
from .visit_records import TEXT_COLUMNS

TEXT_LABELS = {"chief_complaint": "Chief complaint", "history": "History of present illness"}
CATEGORY_LABELS = {"sex": "Sex", "visit_type": "Visit type"}
# Tests a rule's alert asks for, when the visit has no value for them (catalogue codes; "ECG" has
# no catalogue entry: an ECG is never a recorded value here, so the rule always asks for it).
ECG = "ECG"
RULE_TESTS: dict[str, tuple[str, ...]] = {
    "possible_acs": ("10839-9", ECG),
    "critical_chest_pain": ("10839-9", ECG),
    "dka_pattern": ("2345-7",),
    "gi_bleed": ("718-7",),
    "gi_bleeding": ("718-7",),
    "sepsis_qsofa": ("2524-7", "6690-2"),
    "meningism": ("6690-2", "1988-5"),
}
TEST_LABELS = {ECG: "12-lead ECG"}


def test_label(code: str) -> str:
    definition = BY_CODE.get(code)
    return definition.display if definition else TEST_LABELS.get(code, code)


def entered_values(visit: Visit) -> dict[str, str]:
    """Each recorded observation as the doctor entered it: '9.8 mmol/L' by code."""
    # The number as typed (its shortest exact form): the catalogue's decimals are those of the
    # canonical unit, and would round 9.8 mmol/L to 10.
    return {
        obs.definition.code: f"{value_text(obs.entered_value)} {unit_display(obs.entered_unit)}"
        for obs in visit.observations.all()
    }


def reasons(
    raw: list[dict[str, Any]], record: dict[str, Any], entered: dict[str, str]
) -> tuple[list[Contribution], list[str]]:
    """The engine's contributions reduced to recorded findings in plain words, and the codes of
    observations the model leaned on although they were not measured."""
    recorded: list[Contribution] = []
    unmeasured: list[str] = []
    for c in raw:
        feature = str(c["feature"])
        contribution = float(c["contribution"])
        if feature.startswith("obs_"):
            code = feature[4:]
            if code not in entered:
                if code in BY_CODE:
                    unmeasured.append(code)
                continue
            recorded.append(
                Contribution(feature, test_label(code), entered[code], contribution, "observation")
            )
        elif feature == "age" and record.get("age") is not None:
            age = f"{round(float(record['age']))}"
            recorded.append(Contribution(feature, "Age", age, contribution, "age"))
        elif feature in CATEGORY_LABELS and record.get(feature):
            label = CATEGORY_LABELS[feature]
            recorded.append(Contribution(feature, label, record[feature], contribution, feature))
        elif feature in TEXT_COLUMNS and str(record.get(feature) or "").strip():
            text = str(record[feature]).strip()
            value = text if len(text) <= 60 else text[:57] + "…"
            recorded.append(
                Contribution(feature, TEXT_LABELS[feature], value, contribution, "text")
            )
        elif ": " in feature and feature.partition(": ")[0] in TEXT_COLUMNS:
            column, _, term = feature.partition(": ")
            if term and term.casefold() in str(record.get(column) or "").casefold():
                recorded.append(
                    Contribution(feature, TEXT_LABELS[column], term, contribution, "text")
                )
        # Anything else (an input that was not recorded, or an engine name with no plain words)
        # is no reason a doctor can check: left out rather than shown as a code.
    return recorded, unmeasured


def would_help(
    model_codes: list[str], alert_rules: list[str], entered: dict[str, str]
) -> list[NotMeasured]:
    """Tests not done that the model leaned on or a rule asks for, each once, rules first."""
    seen: dict[str, NotMeasured] = {}
    for rule in alert_rules:
        for code in RULE_TESTS.get(rule, ()):
            if code not in entered and code not in seen:
                seen[code] = NotMeasured(code=code, label=test_label(code), source="rule")
    for code in model_codes:
        if code not in entered and code not in seen:
            seen[code] = NotMeasured(code=code, label=test_label(code), source="model")
    return list(seen.values())


# --- abstention in plain words -------------------------------------------------------------------

_MISSING = re.compile(r"^(\d+) of (\d+) usually recorded inputs are missing \((.*)\)$")
_IMPOSSIBLE = re.compile(r"^(\S+) = (.+) is physiologically impossible \(ignored\)$")
_OUTSIDE = re.compile(r"^(\S+) = (\S+) is far outside the training range (\S+) to (\S+)$")
_CONFIDENCE = re.compile(r"^top probability ([\d.]+) is below the confidence floor ([\d.]+)$")
_CODE = re.compile(r"\bobs_([0-9]+-[0-9])\b")


def input_name(name: str) -> str:
    """An engine input in words, lower case for the middle of a sentence."""
    name = name.strip()
    if name.startswith("obs_"):
        return test_label(name[4:]).lower()
    return {
        "age": "age",
        "sex": "sex",
        "visit_type": "visit type",
        "chief_complaint": "chief complaint",
        "history": "history of present illness",
    }.get(name, name.replace("_", " "))


def _unit(name: str) -> str:
    definition = BY_CODE.get(name[4:]) if name.startswith("obs_") else None
    return f" {unit_display(definition.unit)}" if definition else ""


def abstain_text(reason: str) -> str:
    """One engine abstention reason as a plain sentence, with no feature codes."""
    reason = reason.strip()
    if m := _MISSING.match(reason):
        missing, usual = int(m[1]), int(m[2])
        names = [input_name(n) for n in m[3].split(",") if n.strip() and n.strip() != "..."]
        more = " …" if m[3].rstrip().endswith("...") else ""
        return (
            f"Only {usual - missing} of the {usual} findings usually recorded were entered "
            f"(not recorded: {', '.join(names)}{more})."
        )
    if m := _IMPOSSIBLE.match(reason):
        return (
            f"The {input_name(m[1])} value {m[2]} is not physiologically possible and was ignored."
        )
    if m := _OUTSIDE.match(reason):
        unit = _unit(m[1])
        return (
            f"The {input_name(m[1])} value {m[2]}{unit} is far outside what the model learned "
            f"from ({m[3]}–{m[4]}{unit})."
        )
    if m := _CONFIDENCE.match(reason):
        return (
            f"No diagnosis stands out: the most likely has only {float(m[1]):.0%} "
            f"(below the {float(m[2]):.0%} the model needs to be confident)."
        )
    # An engine reason with no rewording yet: at least never show a feature code.
    return _CODE.sub(lambda c: test_label(c[1]).lower(), reason).replace("_", " ")


def abstain_texts(task_name: str, reasons: list[str]) -> list[str]:
    return [f"{task_name}: {abstain_text(r)}" for r in reasons if r]
