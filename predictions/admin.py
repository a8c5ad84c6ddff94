"""Admin for the model lifecycle: tasks, training jobs, versions, activations, advice, feedback.

Everything here is a window on rows that services write. The admin changes state only through
actions that call those services (predictions/services: ``training_job_start``,
``version_promote``, ``version_rollback``, ``task_set_enabled``), each with a written reason typed
into the reason box beside the action menu; the services refuse an empty reason. Audit-relevant
rows (versions, activation history, advice, feedback) are never added, changed or deleted here.
Advice and feedback quote the visit, so they are scoped to the visits the admin may see, their
ciphertext is never shown, and opening one is audited like opening the visit.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from medai_site.admin import MedaiAdminMixin, ReadOnlyAdminMixin
from medai_site.errors import DomainError
from predictions.ml.metric_format import format_metric
from visits.selectors import visible_visits

from .models import (
    ActivationEvent,
    Advice,
    AdviceRequest,
    Feedback,
    ModelVersion,
    PredictionTask,
    TrainingJob,
)
from .payload import AdvicePayload, advice_payload
from .services import registry

METRIC_NAMES = (
    "roc_auc",
    "roc_auc_ci",
    "ece",
    "brier",
    "accuracy",
    "balanced_accuracy",
    "log_loss",
)


class ReasonActionForm(ActionForm):
    """The action menu with a reason box: promotions, rollbacks and the kill switch need one."""

    reason = forms.CharField(
        required=False,
        label="Reason",
        widget=forms.TextInput(
            attrs={"size": 60, "placeholder": "Why (required to change models)"}
        ),
    )


def _reason(request: HttpRequest) -> str:
    return (request.POST.get("reason") or "").strip()


def _run_each(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    items: QuerySet[Any],
    call: Callable[[Any], str],
) -> None:
    """Call a service per selected row; report each success or domain error in plain words."""
    for item in items:
        try:
            model_admin.message_user(request, call(item), messages.SUCCESS)
        except DomainError as exc:
            model_admin.message_user(request, f"{item}: {exc.message}", messages.ERROR)


def _metrics_table(metrics: dict[str, Any]) -> str:
    rows = [(name, format_metric(metrics.get(name))) for name in METRIC_NAMES if name in metrics]
    if not rows:
        return "—"
    return format_html(
        "<table><tbody>{}</tbody></table>",
        format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows),
    )


def _pretty_json(value: Any) -> str:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True, default=str))


@admin.register(PredictionTask)
class PredictionTaskAdmin(MedaiAdminMixin, admin.ModelAdmin):
    """What is predicted; the active version, the kill switch and training start here."""

    list_display = ("name", "slug", "kind", "active_version", "enabled", "disabled_reason")
    list_select_related = ("active_version",)
    fields = (
        "name",
        "slug",
        "kind",
        "config",
        "intended_use",
        "limitations",
        "active_version",
        "enabled",
        "disabled_reason",
        "recent_activations",
    )
    readonly_fields = fields
    action_form = ReasonActionForm
    actions = ("start_training", "switch_off", "switch_on", "roll_back")

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False  # tasks are defined by migrations: each needs labelling code

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(
        self, request: HttpRequest, obj: PredictionTask, form: Any, change: bool
    ) -> None:
        """Every field is read-only here: the actions (registry and training services) make every
        change, so the form's Save writes nothing (Django's default would re-save the row)."""

    @admin.display(description="Recent activations")
    def recent_activations(self, task: PredictionTask) -> str:
        events = task.activations.select_related("from_version", "to_version", "actor")[:10]
        if not events:
            return "—"
        return format_html(
            "<ul>{}</ul>",
            format_html_join(
                "",
                "<li>{} — {}: {} → {} by {} (“{}”)</li>",
                (
                    (
                        f"{e.at:%Y-%m-%d %H:%M}",
                        e.get_action_display(),
                        e.from_version or "none",
                        e.to_version or "none",
                        e.actor or "system",
                        e.reason,
                    )
                    for e in events
                ),
            ),
        )

    @admin.action(description="Start a training job")
    def start_training(self, request: HttpRequest, queryset: QuerySet[PredictionTask]) -> None:
        from .services.training import training_job_start  # the engine loads only when used

        def call(task: PredictionTask) -> str:
            job = training_job_start(
                task=task, actor=request.user, trigger=TrainingJob.Trigger.ADMIN
            )
            return f"Training job {job.pk} queued for {task}."

        _run_each(self, request, queryset, call)

    @admin.action(description="Kill switch: stop advice from these tasks (reason required)")
    def switch_off(self, request: HttpRequest, queryset: QuerySet[PredictionTask]) -> None:
        reason = _reason(request)

        def call(task: PredictionTask) -> str:
            registry.task_set_enabled(task=task, enabled=False, reason=reason, actor=request.user)
            return f"{task} switched off: it gives no advice until switched on again."

        _run_each(self, request, queryset, call)

    @admin.action(description="Switch advice from these tasks back on (reason required)")
    def switch_on(self, request: HttpRequest, queryset: QuerySet[PredictionTask]) -> None:
        reason = _reason(request)

        def call(task: PredictionTask) -> str:
            registry.task_set_enabled(task=task, enabled=True, reason=reason, actor=request.user)
            return f"{task} switched on."

        _run_each(self, request, queryset, call)

    @admin.action(description="Roll back to the previously active version (reason required)")
    def roll_back(self, request: HttpRequest, queryset: QuerySet[PredictionTask]) -> None:
        reason = _reason(request)

        def call(task: PredictionTask) -> str:
            event = registry.version_rollback(task=task, reason=reason, actor=request.user)
            return f"{task}: rolled back from {event.from_version} to {event.to_version}."

        _run_each(self, request, queryset, call)


@admin.register(ModelVersion)
class ModelVersionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Immutable versions: metrics, the champion/challenger comparison, and promotion."""

    list_display = (
        "__str__",
        "algorithm",
        "is_active",
        "cv_auc",
        "cv_ece",
        "holdout_auc",
        "holdout_ece",
        "comparison_verdict",
        "created_at",
        "created_by",
    )
    list_filter = ("task", "algorithm")
    list_select_related = ("task", "created_by")
    fields = (
        "task",
        "number",
        "algorithm",
        "is_active",
        "training_job",
        "created_at",
        "created_by",
        "comparison_summary",
        "holdout_summary",
        "metrics_summary",
        "artifact_path",
        "artifact_sha256",
        "artifact_size",
        "data_hash",
        "label_map_display",
        "library_versions_display",
        "feature_schema_display",
        "plots_display",
    )
    readonly_fields = fields
    action_form = ReasonActionForm
    actions = ("promote",)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="Active", boolean=True)
    def is_active(self, version: ModelVersion) -> bool:
        return version.task.active_version_id == version.pk

    # Both figures, each named: the Models page shows the same pair (issue 17, item 8).
    @admin.display(description="Cross-validated ROC AUC (out-of-fold)")
    def cv_auc(self, version: ModelVersion) -> str:
        return format_metric(version.metrics.get("roc_auc"))

    @admin.display(description="Cross-validated ECE")
    def cv_ece(self, version: ModelVersion) -> str:
        return format_metric(version.metrics.get("ece"))

    @admin.display(description="Held-out ROC AUC")
    def holdout_auc(self, version: ModelVersion) -> str:
        return format_metric(version.holdout_metrics.get("roc_auc"))

    @admin.display(description="Held-out ECE")
    def holdout_ece(self, version: ModelVersion) -> str:
        return format_metric(version.holdout_metrics.get("ece"))

    @admin.display(description="Comparison")
    def comparison_verdict(self, version: ModelVersion) -> str:
        if not version.comparison:
            return "—"
        return "not worse: promoted" if version.comparison.get("promote") else "worse: candidate"

    @admin.display(description="Champion/challenger comparison (same held-out visits)")
    def comparison_summary(self, version: ModelVersion) -> str:
        comparison = version.comparison or {}
        if not comparison:
            return "—"
        champion = comparison.get("champion") or {}
        challenger = comparison.get("challenger") or {}
        rows = [
            (
                name,
                format_metric(challenger.get(name)),
                format_metric(champion.get(name)) if champion else "—",
            )
            for name in ("roc_auc", "ece", "brier", "accuracy")
        ]
        return format_html(
            "<p><strong>{}</strong> on {} held-out visits (AUC margin {}, ECE margin {})</p>"
            "<table><thead><tr><th>metric</th><th>this version</th><th>active then</th></tr>"
            "</thead><tbody>{}</tbody></table><ul>{}</ul>",
            "Not worse: promoted automatically"
            if comparison.get("promote")
            else "Worse than the active model: kept as a candidate",
            comparison.get("holdout_visits", "?"),
            comparison.get("auc_margin"),
            comparison.get("ece_margin"),
            format_html_join("", "<tr><th>{}</th><td>{}</td><td>{}</td></tr>", rows),
            format_html_join("", "<li>{}</li>", ((r,) for r in comparison.get("reasons", []))),
        )

    @admin.display(description="Held-out metrics")
    def holdout_summary(self, version: ModelVersion) -> str:
        return _metrics_table(version.holdout_metrics)

    @admin.display(description="Cross-validated metrics (training data)")
    def metrics_summary(self, version: ModelVersion) -> str:
        return _metrics_table(version.metrics)

    @admin.display(description="Label map")
    def label_map_display(self, version: ModelVersion) -> str:
        return _pretty_json(version.label_map)

    @admin.display(description="Library versions")
    def library_versions_display(self, version: ModelVersion) -> str:
        return _pretty_json(version.library_versions)

    @admin.display(description="Feature schema")
    def feature_schema_display(self, version: ModelVersion) -> str:
        return _pretty_json(version.feature_schema)

    @admin.display(description="Plots")
    def plots_display(self, version: ModelVersion) -> str:
        if not version.plots:
            return "—"
        return format_html(
            "<ul>{}</ul>", format_html_join("", "<li>{}: {}</li>", sorted(version.plots.items()))
        )

    @admin.action(description="Promote to active, overriding the comparison (reason required)")
    def promote(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> None:
        reason = _reason(request)

        def call(version: ModelVersion) -> str:
            event = registry.version_promote(version=version, reason=reason, actor=request.user)
            return f"{version} is now active (was {event.from_version or 'none'})."

        _run_each(self, request, queryset.select_related("task"), call)


@admin.register(TrainingJob)
class TrainingJobAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "task",
        "status",
        "stage",
        "percent",
        "trigger",
        "attempts",
        "created_at",
        "heartbeat_at",
        "finished_at",
        "started_by",
        "short_error",
    )
    list_filter = ("status", "task", "trigger")
    list_select_related = ("task", "started_by")
    fields = (
        "task",
        "status",
        "stage",
        "percent",
        "error",
        "trigger",
        "attempts",
        "started_by",
        "created_at",
        "started_at",
        "heartbeat_at",
        "finished_at",
        "snapshot_summary",
        "model_version",
    )
    readonly_fields = fields

    @admin.display(description="Error")
    def short_error(self, job: TrainingJob) -> str:
        return job.error if len(job.error) <= 80 else job.error[:77] + "..."

    @admin.display(description="Training set snapshot")
    def snapshot_summary(self, job: TrainingJob) -> str:
        snapshot = job.snapshot or {}
        if not snapshot:
            return "—"
        counts = snapshot.get("class_counts", {})
        return format_html(
            "<p>{} visits, data hash {}</p><table><tbody>{}</tbody></table>",
            snapshot.get("rows", len(snapshot.get("visit_ids", []))),
            snapshot.get("hash", ""),
            format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", sorted(counts.items())),
        )

    @admin.display(description="Model version")
    def model_version(self, job: TrainingJob) -> str:
        version = ModelVersion.objects.filter(training_job=job).select_related("task").first()
        return str(version) if version else "—"


