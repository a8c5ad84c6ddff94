"""The dashboard, the advice panel (htmx partials) and the model pages: versions, reports, plots,
training."""

from __future__ import annotations

import time
from collections.abc import Iterator

from django.conf import settings
from django.contrib import messages
from django.db import connection
from django.http import FileResponse, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from medai_site import live_events
from medai_site.audit import audit_record_many
from medai_site.errors import Conflict, InvalidInput
from medai_site.models import AuditEvent
from medai_site.pages import is_htmx, may_train_models, may_view_models, page
from medai_site.roles import is_admin
from medai_site.session_idle import background_poll
from patients.models import Patient
from patients.selectors import patient_get
from visits.charts import problem_entries
from visits.models import Visit
from visits.selectors import problem_list, visit_get

from . import dashboard, reports
from .forecast_chart import forecast_timeline_svg
from .forms import OVERRIDE_REASONS, FeedbackForm
from .health import check_models
from .medication_safety import plan_drugs, visit_allergies, visit_drug_conflicts
from .models import TrainingJob
from .monitoring_panel import task_panel
from .pipeline_health import advice_pipeline_health
from .selectors import (
    activation_history,
    advice_get,
    advice_seconds_until_delayed,
    advice_state,
    advice_status,
    task_get,
    task_list,
    training_job_get,
    training_job_running,
    training_jobs_recent,
    version_get,
)
from .services.feedback import feedback_record
from .services.outbox import advice_topic
from .services.training import training_job_start
from .wording import class_display

STREAM_RETRY_MS = 500  # the browser reconnects this soon after a stream ends without the event
STREAM_KEEPALIVE_SECONDS = 5  # also how often a stream re-reads the status if an event is lost


def _panel_context(
    request: HttpRequest, visit: Visit, *, poll: bool = False, **extra: object
) -> dict[str, object]:
    # The htmx poll records a reading of an advice once per session; every other view each time.
    session = request.session if poll else None
    return {
        "visit": visit,
        # The visit as the page fetched it (scoped, prefetched): not fetched again.
        "state": advice_state(viewer=request.user, visit_id=visit.pk, session=session, visit=visit),
        "feedback_error": "",
        "reasons": OVERRIDE_REASONS,
        **extra,
    }


def advice_panel_for_visit(request: HttpRequest, visit: Visit) -> SafeString:
    """The advice panel on the visit page (registered with visits/panels.py by the app config)."""
    return render_to_string(
        "predictions/_advice_panel.html", _panel_context(request, visit), request=request
    )


def course_panel_for_patient(request: HttpRequest, patient: Patient) -> SafeString:
    """The chart's "Course and outlook" panel (registered with visits/panels.py).

    The chart view has already fetched ``patient`` through the viewer-scoped selector (and audited
    the view); similar patients appear as courses only, without names, dates or record links.
    """
    from .forecasting import active_forecast_tasks

    # The forecasts take a few hundred milliseconds: the chart is drawn first and the panel
    # fetches itself (course_panel_view) once the page has loaded.
    if not active_forecast_tasks():
        return SafeString("")
    return render_to_string(
        "predictions/_course_panel_loading.html", {"patient": patient}, request=request
    )


@page
@require_GET
def course_panel_view(request: HttpRequest, patient_id: int) -> HttpResponse:
    """The "Course and outlook" panel of one patient's chart (htmx; the chart audited the view)."""
    from django.utils import timezone

    from .forecasting import patient_outlook

    patient = patient_get(viewer=request.user, patient_id=patient_id, audit=False)
    outlook = patient_outlook(patient_id=patient.pk, at=timezone.now())
    for entry in outlook:
        entry["svg"] = forecast_timeline_svg(entry)
    response = render(request, "predictions/_course_panel.html", {"outlook": outlook})
    response["Cache-Control"] = "no-store"
    return response


