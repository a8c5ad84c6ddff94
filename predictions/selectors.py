"""Every read of advice, models, training jobs and monitoring, viewer first.

Advice is scoped like the visits it belongs to (care teams, break-the-glass, admins), and showing
one is recorded in the audit trail (it quotes the visit's findings). Models,
training jobs and monitoring figures hold no PHI; they are shown to every signed-in user (doctors
read a suggestion's evidence, integration clients list models) and to the application itself
(:data:`SYSTEM`: workers, and /metrics after its own token check), never to anonymous callers.
Pages and endpoints narrow that further with their own permission rules.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import defaultdict
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from django.conf import settings
from django.db.models import Count, Prefetch, QuerySet
from django.utils import timezone

from medai_site.audit import audit_record
from medai_site.compiled_query import CompiledQuery
from medai_site.errors import Forbidden, NotFound
from medai_site.models import AuditEvent
from visits.models import Diagnosis, Visit
from visits.selectors import visible_visits, visit_get

from .minimum_data import missing_for_advice
from .models import (
    ActivationEvent,
    Advice,
    AdviceRequest,
    Feedback,
    ModelAlert,
    ModelVersion,
    MonitoringSnapshot,
    PredictionTask,
    ScoringRun,
    TrainingJob,
)
from .payload import AdvicePayload, RankedDiagnosis, advice_payload
from .visit_records import OTHER_CLASS

DASHBOARD_LIMIT = 12
ALERT_WINDOW = dt.timedelta(days=7)


class _System:
    """The application itself as a viewer of model information (never of patients)."""

    is_authenticated = True
    pk = None

    def __repr__(self) -> str:
        return "SYSTEM"


SYSTEM = _System()


def _may_see_models(viewer: object) -> bool:
    return viewer is SYSTEM or bool(getattr(viewer, "is_authenticated", False))


# --- advice ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AdviceState:
    """What the advice panel shows: the current advice (if any) and the newest request's state."""

    status: str  # "none" | "pending" | "done" | "failed" | "insufficient"
    advice: Advice | None
    payload: AdvicePayload | None
    request: AdviceRequest | None
    feedback: dict[str, Feedback]
    # Pending for longer than MEDAI_ADVICE_LATE_SECONDS, or no advice worker is alive to compute
    # it: the doctor is told not to wait for it.
    delayed: bool = False
    # "insufficient": what the visit lacks before advice is computed (predictions/minimum_data.py).
    missing: tuple[str, ...] = ()

    @property
    def error(self) -> str:
        return self.request.error if self.request and self.status == "failed" else ""


NOT_DONE = (
    AdviceRequest.Status.PENDING,
    AdviceRequest.Status.DISPATCHED,
    AdviceRequest.Status.COMPUTING,
)


# Session key of the advice ids whose reading this session has recorded (polls collapse); bounded.
ADVICE_AUDITED_SESSION_KEY = "medai_advice_audited"
ADVICE_AUDITED_KEEP = 200


