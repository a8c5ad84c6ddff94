"""Admin for model monitoring: the monitoring page, snapshots, and alerts to acknowledge.

"Monitoring snapshots" in the admin index opens the monitoring page: per task, the latest status
in plain words (ok / watch / act), its open alerts, and plots over time of the largest input PSI,
live agreement and Brier score (inline SVG drawn on the server: no JavaScript, nothing inline
that the Content-Security-Policy would block). Snapshots are written only by
predictions/services/monitoring.py; alerts change only by being acknowledged (through it).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils.html import format_html, format_html_join

from medai_site.admin import ReadOnlyAdminMixin

from .admin import _pretty_json
from .models import ModelAlert, MonitoringSnapshot, PredictionTask
from .monitoring_panel import task_panel


@admin.register(MonitoringSnapshot)
class MonitoringSnapshotAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("computed_at", "task", "version", "status", "window_days")
    list_filter = ("status", "task")
    list_select_related = ("task", "version")
    fields = (
        "task",
        "version",
        "computed_at",
        "window_days",
        "status",
        "alerts_list",
        "input_drift_json",
        "output_drift_json",
        "performance_json",
    )
    readonly_fields = fields

    @admin.display(description="Alerts")
    def alerts_list(self, snapshot: MonitoringSnapshot) -> str:
        if not snapshot.alerts:
            return "—"
        return format_html(
            "<ul>{}</ul>",
            format_html_join(
                "", "<li>[{}] {}</li>", ((a["severity"], a["message"]) for a in snapshot.alerts)
            ),
        )

    @admin.display(description="Input drift")
    def input_drift_json(self, snapshot: MonitoringSnapshot) -> str:
        return _pretty_json(snapshot.input_drift)

    @admin.display(description="Output drift")
    def output_drift_json(self, snapshot: MonitoringSnapshot) -> str:
        return _pretty_json(snapshot.output_drift)

    @admin.display(description="Live performance")
    def performance_json(self, snapshot: MonitoringSnapshot) -> str:
        return _pretty_json(snapshot.performance)

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        """The monitoring page; "Run monitoring now" queues a run for every active model."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        if request.method == "POST" and "run_monitoring" in request.POST:
            from .tasks import monitoring_run

            try:
                monitoring_run.apply_async(retry=False)
                self.message_user(
                    request, "Monitoring queued: the page updates when the worker is done."
                )
            except Exception:
                self.message_user(
                    request,
                    "The broker is unreachable: monitoring could not be queued.",
                    messages.ERROR,
                )
            return HttpResponseRedirect(request.path)
        tasks = PredictionTask.objects.select_related("active_version").order_by("slug")
        context = {
            **self.admin_site.each_context(request),
            "title": "Model monitoring",
            "opts": self.model._meta,
            "panels": [task_panel(task, viewer=request.user) for task in tasks],
            "recent": MonitoringSnapshot.objects.select_related("task", "version")[:20],
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/predictions/monitoring.html", context)


@admin.register(ModelAlert)
class ModelAlertAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "created_at",
        "task",
        "version",
        "severity",
        "message",
        "acknowledged_by",
        "acknowledged_at",
    )
    list_filter = ("severity", ("acknowledged_at", admin.EmptyFieldListFilter), "task")
    list_select_related = ("task", "version", "acknowledged_by")
    fields = (
        "task",
        "version",
        "snapshot",
        "severity",
        "key",
        "message",
        "created_at",
        "acknowledged_by",
        "acknowledged_at",
    )
    readonly_fields = fields
    actions = ("acknowledge",)

    @admin.action(description="Acknowledge the selected alerts")
    def acknowledge(self, request: HttpRequest, queryset: QuerySet[ModelAlert]) -> None:
        from .services.monitoring import alert_acknowledge

        count = 0
        for alert in queryset.filter(acknowledged_at__isnull=True):
            alert_acknowledge(alert=alert, actor=request.user)
            count += 1
        self.message_user(request, f"{count} alert(s) acknowledged.")
