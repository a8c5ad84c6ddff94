"""Who may see which patient: the one rule every selector applies.

A doctor (or integration client) sees a patient when they belong to one of the patient's care
teams, or holds an unexpired break-the-glass grant for them (patients/break_glass.py); hospital admins see every patient (and their reads are audited like anyone's).
Objects outside the viewer's scope are reported as "not found" so existence does not leak.
"""

from __future__ import annotations

from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from patients.models import BreakGlassGrant, CareTeam, Patient

from .roles import is_admin


def visible_patients(viewer: object) -> QuerySet[Patient]:
    if not getattr(viewer, "is_authenticated", False):
        return Patient.objects.none()
    if is_admin(viewer):
        return Patient.objects.all()
    emergency_access = BreakGlassGrant.objects.filter(
        grantee_id=viewer.pk,  # type: ignore[attr-defined]
        patient_id=OuterRef("pk"),
        expires_at__gt=timezone.now(),
    )
    return Patient.objects.filter(in_care_team(viewer) | Exists(emergency_access))


def in_care_team(viewer: object, patient_field: str = "pk") -> Exists:
    """True where the viewer belongs to one of the patient's care teams.

    ``patient_field`` names the outer query's patient id (``"pk"`` on patients, ``"patient_id"``
    on visits). Selectors annotate it so a chart knows, without another query, whether it is
    open through the care team or through an emergency (break-the-glass) grant.
    """
    return Exists(
        CareTeam.members.through.objects.filter(
            user_id=viewer.pk,  # type: ignore[attr-defined]
            careteam_id__in=Patient.care_teams.through.objects.filter(
                patient_id=OuterRef(OuterRef(patient_field))
            ).values("careteam_id"),
        )
    )


def can_see_patient(viewer: object, patient_id: int) -> bool:
    return visible_patients(viewer).filter(pk=patient_id).exists()