def advice_state(
    *,
    viewer: object,
    visit_id: int,
    session: MutableMapping[str, Any] | None = None,
    visit: Visit | None = None,
) -> AdviceState:
    """The visit's current advice and its newest request's state. Showing an advice is a read of
    the visit's findings it quotes, so it is recorded (a VIEW of the advice) every time; with
    ``session`` (the panel's htmx poll) only the first time in that session.

    ``visit``: the same visit as the caller already fetched it through ``visit_get`` for this
    ``viewer`` (scoped, observations prefetched), so it is not fetched and decrypted again. Any
    other object (another visit, one fetched for someone else or not by ``visit_get``) is not
    trusted: the visit is fetched again through the viewer's scope.
    """
    reusable = (
        visit is not None
        and visit.pk == visit_id
        and getattr(visit, "scoped_for_user_id", None) == getattr(viewer, "pk", object())
    )
    if not reusable:
        visit = visit_get(viewer=viewer, visit_id=visit_id, audit=False)
    request = visit.advice_requests.order_by("-created_at", "-id").first()
    missing = missing_for_advice(visit)
    if missing:
        return AdviceState(
            status="insufficient",
            advice=None,
            payload=None,
            request=request,
            feedback={},
            missing=tuple(missing),
        )
    if request is None:
        status = "none"
    elif request.status in NOT_DONE:
        status = "pending"
    elif request.status == AdviceRequest.Status.FAILED:
        status = "failed"
    else:
        status = "done"
    # One advice read (its payload is decrypted once): the one the finished request stored, else
    # the visit's current one (shown while a newer request is pending or after it failed).
    advices = Advice.objects.prefetch_related("feedback")
    if status == "done" and request is not None and request.advice_id:
        advice = advices.get(pk=request.advice_id)
    else:
        advice = advices.filter(visit_id=visit.pk, superseded=False).first()
        if request is None and advice is not None:
            status = "done"
    payload = advice_payload(advice) if advice else None
    feedback = {f.suggestion: f for f in advice.feedback.all()} if advice else {}
    if advice is not None:
        _advice_read_record(viewer, advice, patient_id=visit.patient_id, session=session)
    return AdviceState(
        status=status,
        advice=advice,
        payload=payload,
        request=request,
        feedback=feedback,
        delayed=status == "pending" and request is not None and _advice_late(request),
    )


def _advice_read_record(
    viewer: object,
    advice: Advice,
    *,
    patient_id: int,
    session: MutableMapping[str, Any] | None,
) -> None:
    if session is not None:
        recorded = list(session.get(ADVICE_AUDITED_SESSION_KEY, []))
        if advice.pk in recorded:
            return
    audit_record(actor=viewer, action=AuditEvent.Action.VIEW, obj=advice, patient_id=patient_id)
    if session is not None:
        session[ADVICE_AUDITED_SESSION_KEY] = [*recorded, advice.pk][-ADVICE_AUDITED_KEEP:]


def advice_seconds_until_delayed(*, viewer: object, visit_id: int) -> float | None:
    """Seconds until the visit's pending advice counts as delayed (the panel then says so);
    None when it is not pending or is delayed already. Scoped like :func:`advice_status`."""
    if not visible_visits(viewer).filter(pk=visit_id).exists():
        raise NotFound("Visit not found.")
    request = AdviceRequest.objects.filter(visit_id=visit_id).order_by("-created_at", "-id").first()
    if request is None or request.status not in NOT_DONE or _advice_late(request):
        return None
    late_after = dt.timedelta(seconds=settings.MEDAI_ADVICE_LATE_SECONDS)
    return max(0.0, (request.created_at + late_after - timezone.now()).total_seconds())


def _advice_late(request: AdviceRequest) -> bool:
    from .pipeline_health import live_advice_workers

    late_after = dt.timedelta(seconds=settings.MEDAI_ADVICE_LATE_SECONDS)
    return timezone.now() - request.created_at > late_after or live_advice_workers() == 0


def advice_status(*, viewer: object, visit_id: int) -> str:
    """Only the status of a visit's advice ("none", "pending", "done", "failed"), as
    :func:`advice_state` decides it, without reading (decrypting) the advice: the event stream
    asks it each time it wakes. A visit outside the viewer's scope is "not found"."""
    if not visible_visits(viewer).filter(pk=visit_id).exists():
        raise NotFound("Visit not found.")
    request = (
        AdviceRequest.objects.filter(visit_id=visit_id)
        .order_by("-created_at", "-id")
        .values_list("status", flat=True)
        .first()
    )
    if request is None:
        return (
            "done"
            if Advice.objects.filter(visit_id=visit_id, superseded=False).exists()
            else "none"
        )
    if request in NOT_DONE:
        return "pending"
    return "failed" if request == AdviceRequest.Status.FAILED else "done"


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


# --- the dashboard's advice lists ------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewItem:
    advice: Advice
    visit: Visit
    top: RankedDiagnosis | None
    abstained: bool


@dataclass(frozen=True)
class AlertItem:
    advice: Advice
    visit: Visit
    messages: list[str]


