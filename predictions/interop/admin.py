"""Admin of the import doors: start an import (dry run first) from an uploaded file, follow its
progress, read its report, run it for real; HL7 v2 messages and their quarantine.

Imports run in a worker (``predictions.interop.tasks``); the file waits on the server's disk and
the broker carries the run id only. Everything is written by ``predictions/interop/services.py``.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html, format_html_join
from import_export.admin import ImportMixin

from medai_site.admin import (
    MedaiAdminMixin,
    ReadOnlyAdminMixin,
    admin_audit_context,
    copy_saved_state,
)
from medai_site.roles import is_admin
from patients.models import CareTeam

from .models import Hl7Message, ImportRun, PatientRow, SourceCondition, VisitRow
from .services import import_run_create, import_upload_dir
from .tabular import PatientResource, VisitResource

MAX_UPLOAD_BYTES = 2_000_000_000  # 2 GB: a bulk export; the file is streamed to disk, not memory


class ImportRunForm(forms.ModelForm):
    upload = forms.FileField(
        label="File",
        help_text="FHIR R4: a Bundle (.json) or NDJSON (.ndjson); HL7 v2: ORU^R01 messages (.hl7).",
    )
    care_team = forms.ModelChoiceField(
        queryset=CareTeam.objects.all(),
        required=False,
        help_text="New patients join this care team (none: only admins see them).",
    )

    class Meta:
        model = ImportRun
        fields = ("kind", "dry_run", "source")

    def clean_upload(self) -> Any:
        upload = self.cleaned_data["upload"]
        if upload.size > MAX_UPLOAD_BYTES:
            raise forms.ValidationError("The file is larger than 2 GB.")
        return upload


@admin.register(ImportRun)
class ImportRunAdmin(MedaiAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "kind",
        "file_name",
        "dry_run",
        "status",
        "progress_percent",
        "created_at",
    )
    list_filter = ("kind", "status", "dry_run")
    actions = ["run_for_real"]
    readonly_fields = (
        "kind",
        "dry_run",
        "source",
        "file_name",
        "care_team_name",
        "status",
        "progress_bar",
        "summary",
        "skips",
        "error",
        "started_by",
        "created_at",
        "finished_at",
    )
    exclude = ("path", "report", "progress")

    def get_form(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = ImportRunForm
            kwargs["fields"] = ("kind", "dry_run", "source")
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.readonly_fields if obj is not None else ()

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ("upload", "kind", "dry_run", "source", "care_team")
        return self.readonly_fields

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False if obj is not None else super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        upload = form.cleaned_data["upload"]
        suffix = Path(upload.name).suffix.lower()[:10] or ".json"
        path = import_upload_dir() / f"{uuid.uuid4().hex}{suffix}"
        with path.open("wb") as out:
            for chunk in upload.chunks():
                out.write(chunk)
        run = import_run_create(
            path=path,
            file_name=Path(upload.name).name,
            dry_run=form.cleaned_data["dry_run"],
            source=form.cleaned_data["source"],
            care_team=form.cleaned_data.get("care_team"),
            actor=request.user,
            kind=form.cleaned_data["kind"],
        )
        copy_saved_state(obj, run)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        response = super().change_view(request, object_id, form_url, extra_context)
        run = (
            ImportRun.objects.filter(pk=object_id).only("status").first()
            if object_id.isdigit()
            else None
        )
        if run is not None and run.status in (ImportRun.Status.QUEUED, ImportRun.Status.RUNNING):
            response["Refresh"] = "3"  # the progress bar moves without a script
        return response

    @admin.display(description="progress")
    def progress_percent(self, run: ImportRun) -> str:
        return f"{run.progress:.0%}"

    @admin.display(description="progress")
    def progress_bar(self, run: ImportRun) -> str:
        return format_html(
            '<progress value="{}" max="1" style="width:20em"></progress> {}',
            run.progress,
            f"{run.progress:.0%}",
        )

    @admin.display(description="report")
    def summary(self, run: ImportRun) -> str:
        counts = (run.report or {}).get("counts") or {}
        if not counts:
            return "—"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    kind,
                    c.get("created", 0),
                    c.get("updated", 0),
                    c.get("unchanged", 0),
                    c.get("skipped", 0),
                )
                for kind, c in counts.items()
            ),
        )
        return format_html(
            "<table><tr><th>resource</th><th>created</th><th>updated</th><th>unchanged</th>"
            "<th>skipped</th></tr>{}</table>",
            rows,
        )

    @admin.display(description="skipped")
    def skips(self, run: ImportRun) -> str:
        skipped = (run.report or {}).get("skipped") or []
        if not skipped:
            return "—"
        return format_html(
            "<ul>{}</ul>",
            format_html_join(
                "",
                "<li>{} {} {}: {} — {}</li>",
                (
                    (
                        s.get("file"),
                        s.get("resource_type"),
                        s.get("id"),
                        s.get("reason"),
                        s.get("detail"),
                    )
                    for s in skipped[:200]
                ),
            ),
        )

    @admin.action(description="Run the selected dry runs for real")
    def run_for_real(self, request: HttpRequest, queryset: QuerySet[ImportRun]) -> None:
        started = 0
        for run in queryset:
            if (
                not (run.dry_run and run.status == ImportRun.Status.SUCCEEDED)
                or not Path(run.path).exists()
            ):
                self.message_user(
                    request,
                    f"Import {run.pk}: only a finished dry run whose file is still here can run for real.",
                    messages.WARNING,
                )
                continue
            import_run_create(
                path=Path(run.path),
                file_name=run.file_name,
                dry_run=False,
                source=run.source,
                care_team=CareTeam.objects.filter(name=run.care_team_name).first(),
                actor=request.user,
                kind=run.kind,
            )
            started += 1
        if started:
            self.message_user(request, f"{started} import(s) queued.", messages.SUCCESS)


@admin.register(Hl7Message)
class Hl7MessageAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """HL7 v2 messages received; the quarantine is the filter 'quarantined: yes'."""

    # The message's patient is an id column, not a foreign key: named for the audit of reads.
    audit_patient_path = "patient_id"

    list_display = ("id", "received_at", "outcome", "quarantined", "reason", "observations")
    list_filter = ("quarantined", "outcome")
    fields = (
        "received_at",
        "outcome",
        "quarantined",
        "reason",
        "patient_id",
        "visit_id",
        "observations",
    )
    readonly_fields = fields


@admin.register(SourceCondition)
class SourceConditionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Conditions kept in their source coding (not ICD-10), as imported."""

    list_display = (
        "id",
        "patient_id",
        "visit_id",
        "system",
        "code",
        "display",
        "verification_status",
    )
    list_filter = ("system",)
    readonly_fields = (
        "patient",
        "visit",
        "system",
        "code",
        "display",
        "clinical_status",
        "verification_status",
        "onset",
        "recorded_at",
    )
    fields = readonly_fields


class _TabularImportAdmin(MedaiAdminMixin, ImportMixin, admin.ModelAdmin):
    """The Import button (with its dry-run preview) over a read-only, audited list of the rows."""

    def get_import_resource_kwargs(self, request: HttpRequest, **kwargs: Any) -> dict[str, Any]:
        return {**super().get_import_resource_kwargs(request, **kwargs), "actor": request.user}

    def has_import_permission(self, request: HttpRequest) -> bool:
        return is_admin(request.user)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def import_action(self, request: HttpRequest, **kwargs: Any) -> HttpResponse:
        with admin_audit_context():
            return super().import_action(request, **kwargs)

    def process_import(self, request: HttpRequest, **kwargs: Any) -> HttpResponse:
        with admin_audit_context():
            return super().process_import(request, **kwargs)


@admin.register(PatientRow)
class PatientRowAdmin(_TabularImportAdmin):
    resource_classes = [PatientResource]
    audit_patient_path = "pk"  # a proxy of Patient: each row is a patient
    list_display = ("mrn",)


@admin.register(VisitRow)
class VisitRowAdmin(_TabularImportAdmin):
    resource_classes = [VisitResource]
    list_display = ("id", "patient", "start", "visit_type", "status")
    list_select_related = ("patient",)
