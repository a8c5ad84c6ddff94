"""Who may see which patient: the one rule every selector applies, pages and API alike.

Access needs BOTH a clinical role (medai_site.roles.has_clinical_role: the base knows roles,
not patients) and a reason to see the patient. A doctor or integration
client sees a patient when they belong to one of the patient's care teams, or (doctors) hold an
unexpired break-the-glass grant for them (patients/break_glass.py); hospital admins see every
patient (and their reads are audited like anyone's). An account without a clinical role — e.g. a
doctor removed from the doctor group but still listed in a care team — sees nobody, through
pages, session API and tokens alike (the API also refuses it outright: ``HasClinicalRole``).
Objects outside the viewer's scope are reported as "not found" so existence does not leak.
"""

from __future__ import annotations

from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from medai_site.roles import has_clinical_role, is_admin, is_doctor

from .models import BreakGlassGrant, CareTeam, Patient


def visible_patients(viewer: object) -> QuerySet[Patient]:
    if not has_clinical_role(viewer):
        return Patient.objects.none()
    if is_admin(viewer):
        return Patient.objects.all()
    if not is_doctor(viewer):  # an integration client: its care teams only, no emergency access
        return Patient.objects.filter(in_care_team(viewer))
    emergency_access = BreakGlassGrant.objects.filter(
        grantee_id=viewer.pk,
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
            user_id=viewer.pk,
            careteam_id__in=Patient.care_teams.through.objects.filter(
                patient_id=OuterRef(OuterRef(patient_field))
            ).values("careteam_id"),
        )
    )


def can_see_patient(viewer: object, patient_id: int) -> bool:
    return visible_patients(viewer).filter(pk=patient_id).exists()