def advice_awaiting_review(*, viewer: object, limit: int = DASHBOARD_LIMIT) -> list[ReviewItem]:
    """Current advice on the viewer's open visits on which no suggestion has feedback yet."""
    advice = (
        Advice.objects.filter(
            superseded=False,
            visit__status=Visit.Status.OPEN,
            visit__attending_id=getattr(viewer, "pk", None),
            visit__in=visible_visits(viewer).values("pk"),
        )
        .annotate(feedback_count=Count("feedback"))
        .filter(feedback_count=0)
        .select_related("visit__patient")
        .order_by("-created_at")[:limit]
    )
    return [
        ReviewItem(
            advice=item,
            visit=item.visit,
            top=advice_payload(item).top_diagnosis,
            abstained=item.abstained,
        )
        for item in advice
    ]


def critical_alerts_recent(*, viewer: object, limit: int = DASHBOARD_LIMIT) -> list[AlertItem]:
    """Critical rule alerts in current advice of the last week, on the viewer's patients."""
    advice = (
        Advice.objects.filter(
            superseded=False,
            critical_alert_count__gt=0,
            created_at__gte=timezone.now() - ALERT_WINDOW,
            visit__in=visible_visits(viewer).values("pk"),
        )
        .select_related("visit__patient")
        .order_by("-created_at")[:limit]
    )
    return [
        AlertItem(
            advice=item,
            visit=item.visit,
            messages=[a.message for a in advice_payload(item).critical_alerts],
        )
        for item in advice
    ]


# --- models and training jobs ----------------------------------------------------------------------


def task_list(*, viewer: object) -> QuerySet[PredictionTask]:
    if not _may_see_models(viewer):
        return PredictionTask.objects.none()
    return PredictionTask.objects.select_related("active_version").prefetch_related(
        Prefetch("versions", queryset=ModelVersion.objects.order_by("-number"))
    )


def task_get(*, viewer: object, slug: str) -> PredictionTask:
    try:
        return task_list(viewer=viewer).get(slug=slug)
    except PredictionTask.DoesNotExist:
        raise NotFound("Prediction task not found.") from None


# A version's reports and metrics are large JSON documents that serving never reads: decoding
# them cost more than the rest of the query (tests/api/test_queries.py pins what is selected).
SERVING_DEFERRED = tuple(
    f"active_version__{name}"
    for name in (
        "label_map",
        "library_versions",
        "metrics",
        "holdout_metrics",
        "comparison",
        "report",
        "plots",
    )
)


def servable_tasks() -> QuerySet[PredictionTask]:
    """Tasks with their active version as serving reads them (no reports, no metrics)."""
    return PredictionTask.objects.select_related("active_version").defer(*SERVING_DEFERRED)


# Compiled once per process (medai_site.compiled_query): read whenever serving has no kept copy
# of the task (below), and building the select_related + defer statement cost more than
# PostgreSQL takes to answer it.
_SERVING_TASK = CompiledQuery(lambda slug: servable_tasks().filter(slug=slug))


# Serving keeps each task it read for up to SERVING_TASK_TTL_SECONDS per process, which saves
# the prediction API a query per request. Whether an answer may be given is decided at the
# write, not at this read: the model-use row is written only while the task is still enabled
# with that active version (predictions.services.serving.predictions_make), otherwise the view
# reads fresh and scores again. A switch-off, promotion or rollback therefore counts from the
# next request as before. Only a task that can answer is kept, so a switch back on or a first
# promotion is seen at once too; what may lag by up to the TTL is a renamed task's name and the
# risk label of its config (wording in the answer, never which model answers).
SERVING_TASK_TTL_SECONDS = 60.0
_serving_tasks: dict[str, tuple[float, PredictionTask]] = {}


def serving_tasks_forget() -> None:
    """Tests (which restore task and version rows behind the app's back) start cold."""
    _serving_tasks.clear()


