"""The allergy and drug check of a visit's plan and medication list: the engine's pure check on
the visit's rows.

Reads the plan and the medication list (one medicine per line) the doctor wrote and the patient's
allergies (the allergy list, and drugs the
visit's own allergy history names unless it denies them) and returns the engine's conflicts
(predictions/ml/drug_check.py, lexicon predictions/ml/drug_lexicon.json). Used on the visit page
as soon as the visit is saved (the medication-safety panel, no worker involved) and by the advice
worker, whose payload carries the same conflicts as alerts.
"""

from __future__ import annotations

from predictions.ml.drug_check import (
    SEVERITY_ORDER,
    AllergyRecord,
    DrugConflict,
    allergies_from_text,
    check_plan,
    drug_keys,
)
from visits.models import Visit

RULE = "allergy_drug_conflict"


def visit_allergies(visit: Visit) -> list[AllergyRecord]:
    """The patient's recorded allergies, then those the visit's allergy history names."""
    listed = [
        AllergyRecord(substance=a.substance, severity=a.severity)
        for a in visit.patient.allergies.all()
    ]
    return listed + allergies_from_text(visit.allergy_history or "")


def visit_drug_conflicts(visit: Visit) -> list[DrugConflict]:
    """The plan's and the medication list's conflicts, worst first (the plan's first on a tie)."""
    allergies = visit_allergies(visit)
    conflicts = check_plan(text=visit.plan or "", allergies=allergies) + check_plan(
        text=visit.medications or "", allergies=allergies, source="medications"
    )
    return sorted(
        conflicts, key=lambda c: SEVERITY_ORDER[c.severity]
    )  # stable: keeps each list's order


def plan_drugs(visit: Visit) -> list[str]:
    """The drug and class keys the plan and the medication list prescribe: what the advice's
    check depends on."""
    return sorted(set(drug_keys(visit.plan or "")) | set(drug_keys(visit.medications or "")))


def conflict_alerts(conflicts: list[DrugConflict]) -> list[dict[str, str]]:
    """The conflicts as advice alerts (predictions/payload.py ``Alert``)."""
    return [{"rule": RULE, "severity": c.severity, "message": c.message} for c in conflicts]