@admin.register(ActivationEvent)
class ActivationEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Append-only history of activations, rollbacks and the kill switch."""

    list_display = ("at", "task", "action", "from_version", "to_version", "actor", "reason")
    list_filter = ("task", "action")
    list_select_related = ("task", "from_version__task", "to_version__task", "actor")
    readonly_fields = [f.name for f in ActivationEvent._meta.fields]


class PatientScopedMixin:
    """Advice and feedback quote the visit: scope to visible visits (MedaiAdminMixin audits every
    opening and list page)."""

    visit_path = "visit"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset = super().get_queryset(request)
        return queryset.filter(
            **{f"{self.visit_path}__in": visible_visits(request.user).values("pk")}
        )


@admin.register(AdviceRequest)
class AdviceRequestAdmin(PatientScopedMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """The outbox: pending → handed to the broker → done or failed (with a readable reason)."""

    list_display = (
        "id",
        "visit",
        "status",
        "created_at",
        "dispatched_at",
        "finished_at",
        "dispatch_attempts",
        "compute_attempts",
        "advice",
        "error",
    )
    list_filter = ("status",)
    search_fields = ("=visit__id", "=request_id")
    readonly_fields = [f.name for f in AdviceRequest._meta.fields]


@admin.register(Advice)
class AdviceAdmin(PatientScopedMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """Stored advice, decrypted into a summary; the ciphertext itself is never shown."""

    list_display = (
        "id",
        "visit",
        "created_at",
        "models_key",
        "abstained",
        "alert_count",
        "critical_alert_count",
        "superseded",
        "compute_ms",
    )
    list_filter = ("superseded", "abstained")
    search_fields = ("=visit__id",)
    # Listed explicitly so `payload` (the ciphertext column) can never appear on the page.
    fields = (
        "visit",
        "created_at",
        "models_key",
        "model_versions_display",
        "input_hash",
        "abstained",
        "superseded",
        "compute_ms",
        "diagnoses_summary",
        "risks_summary",
        "abstention_summary",
        "alerts_summary",
        "similar_summary",
    )
    readonly_fields = fields

    @staticmethod
    def _payload(advice: Advice) -> AdvicePayload:
        return advice_payload(advice)

    @admin.display(description="Model versions")
    def model_versions_display(self, advice: Advice) -> str:
        return ", ".join(str(v) for v in advice.model_versions.select_related("task")) or (
            "rules only"
        )

    @admin.display(description="Ranked diagnoses")
    def diagnoses_summary(self, advice: Advice) -> str:
        rows = [
            (d.rank, d.code, d.display, f"{d.probability:.1%}")
            for d in self._payload(advice).diagnoses
        ]
        if not rows:
            return "—"
        return format_html(
            "<table><tbody>{}</tbody></table>",
            format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows),
        )

    @admin.display(description="Risks")
    def risks_summary(self, advice: Advice) -> str:
        risks = self._payload(advice).risks
        if not risks:
            return "—"
        return format_html(
            "<ul>{}</ul>",
            format_html_join(
                "",
                "<li>{} (v{}): {}</li>",
                ((r.label, r.version, f"{r.probability:.1%}") for r in risks),
            ),
        )

    @admin.display(description="Abstention")
    def abstention_summary(self, advice: Advice) -> str:
        payload = self._payload(advice)
        if not payload.abstained:
            return "no"
        return "yes: " + "; ".join(payload.abstain_reasons)

    @admin.display(description="Rule alerts")
    def alerts_summary(self, advice: Advice) -> str:
        alerts = self._payload(advice).alerts
        if not alerts:
            return "—"
        return format_html(
            "<ul>{}</ul>",
            format_html_join(
                "",
                "<li>[{}] {}: {}</li>",
                ((a.severity, a.rule, a.message) for a in alerts),
            ),
        )

    @admin.display(description="Similar past cases")
    def similar_summary(self, advice: Advice) -> str:
        # Other patients' cases: what the payload holds (no identifier of them), nothing more.
        cases = self._payload(advice).similar_cases
        if not cases:
            return "—"
        return format_html(
            "<ul>{}</ul>",
            format_html_join(
                "",
                "<li>{} · {} {} · {}: {}</li>",
                (
                    (c.year or "", c.age_band, c.sex, c.outcome, "; ".join(c.diagnoses))
                    for c in cases
                ),
            ),
        )


@admin.register(Feedback)
class FeedbackAdmin(PatientScopedMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    visit_path = "advice__visit"
    list_display = ("at", "advice", "suggestion", "rank", "decision", "reason", "actor")
    list_filter = ("decision", "reason")
    list_select_related = ("advice", "actor")
    fields = ("advice", "suggestion", "rank", "decision", "reason", "comment", "diagnosis", "actor")
    readonly_fields = fields


from . import admin_monitoring  # noqa: E402, F401 - registers the monitoring admin (issue 8)
