"""Plain words for the engine's names: features, classes and ICD-10 categories.

Advice explanations, model reports and monitoring alerts all show engine names to clinicians;
this is the one place that turns them into words (catalogue displays, ICD-10 titles).
"""

from __future__ import annotations

from visits.catalogue import BY_CODE
from visits.icd10 import icd10_lookup

from .visit_records import OTHER_CLASS

OTHER_DISPLAY = "Other (less frequent diagnoses)"


def feature_label(name: str) -> str:
    """Plain words for an engine feature name (advice explanations)."""
    if name.startswith("obs_"):
        code, _, rest = name[4:].partition(" ")
        definition = BY_CODE.get(code)
        base = definition.display if definition else code
        return f"{base} {rest}".strip()
    if name.startswith(("chief_complaint: ", "history: ")):
        column, _, term = name.partition(": ")
        where = "complaint" if column == "chief_complaint" else "history"
        return f"{where} mentions “{term}”"
    return name.replace("_", " ").replace("=", ": ")


def feature_display(name: str) -> str:
    """A model input named for monitoring alerts: 'Body temperature (8310-5)'."""
    if name.startswith("obs_"):
        definition = BY_CODE.get(name[4:])
        return f"{definition.display} ({name[4:]})" if definition else name
    return name.replace("_", " ")


def category_display(category: str) -> str:
    """'J18' -> 'Pneumonia, organism unspecified' (the advice's ranked diagnoses)."""
    if category == OTHER_CLASS:
        return OTHER_DISPLAY
    try:
        return icd10_lookup(category)[1]
    except Exception:
        return category


def class_display(label: str) -> str:
    """'j18' (the engine's normalised class) -> 'J18 Pneumonia, organism unspecified'."""
    if label == OTHER_CLASS:
        return OTHER_DISPLAY
    if label in ("0", "1"):
        return label
    try:
        code, display = icd10_lookup(label.upper())
    except Exception:
        return label
    return f"{code} {display}"
