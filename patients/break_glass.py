"""Break-the-glass: emergency access outside the care team, time-limited, stated, reviewed."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from medai_site.audit import audit_record
from medai_site.errors import Conflict, Forbidden, InvalidInput, NotFound
from medai_site.models import AuditEvent
from medai_site.roles import is_admin, is_doctor

from .models import BreakGlassGrant, Patient, normalise_mrn

MIN_REASON_LENGTH = 10  # "emergency" alone is not a reason a reviewer can check


def break_glass_open(*, viewer: object, mrn: str, reason: str) -> BreakGlassGrant:
    """Grant the doctor time-limited access to the patient with this MRN, for a stated reason."""
    if not is_doctor(viewer):
        raise Forbidden("Only doctors can use emergency access.")
    reason = (reason or "").strip()
    if len(reason) < MIN_REASON_LENGTH:
        raise InvalidInput(
            "State the emergency (at least 10 characters); it is reviewed.",
            fields={"reason": ["Required."]},
        )
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
        grant = BreakGlassGrant.objects.create(
            patient=patient,
            grantee=viewer,
            reason=reason,
            expires_at=timezone.now() + timedelta(minutes=settings.MEDAI_BREAK_GLASS_MINUTES),
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
            grantee_id=viewer.pk, patient_id=patient_id, expires_at__gt=timezone.now()
        )  # type: ignore[attr-defined]
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
    return BreakGlassGrant.objects.filter(reviewed_at__isnull=True).select_related(
        "patient", "grantee"
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
    grant.reviewed_by = reviewer
    grant.reviewed_at = timezone.now()
    grant.review_note = (note or "").strip()
    grant.save(update_fields=["reviewed_by", "reviewed_at", "review_note"])
    return grant
