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

import datetime as dt

from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from medai_site.roles import has_clinical_role, is_admin, is_doctor

from .models import BreakGlassGrant, CareTeam, Patient

# How a viewer's access is shaped: which rule applies decides the query's structure; who the
# viewer is (their id) and when (grants expire) are only its parameters.
NO_ACCESS, ADMIN, CLIENT, DOCTOR = "none", "admin", "client", "doctor"


def access_kind(viewer: object) -> str:
    """Which access rule applies to ``viewer``: none, admin (everyone), client (care teams
    only), doctor (care teams and emergency grants)."""
    if not has_clinical_role(viewer):
        return NO_ACCESS
    if is_admin(viewer):
        return ADMIN
    if not is_doctor(viewer):  # an integration client: its care teams only, no emergency access
        return CLIENT
    return DOCTOR


def visible_patients(viewer: object) -> QuerySet[Patient]:
    return patients_visible_to(
        access_kind(viewer), viewer_id=getattr(viewer, "pk", None), now=timezone.now()
    )


def patients_visible_to(kind: str, *, viewer_id: int | None, now: dt.datetime) -> QuerySet[Patient]:
    """The patients a viewer of access ``kind`` and id ``viewer_id`` may see at ``now``: the one
    rule, in a form whose structure depends on ``kind`` alone (the compiled patient read,
    patients/selectors.py, compiles it once per kind)."""
    if kind == NO_ACCESS:
        return Patient.objects.none()
    if kind == ADMIN:
        return Patient.objects.all()
    if kind == CLIENT:
        return Patient.objects.filter(care_team_member(viewer_id))
    emergency_access = BreakGlassGrant.objects.filter(
        grantee_id=viewer_id,
        patient_id=OuterRef("pk"),
        expires_at__gt=now,
    )
    return Patient.objects.filter(care_team_member(viewer_id) | Exists(emergency_access))


def in_care_team(viewer: object, patient_field: str = "pk") -> Exists:
    """True where the viewer belongs to one of the patient's care teams.

    ``patient_field`` names the outer query's patient id (``"pk"`` on patients, ``"patient_id"``
    on visits). Selectors annotate it so a chart knows, without another query, whether it is
    open through the care team or through an emergency (break-the-glass) grant.
    """
    return care_team_member(getattr(viewer, "pk", None), patient_field)


def care_team_member(viewer_id: int | None, patient_field: str = "pk") -> Exists:
    """:func:`in_care_team` by the viewer's id."""
    return Exists(
        CareTeam.members.through.objects.filter(
            user_id=viewer_id,
            careteam_id__in=Patient.care_teams.through.objects.filter(
                patient_id=OuterRef(OuterRef(patient_field))
            ).values("careteam_id"),
        )
    )


def can_see_patient(viewer: object, patient_id: int) -> bool:
    return visible_patients(viewer).filter(pk=patient_id).exists()