def task_for_serving(*, viewer: object, slug: str, fresh: bool = False) -> PredictionTask:
    """The task with its active version only (one query when not kept, or ``fresh``).

    The returned task may be shared by the process's threads: callers only read it.
    """
    if not _may_see_models(viewer):
        raise NotFound("Prediction task not found.")
    now = time.monotonic()
    kept = None if fresh else _serving_tasks.get(slug)
    if kept is not None and now - kept[0] < SERVING_TASK_TTL_SECONDS:
        return kept[1]
    task = _SERVING_TASK.first(slug)
    if task is None:
        _serving_tasks.pop(slug, None)
        raise NotFound("Prediction task not found.")
    if task.enabled and task.active_version_id is not None:
        _serving_tasks[slug] = (now, task)
    else:  # not kept: the next request reads it again (a switch back on counts at once)
        _serving_tasks.pop(slug, None)
    return task


def version_get(*, viewer: object, version_id: int) -> ModelVersion:
    if not _may_see_models(viewer):
        raise NotFound("Model version not found.")
    try:
        return ModelVersion.objects.select_related("task", "training_job").get(pk=version_id)
    except (ModelVersion.DoesNotExist, ValueError, TypeError):
        raise NotFound("Model version not found.") from None


def training_job_get(*, viewer: object, job_id: int) -> TrainingJob:
    if not _may_see_models(viewer):
        raise NotFound("Training job not found.")
    try:
        return TrainingJob.objects.select_related("task").get(pk=job_id)
    except (TrainingJob.DoesNotExist, ValueError, TypeError):
        raise NotFound("Training job not found.") from None


def training_jobs_recent(
    *, viewer: object, task: PredictionTask, limit: int = 5
) -> QuerySet[TrainingJob]:
    if not _may_see_models(viewer):
        return TrainingJob.objects.none()
    return TrainingJob.objects.filter(task=task).select_related("started_by")[:limit]


def training_job_running(*, viewer: object, task: PredictionTask) -> TrainingJob | None:
    if not _may_see_models(viewer):
        return None
    return (
        TrainingJob.objects.filter(
            task=task, status__in=[TrainingJob.Status.QUEUED, TrainingJob.Status.RUNNING]
        )
        .order_by("-created_at")
        .first()
    )


def activation_history(*, viewer: object, task: PredictionTask) -> QuerySet[ActivationEvent]:
    if not _may_see_models(viewer):
        return ActivationEvent.objects.none()
    return task.activations.select_related("from_version", "to_version", "actor")


# --- monitoring ------------------------------------------------------------------------------------


def monitoring_snapshots_latest(*, viewer: object) -> list[MonitoringSnapshot]:
    """The newest snapshot of each task (of its currently active version where there is one)."""
    if not _may_see_models(viewer):
        return []
    latest = []
    for task in PredictionTask.objects.order_by("slug"):
        snapshot = (
            MonitoringSnapshot.objects.filter(task=task)
            .select_related("version", "task")
            .order_by("-computed_at", "-id")
            .first()
        )
        if snapshot is not None:
            latest.append(snapshot)
    return latest


def monitoring_history(
    *, viewer: object, task: PredictionTask, limit: int
) -> list[MonitoringSnapshot]:
    """The task's newest ``limit`` snapshots, oldest first (for plots over time)."""
    if not _may_see_models(viewer):
        return []
    newest = (
        MonitoringSnapshot.objects.filter(task=task)
        .select_related("version")
        .order_by("-computed_at", "-id")[:limit]
    )
    return list(newest)[::-1]


def model_alerts_open(*, viewer: object, task: PredictionTask, limit: int) -> list[ModelAlert]:
    if not _may_see_models(viewer):
        return []
    return list(
        ModelAlert.objects.filter(task=task, acknowledged_at__isnull=True).order_by("-created_at")[
            :limit
        ]
    )


