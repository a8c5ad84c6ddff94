"""Clinician feedback on advice, and the live agreement it feeds."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from django.db import transaction

from medai_site.errors import Conflict, InvalidInput
from visits.models import Diagnosis
from visits.services import diagnosis_add

from .models import Advice, Feedback
from .visit_records import OTHER_CLASS


@transaction.atomic
def feedback_record(
    *,
    advice: Advice,
    suggestion: str,
    decision: str,
    actor: object,
    reason: str = "",
    comment: str = "",
) -> Feedback:
    """Accept (creates a confirmed diagnosis) or override (needs a reason) one suggestion."""
    payload = json.loads(advice.payload)
    ranked = {d["code"]: d["rank"] for d in payload.get("diagnoses", [])}
    ranked.update({r["task"]: None for r in payload.get("risks", [])})
    if suggestion not in ranked:
        raise InvalidInput(
            "This suggestion is not part of the advice.",
            fields={"suggestion": ["Unknown suggestion."]},
        )
    if decision not in Feedback.Decision.values:
        raise InvalidInput(
            "Decision must be accept or override.", fields={"decision": ["accept or override"]}
        )
    if decision == Feedback.Decision.OVERRIDE and not (reason or comment.strip()):
        raise InvalidInput(
            "Say why you override the suggestion.", fields={"reason": ["A reason is required."]}
        )
    if reason and reason not in Feedback.Reason.values:
        raise InvalidInput("Unknown override reason.", fields={"reason": ["Unknown reason."]})
    if Feedback.objects.filter(advice=advice, suggestion=suggestion).exists():
        raise Conflict("Feedback on this suggestion is already recorded.")
    diagnosis = None
    # A risk (rank None) or the "other" group is no ICD-10 code: accepting it records agreement
    # for monitoring but makes no diagnosis.
    if (
        decision == Feedback.Decision.ACCEPT
        and ranked[suggestion] is not None
        and suggestion != OTHER_CLASS
    ):
        visit = advice.visit
        has_primary = visit.diagnoses.filter(rank=Diagnosis.Rank.PRIMARY).exclude(
            status=Diagnosis.Status.REFUTED
        )
        existing = visit.diagnoses.filter(code=suggestion).first()
        if existing is not None:
            diagnosis = existing
            if existing.status != Diagnosis.Status.CONFIRMED:
                from visits.services import diagnosis_set_status

                diagnosis = diagnosis_set_status(
                    diagnosis=existing, status=Diagnosis.Status.CONFIRMED, actor=actor
                )
        else:
            diagnosis = diagnosis_add(
                visit=visit,
                code=suggestion,
                rank=Diagnosis.Rank.SECONDARY if has_primary.exists() else Diagnosis.Rank.PRIMARY,
                status=Diagnosis.Status.CONFIRMED,
                source=Diagnosis.Source.ADVICE,
                actor=actor,
            )
    return Feedback.objects.create(
        advice=advice,
        suggestion=suggestion,
        decision=decision,
        reason=reason or "",
        comment=comment or "",
        rank=ranked[suggestion],
        diagnosis=diagnosis,
        actor=actor,
    )


def live_agreement() -> dict[int, dict[str, Any]]:
    """Per differential model version: how often its top-1/top-3 held the confirmed diagnosis."""
    stats: dict[int, dict[str, Any]] = defaultdict(lambda: {"n": 0, "top1": 0, "top3": 0})
    confirmed = {
        visit_id: code[:3]
        for visit_id, code in Diagnosis.objects.filter(
            rank=Diagnosis.Rank.PRIMARY, status=Diagnosis.Status.CONFIRMED
        ).values_list("visit_id", "code")
    }
    advice = Advice.objects.filter(superseded=False, visit_id__in=list(confirmed)).prefetch_related(
        "model_versions__task"
    )
    for item in advice:
        versions = [v for v in item.model_versions.all() if v.task.kind == "differential"]
        if not versions:
            continue
        ranked = [d["code"] for d in json.loads(item.payload).get("diagnoses", [])]
        truth = confirmed[item.visit_id]
        learned = {c if c == OTHER_CLASS else c.upper() for c in versions[0].label_map.values()}
        if truth not in learned and OTHER_CLASS in learned:
            truth = OTHER_CLASS  # the model learned rare categories as one "other" class
        entry = stats[versions[0].pk]
        entry["n"] += 1
        entry["top1"] += int(ranked[:1] == [truth])
        entry["top3"] += int(truth in ranked[:3])
    return {
        k: {**v, "top1_rate": v["top1"] / v["n"], "top3_rate": v["top3"] / v["n"]}
        for k, v in stats.items()
        if v["n"]
    }
