"""Break-the-glass: emergency access outside the care team, time-limited, stated, reviewed.

The doctor states the kind of emergency from a short list and describes it in their own words
(at least a few distinct words: "aaaaaaaaaa" or "urgent" says nothing a reviewer can check). A
second grant for the same patient while the doctor's previous one is still active is an
*extension*: it is recorded as such (``BreakGlassGrant.extends``) and flagged on the review list,
so repeatedly prolonging access cannot pass as a string of unrelated emergencies.
"""

from __future__ import annotations

import re
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from medai_site.audit import audit_record
from medai_site.errors import Conflict, Forbidden, InvalidInput, NotFound
from medai_site.models import AuditEvent
from medai_site.roles import account_of, is_admin, is_doctor

from .models import BreakGlassGrant, Patient, normalise_mrn

# A description a reviewer can check: at least this many distinct words (a CJK ideograph counts
# as one) and this many characters. "aaaaaaaaaa", "urgent urgent" or "emergency" fail.
MIN_REASON_WORDS = 4
MIN_REASON_LENGTH = 12
_IDEOGRAPH = "\u3400-\u4dbf\u4e00-\u9fff"
_WORDS = re.compile(rf"[^\W\d_{_IDEOGRAPH}]{{2,}}|[{_IDEOGRAPH}]")
REASON_RULE = (
    f"Describe the emergency in your own words (at least {MIN_REASON_WORDS} different words); "
    "it is reviewed."
)


def reason_is_specific(reason: str) -> bool:
    words = {w.casefold() for w in _WORDS.findall(reason)}
    return len(reason) >= MIN_REASON_LENGTH and len(words) >= MIN_REASON_WORDS


def break_glass_open(*, viewer: object, mrn: str, category: str, reason: str) -> BreakGlassGrant:
    """Grant the doctor time-limited access to the patient with this MRN, for a stated reason
    (a ``BreakGlassGrant.Category`` and the doctor's description). While the doctor's previous
    grant for the patient is active, the new one is an extension of it (flagged for review)."""
    doctor = account_of(viewer)
    if doctor is None or not is_doctor(doctor):
        raise Forbidden("Only doctors can use emergency access.")
    reason = " ".join((reason or "").split())
    problems: dict[str, list[str]] = {}
    if category not in BreakGlassGrant.Category.values:
        problems["category"] = ["Choose the kind of emergency."]
    if not reason_is_specific(reason):
        problems["reason"] = [REASON_RULE]
    if problems:
        raise InvalidInput(next(iter(problems.values()))[0], fields=problems)
    normalised_mrn = normalise_mrn(mrn)
    patient = Patient.objects.filter(mrn=normalised_mrn).first()
    if patient is None:
        # Recorded, so that probing MRNs through emergency access leaves a trace.
        audit_record(
            actor=viewer,
            action=AuditEvent.Action.DENIED,
            object_type="patients.breakglassgrant",
            object_id=normalised_mrn[:64],
        )
        raise NotFound("No patient has this MRN.")
    with transaction.atomic():
        now = timezone.now()
        # Serialise this doctor's grants for the patient, so two at once are still one extension.
        Patient.objects.select_for_update().filter(pk=patient.pk).values_list("pk").first()
        previous = (
            BreakGlassGrant.objects.filter(
                grantee_id=doctor.pk,
                patient=patient,
                expires_at__gt=now,
            )
            .order_by("-expires_at")
            .first()
        )
        grant = BreakGlassGrant.objects.create(
            patient=patient,
            grantee=doctor,
            category=category,
            reason=reason,
            extends=previous,
            expires_at=now + timedelta(minutes=settings.MEDAI_BREAK_GLASS_MINUTES),
        )
        # Recorded as the creation of a grant object: the audit row names patients.breakglassgrant.
        audit_record(
            actor=viewer, action=AuditEvent.Action.CREATE, obj=grant, patient_id=patient.pk
        )
    return grant


def active_grant(*, viewer: object, patient_id: int) -> BreakGlassGrant | None:
    if not getattr(viewer, "is_authenticated", False):
        return None
    return (
        BreakGlassGrant.objects.filter(
            grantee_id=getattr(viewer, "pk", None),
            patient_id=patient_id,
            expires_at__gt=timezone.now(),
        )
        .order_by("-expires_at")
        .first()
    )


def emergency_grant(
    *, viewer: object, patient_id: int, in_care_team: bool
) -> BreakGlassGrant | None:
    """The grant through which the viewer is reading this chart, if that is how it is open.

    None for the care team and for admins (they see every chart without a grant); otherwise the
    active grant, which every page of the chart announces in the patient banner.
    """
    if in_care_team or is_admin(viewer):
        return None
    return active_grant(viewer=viewer, patient_id=patient_id)


def grants_awaiting_review() -> QuerySet[BreakGlassGrant]:
    """Unreviewed grants, extensions first (prolonged access is what a reviewer checks first)."""
    return (
        BreakGlassGrant.objects.filter(reviewed_at__isnull=True)
        .select_related("patient", "grantee")
        .order_by(F("extends").asc(nulls_last=True), "-created_at")
    )


@transaction.atomic
def break_glass_review(
    *, grant: BreakGlassGrant, reviewer: object, note: str = ""
) -> BreakGlassGrant:
    grant = BreakGlassGrant.objects.select_for_update().get(pk=grant.pk)
    if grant.reviewed_at is not None:
        raise Conflict("This emergency access has already been reviewed.")
    if getattr(reviewer, "pk", None) == grant.grantee_id:
        raise InvalidInput(
            "Emergency access must be reviewed by someone other than the doctor who used it."
        )
    grant.reviewed_by = account_of(reviewer)
    grant.reviewed_at = timezone.now()
    grant.review_note = (note or "").strip()
    grant.save(update_fields=["reviewed_by", "reviewed_at", "review_note"])
    return grant