def medication_panel_for_visit(request: HttpRequest, visit: Visit) -> SafeString:
    """The plan checked against the allergies, on the visit page as soon as the visit is saved
    (registered with visits/panels.py before the advice panel); nothing when the plan names no
    drug."""
    if not plan_drugs(visit):
        return SafeString("")
    allergies = visit_allergies(visit)
    return render_to_string(
        "predictions/_medication_safety.html",
        {"conflicts": visit_drug_conflicts(visit), "allergy_count": len(allergies)},
        request=request,
    )


def _panel(
    request: HttpRequest, visit_id: int, *, error: str = "", poll: bool = False, **extra: object
) -> HttpResponse:
    visit = visit_get(viewer=request.user, visit_id=visit_id, audit=False)
    context = _panel_context(request, visit, poll=poll, feedback_error=error, **extra)
    return render(request, "predictions/_advice_panel.html", context)


@background_poll  # polled while advice is pending: never counts as the user's activity
@page
@require_GET
def advice_panel_view(request: HttpRequest, visit_id: int) -> HttpResponse:
    """The advice panel alone; while advice is pending it polls itself every 2 seconds."""
    response = _panel(request, visit_id, poll=True)
    response["Cache-Control"] = "no-store"
    return response


def _advice_events(request: HttpRequest, visit_id: int) -> Iterator[str]:
    """The event stream's body: one ``advice`` event when the advice is no longer pending, or
    when it turns late (data ``delayed``: the panel then says "Advice is delayed").

    Listening starts before the first look at the database, so advice stored in between is not
    missed. While waiting no database connection is held. The stream ends after the event, or
    after ``MEDAI_ADVICE_STREAM_SECONDS`` (the browser's EventSource then reconnects, after the
    ``retry`` delay), so a gunicorn thread is never held for ever.
    """
    listener = live_events.listen(advice_topic(visit_id))
    try:
        yield f"retry: {STREAM_RETRY_MS}\n\n"
        deadline = time.monotonic() + settings.MEDAI_ADVICE_STREAM_SECONDS
        # When pending advice turns late, the panel is woken too, to tell the doctor not to wait
        # ("Advice is delayed"); a panel already saying so opens a stream that waits for the end.
        until_late = advice_seconds_until_delayed(viewer=request.user, visit_id=visit_id)
        late_at = None if until_late is None else time.monotonic() + until_late
        while True:
            status = advice_status(viewer=request.user, visit_id=visit_id)
            if status != "pending":
                yield f"event: advice\ndata: {status}\n\n"
                return
            if late_at is not None and time.monotonic() >= late_at:
                yield "event: advice\ndata: delayed\n\n"
                return
            if not connection.in_atomic_block:  # (a test's transaction keeps its connection)
                connection.close()  # hold no database connection while waiting
            left = deadline - time.monotonic()
            if left <= 0:
                return
            wait = min(left, STREAM_KEEPALIVE_SECONDS)
            if late_at is not None:
                wait = max(0.0, min(wait, late_at - time.monotonic()))
            if not listener.wait(wait):
                yield ": keep-alive\n\n"  # a comment line: proxies see the stream alive
    finally:
        listener.close()


@background_poll  # opened by the page itself while advice is pending: not the user's activity
@page
@require_GET
def advice_stream_view(request: HttpRequest, visit_id: int) -> HttpResponse:
    """Server-sent events for the advice panel: "advice" when the visit's advice is stored.

    The event carries only the status; the panel then fetches itself (``advice_panel_view``), so
    what is shown goes through the same scoped selector and template as any other load.
    """
    advice_status(viewer=request.user, visit_id=visit_id)  # not found: a 404 before streaming
    response = StreamingHttpResponse(
        _advice_events(request, visit_id), content_type="text/event-stream"
    )
    response["Cache-Control"] = "no-store"
    response["X-Accel-Buffering"] = "no"  # a buffering proxy (nginx) would hold the event back
    return response


