"""Reads for the dashboard: the viewer's patients, visits, advice to review and critical alerts.

Every query is scoped through ``visible_patients`` (care team; admins see everyone) and bounded,
so the dashboard costs the same few queries at any hospital size. The advice lists are
predictions' selectors (which read the typed payload); they are re-exported here for the page.
The page sits in predictions, the top layer, because it reads all three apps
(docs/architecture.md).
"""

from __future__ import annotations

from django.db.models import Max, Q, QuerySet
from django.utils import timezone

from patients.access import visible_patients
from patients.models import Patient
from visits.models import Visit

from .selectors import AlertItem, ReviewItem, advice_awaiting_review
from .selectors import critical_alerts_recent as recent_critical_alerts

LIST_LIMIT = 12
__all__ = [
    "AlertItem",
    "ReviewItem",
    "advice_awaiting_review",
    "my_patient_count",
    "my_patients",
    "recent_critical_alerts",
    "todays_and_open_visits",
]


def my_patients(*, viewer: object, limit: int = LIST_LIMIT) -> QuerySet[Patient]:
    """The viewer's care-team patients, most recently seen first."""
    return (
        visible_patients(viewer)
        .annotate(last_visit=Max("visits__start"))
        .filter(last_visit__isnull=False)
        .prefetch_related("allergies")
        .order_by("-last_visit", "mrn")[:limit]
    )


def my_patient_count(*, viewer: object) -> int:
    return visible_patients(viewer).count()


def todays_and_open_visits(*, viewer: object, limit: int = LIST_LIMIT) -> QuerySet[Visit]:
    """Open visits and visits started today, for the viewer's patients; the viewer's own first."""
    start_of_day = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    return (
        Visit.objects.filter(patient__in=visible_patients(viewer).values("pk"))
        .filter(Q(status=Visit.Status.OPEN) | Q(start__gte=start_of_day))
        .select_related("patient", "attending")
        .order_by("-start", "-id")[:limit]
    )
