"""Clinician feedback on advice: the only writer of Feedback.

Accepting is agreement, not confirmation: accepting a suggested diagnosis adds it to the visit
as a *provisional* diagnosis through visits' own services, marked with the model version that
suggested it (``suggested_by``) and the doctor who accepted it (``recorded_by``). It becomes
confirmed only by the doctor's explicit confirmation (``visits.services.diagnosis_confirm``, or
closing the visit with it as a final diagnosis), so one click never turns a model's output into
a training label. Overriding needs a reason. Live agreement is a read
(predictions/selectors.py: ``live_agreement``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import transaction

from medai_site.audit import audit_record
from medai_site.errors import Conflict, Forbidden, InvalidInput
from medai_site.models import AuditEvent
from medai_site.roles import account_of
from predictions.models import Advice, CdsCard, Feedback
from predictions.payload import AdvicePayload, advice_payload
from predictions.visit_records import OTHER_CLASS
from visits.models import Diagnosis
from visits.services import diagnosis_add

if TYPE_CHECKING:
    from django.contrib.auth.models import User


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
    """Accept (adds a provisional diagnosis) or override (needs a reason) one suggestion."""
    ranked = advice_payload(advice).suggestions()
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
        diagnosis = _agree(advice, suggestion, actor)
    feedback = Feedback.objects.create(
        advice=advice,
        suggestion=suggestion,
        decision=decision,
        reason=reason or "",
        comment=comment or "",
        rank=ranked[suggestion],
        diagnosis=diagnosis,
        actor=_account(actor),
    )
    # Deciding on a suggestion is a reading of the advice (it quotes the visit): recorded here,
    # on every path (page, API), with the feedback it created.
    audit_record(
        actor=actor,
        action=AuditEvent.Action.CREATE,
        obj=feedback,
        patient_id=advice.visit.patient_id,
    )
    return feedback


@transaction.atomic
def cds_card_feedback_record(
    *, card: CdsCard, decision: str, actor: object, reason: str = "", comment: str = ""
) -> Feedback:
    """An EHR's feedback on a CDS Hooks card: accepted or overridden, once per card.

    Recorded in the same table as the advice panel's (monitoring reads both). No diagnosis is
    written: the card concerned no stored visit, and the EHR applies an accepted suggestion
    itself.
    """
    if decision not in Feedback.Decision.values:
        raise InvalidInput(
            "Outcome must be accepted or overridden.", fields={"outcome": ["Unknown outcome."]}
        )
    if reason and reason not in Feedback.Reason.values:
        reason = Feedback.Reason.OTHER
    if decision == Feedback.Decision.OVERRIDE and not reason:
        reason = Feedback.Reason.OTHER if comment.strip() else ""
    if Feedback.objects.filter(cds_card=card).exists():
        raise Conflict("Feedback on this card is already recorded.")
    return Feedback.objects.create(
        cds_card=card,
        suggestion=card.suggestion,
        decision=decision,
        reason=reason,
        comment=comment or "",
        rank=card.rank,
        actor=_account(actor),
    )


def _agree(advice: Advice, code: str, actor: object) -> Diagnosis:
    """The accepted code on the visit: an existing diagnosis is left as it stands (agreement
    confirms nothing); otherwise a new provisional diagnosis marked as suggested by the model."""
    visit = advice.visit
    existing = visit.diagnoses.filter(code=code).first()
    if existing is not None:
        return existing
    has_primary = (
        visit.diagnoses.filter(rank=Diagnosis.Rank.PRIMARY)
        .exclude(status=Diagnosis.Status.REFUTED)
        .exists()
    )
    return diagnosis_add(
        visit=visit,
        code=code,
        rank=Diagnosis.Rank.SECONDARY if has_primary else Diagnosis.Rank.PRIMARY,
        status=Diagnosis.Status.PROVISIONAL,
        source=Diagnosis.Source.ADVICE,
        suggested_by=suggesting_model(advice_payload(advice)),
        actor=actor,
    )


def suggesting_model(payload: AdvicePayload) -> str:
    """'Differential diagnosis v3': the model version whose ranking held the suggestion."""
    task = payload.explanation.task if payload.explanation else ""
    model = next((m for m in payload.models if m.task == task), None)
    if model is None:
        model = payload.models[0] if payload.models else None
    return f"{model.task_name or model.task} v{model.version}" if model else "advice"


def _account(actor: object) -> User:
    """Feedback is always someone's: the pages and the API give a signed-in doctor here."""
    account = account_of(actor)
    if account is None:
        raise Forbidden("Feedback needs a signed-in account.")
    return account
