"""Every read of advice and models, scoped like the visits they belong to."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.db.models import Prefetch, QuerySet

from medai_site.errors import NotFound
from visits.selectors import visible_visits, visit_get

from .models import (
    ActivationEvent,
    Advice,
    AdviceRequest,
    Feedback,
    ModelVersion,
    PredictionTask,
    TrainingJob,
)


@dataclass(frozen=True)
class AdviceState:
    """What the advice panel shows: the current advice (if any) and the newest request's state."""

    status: str  # "none" | "pending" | "done" | "failed"
    advice: Advice | None
    payload: dict[str, Any] | None
    request: AdviceRequest | None
    feedback: dict[str, Feedback]

    @property
    def error(self) -> str:
        return self.request.error if self.request and self.status == "failed" else ""


def advice_state(*, viewer: object, visit_id: int) -> AdviceState:
    visit = visit_get(viewer=viewer, visit_id=visit_id, audit=False)
    request = visit.advice_requests.order_by("-created_at", "-id").first()
    advice = visit.advice.filter(superseded=False).prefetch_related("feedback").first()
    if request is None:
        status = "done" if advice else "none"
    elif request.status in (AdviceRequest.Status.PENDING, AdviceRequest.Status.DISPATCHED):
        status = "pending"
    elif request.status == AdviceRequest.Status.FAILED:
        status = "failed"
    else:
        status = "done"
    if status == "done" and request is not None and request.advice_id:
        advice = Advice.objects.prefetch_related("feedback").get(pk=request.advice_id)
    payload = json.loads(advice.payload) if advice else None
    feedback = {f.suggestion: f for f in advice.feedback.all()} if advice else {}
    return AdviceState(
        status=status, advice=advice, payload=payload, request=request, feedback=feedback
    )


def advice_get(*, viewer: object, advice_id: int) -> Advice:
    try:
        return Advice.objects.select_related("visit").get(
            pk=advice_id, visit__in=visible_visits(viewer).values("pk")
        )
    except (Advice.DoesNotExist, ValueError, TypeError):
        raise NotFound("Advice not found.") from None


def advice_request_get(*, viewer: object, request_id: int) -> AdviceRequest:
    try:
        return AdviceRequest.objects.get(
            pk=request_id, visit__in=visible_visits(viewer).values("pk")
        )
    except (AdviceRequest.DoesNotExist, ValueError, TypeError):
        raise NotFound("Advice request not found.") from None


def task_list() -> QuerySet[PredictionTask]:
    return PredictionTask.objects.select_related("active_version").prefetch_related(
        Prefetch("versions", queryset=ModelVersion.objects.order_by("-number"))
    )


def task_get(*, slug: str) -> PredictionTask:
    try:
        return task_list().get(slug=slug)
    except PredictionTask.DoesNotExist:
        raise NotFound("Prediction task not found.") from None


def version_get(*, version_id: int) -> ModelVersion:
    try:
        return ModelVersion.objects.select_related("task", "training_job").get(pk=version_id)
    except (ModelVersion.DoesNotExist, ValueError, TypeError):
        raise NotFound("Model version not found.") from None


def training_job_get(*, job_id: int) -> TrainingJob:
    try:
        return TrainingJob.objects.select_related("task").get(pk=job_id)
    except (TrainingJob.DoesNotExist, ValueError, TypeError):
        raise NotFound("Training job not found.") from None


def activation_history(*, task: PredictionTask) -> QuerySet[ActivationEvent]:
    return task.activations.select_related("from_version", "to_version", "actor")
