"""Reads for the dashboard: the viewer's patients, visits, advice to review and critical alerts.

Every query is scoped through ``visible_patients`` (care team; admins see everyone) and bounded,
so the dashboard costs the same few queries at any hospital size.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Max, Q, QuerySet
from django.utils import timezone

from patients.models import Patient
from predictions.models import Advice
from visits.models import Visit

from .access import visible_patients

LIST_LIMIT = 12
ALERT_WINDOW = dt.timedelta(days=7)


@dataclass(frozen=True)
class ReviewItem:
    advice: Advice
    visit: Visit
    top: dict[str, Any] | None
    abstained: bool


@dataclass(frozen=True)
class AlertItem:
    advice: Advice
    visit: Visit
    messages: list[str]


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


def advice_awaiting_review(*, viewer: object, limit: int = LIST_LIMIT) -> list[ReviewItem]:
    """Current advice on the viewer's open visits on which no suggestion has feedback yet."""
    advice = (
        Advice.objects.filter(
            superseded=False,
            visit__status=Visit.Status.OPEN,
            visit__attending_id=getattr(viewer, "pk", None),
            visit__patient__in=visible_patients(viewer).values("pk"),
        )
        .annotate(feedback_count=Count("feedback"))
        .filter(feedback_count=0)
        .select_related("visit__patient")
        .order_by("-created_at")[:limit]
    )
    items = []
    for item in advice:
        payload = json.loads(item.payload)
        diagnoses = payload.get("diagnoses") or []
        items.append(
            ReviewItem(
                advice=item,
                visit=item.visit,
                top=diagnoses[0] if diagnoses else None,
                abstained=item.abstained,
            )
        )
    return items


def recent_critical_alerts(*, viewer: object, limit: int = LIST_LIMIT) -> list[AlertItem]:
    """Critical rule alerts in current advice of the last week, on the viewer's patients."""
    advice = (
        Advice.objects.filter(
            superseded=False,
            critical_alert_count__gt=0,
            created_at__gte=timezone.now() - ALERT_WINDOW,
            visit__patient__in=visible_patients(viewer).values("pk"),
        )
        .select_related("visit__patient")
        .order_by("-created_at")[:limit]
    )
    items = []
    for item in advice:
        alerts = json.loads(item.payload).get("alerts") or []
        messages = [a["message"] for a in alerts if a.get("severity") == "critical"]
        items.append(AlertItem(advice=item, visit=item.visit, messages=messages))
    return items