@page
@require_POST
def advice_feedback_view(request: HttpRequest, visit_id: int) -> HttpResponse:
    """Accept or override one suggestion; answers with the refreshed panel and problem list."""
    visit = visit_get(viewer=request.user, visit_id=visit_id, audit=False)
    form = FeedbackForm(request.POST)
    error = ""
    if form.is_valid():
        advice = advice_get(viewer=request.user, advice_id=form.cleaned_data["advice"])
        if advice.visit_id != visit.pk:
            error = _("This advice belongs to another visit.")
        else:
            try:
                feedback_record(
                    advice=advice,
                    suggestion=form.cleaned_data["suggestion"],
                    decision=form.cleaned_data["decision"],
                    reason=form.cleaned_data["reason"],
                    actor=request.user,
                )
            except Conflict:
                error = _("Your decision on this suggestion is already recorded.")
            except InvalidInput as exc:
                error = exc.message
    else:
        error = next(iter(form.errors.values()))[0]
    if not is_htmx(request):
        if error:
            messages.error(request, error)
        return redirect("visit_detail", visit_id=visit.pk)
    problems = problem_entries(problem_list(viewer=request.user, patient_id=visit.patient_id))
    return _panel(
        request,
        visit.pk,
        error=error,
        problems=problems,
        include_problems=True,
        patient=visit.patient,
    )


# --- operations: is advice flowing (staff and hospital admins) ------------------------------------


def may_view_operations(user: object) -> bool:
    return bool(getattr(user, "is_staff", False)) or is_admin(user)


@page(allowed=may_view_operations)
@require_GET
def operations_view(request: HttpRequest) -> HttpResponse:
    """The advice pipeline's health with the thresholds /metrics alerts on (README)."""
    response = render(
        request,
        "predictions/operations.html",
        {"health": advice_pipeline_health(), "models_check": _models_check()},
    )
    response["Cache-Control"] = "no-store"
    return response


def _models_check() -> str:
    """'ok', or which active model's artifact does not load (the worker could not use it)."""
    from medai_site.health import ReadinessFailure

    try:
        return check_models()
    except ReadinessFailure as exc:
        return str(exc)


# --- the dashboard: the viewer's patients, visits, advice to review and critical alerts --------


@page
@require_GET
def dashboard_view(request: HttpRequest) -> HttpResponse:
    user = request.user
    patients = list(dashboard.my_patients(viewer=user))
    visits = list(dashboard.todays_and_open_visits(viewer=user))
    reviews = dashboard.advice_awaiting_review(viewer=user)
    alerts = dashboard.recent_critical_alerts(viewer=user)
    # Every patient whose name the page shows is a view of that patient's record.
    shown = {p.pk for p in patients} | {v.patient_id for v in visits}
    shown |= {r.visit.patient_id for r in reviews} | {a.visit.patient_id for a in alerts}
    audit_record_many(actor=user, action=AuditEvent.Action.VIEW, patient_ids=sorted(shown))
    return render(
        request,
        "dashboard.html",
        {
            "patients": patients,
            "patient_count": dashboard.my_patient_count(viewer=user),
            "visits": visits,
            "reviews": reviews,
            "alerts": alerts,
        },
    )


# --- model pages ------------------------------------------------------------------------------


@page(allowed=is_admin)
@require_GET
def phenotypes_view(request: HttpRequest) -> HttpResponse:
    """Phenotype clusters of patient embeddings per forecast task (admins): sizes, defining codes,
    outcome rate per cluster. Figures and codes only: no patient is named or linked."""
    from .forecasting import phenotype_tables

    return render(request, "predictions/phenotypes.html", {"tables": phenotype_tables()})


@page(allowed=may_view_models)
@require_GET
def model_list_view(request: HttpRequest) -> HttpResponse:
    tasks = list(task_list(viewer=request.user))
    rows = [
        {
            "task": task,
            "active": task.active_version,
            "candidates": [v for v in task.versions.all() if v.pk != task.active_version_id],
            "running": training_job_running(viewer=request.user, task=task),
        }
        for task in tasks
    ]
    return render(
        request,
        "predictions/model_list.html",
        {"rows": rows, "may_train": may_train_models(request.user)},
    )


