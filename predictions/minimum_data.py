"""The least a visit must record before advice is computed for it.

A visit with neither a chief complaint nor any vital sign gives the models nothing to go on: any
ranking would be the training population's base rates dressed up as advice (issue 17: an empty
visit got "type 2 diabetes 23 %"). Such a visit gets no advice; the panel says what is missing.
"""

from __future__ import annotations

from visits.models import ObservationDefinition, Visit

CHIEF_COMPLAINT = "chief complaint"
VITAL_SIGNS = "a vital sign"


def missing_for_advice(visit: Visit) -> list[str]:
    """What the visit lacks for advice (in words, msgids of the translation catalogue); empty
    when it has a chief complaint or at least one vital sign. Uses prefetched observations."""
    if (visit.chief_complaint or "").strip():
        return []
    if any(
        o.definition.category == ObservationDefinition.Category.VITAL
        for o in visit.observations.all()
    ):
        return []
    return [CHIEF_COMPLAINT, VITAL_SIGNS]


def missing_reason(missing: list[str]) -> str:
    return "No advice: record " + " or ".join(missing) + " first."