def live_agreement(*, viewer: object) -> dict[int, dict[str, Any]]:
    """Per differential model version: how often its top-1/top-3 held the confirmed diagnosis,
    and how often doctors accepted or overrode its suggestions (``feedback``: on the advice panel
    and on the CDS Hooks cards it scored in an EHR, ``cds_hooks`` of them from cards).

    Counts over every patient's advice, so only figures leave this function (no PHI). A version
    with feedback but nothing confirmed yet has ``n`` 0 and no rates.
    """
    if not _may_see_models(viewer):
        return {}
    stats: dict[int, dict[str, Any]] = defaultdict(lambda: {"n": 0, "top1": 0, "top3": 0})
    confirmed = {
        visit_id: code[:3]
        for visit_id, code in Diagnosis.objects.filter(
            rank=Diagnosis.Rank.PRIMARY, status=Diagnosis.Status.CONFIRMED
        )
        # A confirmed diagnosis that began as accepted advice would agree with itself.
        .exclude(source=Diagnosis.Source.ADVICE)
        .values_list("visit_id", "code")
    }
    advice = Advice.objects.filter(superseded=False, visit_id__in=list(confirmed)).prefetch_related(
        "model_versions__task"
    )
    for item in advice:
        versions = [v for v in item.model_versions.all() if v.task.kind == "differential"]
        if not versions:
            continue
        ranked = advice_payload(item).ranked_codes()
        truth = confirmed[item.visit_id]
        learned = {c if c == OTHER_CLASS else c.upper() for c in versions[0].label_map.values()}
        if truth not in learned and OTHER_CLASS in learned:
            truth = OTHER_CLASS  # the model learned rare categories as one "other" class
        entry = stats[versions[0].pk]
        entry["n"] += 1
        entry["top1"] += int(ranked[:1] == [truth])
        entry["top3"] += int(truth in ranked[:3])
    feedback = _differential_feedback()
    result: dict[int, dict[str, Any]] = {}
    for version_id in sorted(stats.keys() | feedback.keys()):
        entry = stats.get(version_id) or {"n": 0, "top1": 0, "top3": 0}
        n = entry["n"]
        result[version_id] = {
            **entry,
            "top1_rate": entry["top1"] / n if n else None,
            "top3_rate": entry["top3"] / n if n else None,
            "feedback": feedback.get(version_id, _no_feedback()),
        }
    return result


def _no_feedback() -> dict[str, int]:
    return {"n": 0, "accepted": 0, "overridden": 0, "cds_hooks": 0}


def _differential_feedback() -> dict[int, dict[str, int]]:
    """Per differential model version: the suggestions doctors accepted or overrode, on the
    advice panel and on the CDS Hooks cards the version scored in an EHR, counted alike."""
    differential = PredictionTask.Kind.DIFFERENTIAL
    risk_slugs = list(
        PredictionTask.objects.filter(kind=PredictionTask.Kind.RISK).values_list("slug", flat=True)
    )
    on_advice = (
        Feedback.objects.filter(advice__model_versions__task__kind=differential)
        .exclude(suggestion__in=risk_slugs)
        .values_list("advice__model_versions", "decision", "cds_card_id")
    )
    on_cards = Feedback.objects.filter(
        cds_card__model_use__version__task__kind=differential
    ).values_list("cds_card__model_use__version", "decision", "cds_card_id")
    counts: dict[int, dict[str, int]] = defaultdict(_no_feedback)
    for version_id, decision, card_id in [*on_advice, *on_cards]:
        entry = counts[version_id]
        entry["n"] += 1
        entry["accepted" if decision == Feedback.Decision.ACCEPT else "overridden"] += 1
        entry["cds_hooks"] += card_id is not None
    return dict(counts)


# --- batch scoring ---------------------------------------------------------------------------------


def scoring_run_scores(*, viewer: object, run_id: int) -> pd.DataFrame:
    """Every visit's probabilities from a batch re-scoring run: index the visit id, one column per
    class in the version's order. The scores of every patient at once, so for the application
    itself (:data:`SYSTEM`) only; no page shows them."""
    from .services.batch_scoring import chunk_scores

    if viewer is not SYSTEM:
        raise Forbidden("Batch scores are read by the application only.")
    run = ScoringRun.objects.select_related("version").filter(pk=run_id).first()
    if run is None:
        raise NotFound(f"Scoring run {run_id} not found.")
    label_map = run.version.label_map
    classes = [label_map[str(i)] for i in range(len(label_map))]
    parts = [chunk_scores(chunk) for chunk in run.chunks.order_by("first_visit_id")]
    ids = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, dtype=np.int64)
    proba = np.vstack([p[1] for p in parts]) if parts else np.zeros((0, len(classes)))
    return pd.DataFrame(proba, index=pd.Index(ids, name="visit_id"), columns=classes)