@page(allowed=may_view_models)
@require_GET
def task_detail_view(request: HttpRequest, slug: str) -> HttpResponse:
    task = task_get(viewer=request.user, slug=slug)
    return render(
        request,
        "predictions/task_detail.html",
        {
            "task": task,
            "versions": list(task.versions.all()),
            "history": activation_history(viewer=request.user, task=task),
            "jobs": training_jobs_recent(viewer=request.user, task=task, limit=10),
            "running": training_job_running(viewer=request.user, task=task),
            "may_train": may_train_models(request.user),
            "monitoring": task_panel(task, viewer=request.user),
        },
    )


@page(allowed=may_view_models)
@require_GET
def version_report_view(request: HttpRequest, version_id: int) -> HttpResponse:
    version = version_get(viewer=request.user, version_id=version_id)
    task = version.task
    metrics = version.metrics or {}
    report = version.report or {}
    subgroups = reports.subgroup_rows(metrics)
    snapshot = (version.training_job.snapshot if version.training_job else {}) or {}
    dataset = report.get("dataset") or {}
    return render(
        request,
        "predictions/version_report.html",
        {
            "version": version,
            "task": task,
            "is_active": task.active_version_id == version.pk,
            "metrics": metrics,
            "holdout": version.holdout_metrics or {},
            "comparison": version.comparison or {},
            "summary_keys": reports.SUMMARY_METRICS,
            "subgroups": subgroups,
            "subgroup_keys": reports.subgroup_keys(subgroups),
            "per_class": reports.per_class_rows(metrics),
            "candidates": report.get("models") or [],
            # Forecast versions: why the baseline or a sequence model was selected (CI gate).
            "selection_reason": ((report.get("selected") or {}).get("selection") or {}).get(
                "reason", ""
            ),
            "dataset": dataset,
            "training_rows": dataset.get("rows_used") or snapshot.get("rows"),
            "cv": report.get("cv") or {},
            "snapshot": snapshot,
            "classes": [class_display(c) for c in (report.get("classes") or [])],
            "plots": reports.plot_names(version),
            "history": activation_history(viewer=request.user, task=task),
        },
    )


@page(allowed=may_view_models)
@require_GET
def version_plot_view(request: HttpRequest, version_id: int, name: str) -> FileResponse:
    version = version_get(viewer=request.user, version_id=version_id)
    path = reports.plot_path(version=version, name=name)
    response = FileResponse(path.open("rb"), content_type=reports.PLOT_TYPES[path.suffix.lower()])
    response["Cache-Control"] = "private, max-age=3600"
    return response


@page(allowed=may_train_models)
@require_POST
def training_start_view(request: HttpRequest, slug: str) -> HttpResponse:
    task = task_get(viewer=request.user, slug=slug)
    try:
        job = training_job_start(task=task, actor=request.user, trigger=TrainingJob.Trigger.PAGE)
    except Conflict:
        messages.error(request, _("A training job for this model is already queued or running."))
        return redirect("task_detail", slug=task.slug)
    return redirect("training_job", job_id=job.pk)


@page(allowed=may_view_models)
@require_GET
def training_job_view(request: HttpRequest, job_id: int) -> HttpResponse:
    return render(
        request,
        "predictions/training_job.html",
        {"job": training_job_get(viewer=request.user, job_id=job_id)},
    )


@background_poll  # polled until the job finishes: never counts as the user's activity
@page(allowed=may_view_models)
@require_GET
def training_progress_view(request: HttpRequest, job_id: int) -> HttpResponse:
    """htmx partial: the progress bar; polls itself until the job has finished."""
    response = render(
        request,
        "predictions/_training_progress.html",
        {"job": training_job_get(viewer=request.user, job_id=job_id)},
    )
    response["Cache-Control"] = "no-store"
    return response
