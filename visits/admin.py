"""Admin for visits, observations, diagnoses and the observation catalogue.

Visits are created and edited through :mod:`visits.services` (validation, age at visit, audit,
advice request); a closed visit is read-only. Observations and diagnoses are shown inline on
their visit and are recorded through the clinical services, so the admin shows them read-only
(a diagnosis's status may be changed, through ``diagnosis_set_status``). The observation
catalogue is shown read-only: its source is ``visits/catalogue.py`` (loaded by migrations), so
entry validation, the generator and the model engine can never disagree about a range.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Q, QuerySet
from django.http import HttpRequest

from medai_site.admin import (
    MedaiAdminMixin,
    ReadOnlyAdminMixin,
    ReadOnlyInlineMixin,
    copy_saved_state,
)
from patients.selectors import patient_search

from .models import Diagnosis, Observation, ObservationDefinition, Visit, VisitEvent
from .selectors import visible_visits
from .services import (
    VISIT_FIELDS,
    VISIT_TEXT_FIELDS,
    diagnosis_set_status,
    visit_close,
    visit_create,
    visit_update,
)


class ObservationInline(ReadOnlyInlineMixin, admin.TabularInline):
    model = Observation
    fields = (
        "definition",
        "value",
        "unit",
        "interpretation",
        "entered_value",
        "entered_unit",
        "recorded_at",
    )
    readonly_fields = fields

    @admin.display(description="Unit")
    def unit(self, observation: Observation) -> str:
        return observation.definition.unit

    def get_queryset(self, request: HttpRequest) -> QuerySet[Observation]:
        return super().get_queryset(request).select_related("definition")


class DiagnosisInline(ReadOnlyInlineMixin, admin.TabularInline):
    model = Diagnosis
    fields = ("code", "display", "rank", "status", "source", "recorded_by", "created_at")
    readonly_fields = fields


class VisitAdminForm(forms.ModelForm):
    class Meta:
        model = Visit
        fields = ("patient", "attending", "start", "end", "visit_type", *VISIT_TEXT_FIELDS)


@admin.register(Visit)
class VisitAdmin(MedaiAdminMixin, admin.ModelAdmin):
    form = VisitAdminForm
    list_display = ("id", "patient", "attending", "start", "visit_type", "status", "age_years")
    list_filter = ("status", "visit_type", "start")
    date_hierarchy = "start"
    search_fields = ("=patient__mrn",)
    search_help_text = "Visit id, or a patient's exact MRN, name, phone or national id."
    list_select_related = ("patient", "attending")
    autocomplete_fields = ("patient", "attending")
    readonly_fields = ("status", "age_years", "created_at", "updated_at")
    inlines = (ObservationInline, DiagnosisInline)
    actions = ("close_visits",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Visit]:
        return visible_visits(request.user)

    def get_readonly_fields(self, request: HttpRequest, obj: Visit | None = None) -> Any:
        # A visit stays with its patient and attending doctor; visit_update cannot move it.
        return (*self.readonly_fields, "patient", "attending") if obj else self.readonly_fields

    def has_change_permission(self, request: HttpRequest, obj: Visit | None = None) -> bool:
        if obj is not None and obj.status == Visit.Status.CLOSED:
            return False  # closed visits are part of the record
        return super().has_change_permission(request, obj)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Visit], search_term: str
    ) -> tuple[QuerySet[Visit], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        matches = Q(patient__mrn=term.upper()) | Q(
            patient__in=patient_search(viewer=request.user, query=term).values("pk")
        )
        if term.isdigit():
            matches |= Q(pk=int(term))
        return queryset.filter(matches), False

    def save_model(
        self, request: HttpRequest, obj: Visit, form: forms.ModelForm, change: bool
    ) -> None:
        data = form.cleaned_data
        if change:
            changes = {name: data[name] for name in form.changed_data if name in VISIT_FIELDS}
            saved = visit_update(visit=obj, actor=request.user, **changes)
        else:
            saved = visit_create(
                patient=data["patient"],
                attending=data["attending"],
                start=data["start"],
                visit_type=data["visit_type"],
                actor=request.user,
                **{name: data[name] for name in VISIT_TEXT_FIELDS},
            )
        copy_saved_state(obj, saved)

    @admin.action(description="Close selected open visits")
    def close_visits(self, request: HttpRequest, queryset: QuerySet[Visit]) -> None:
        closed = 0
        for visit in queryset.filter(status=Visit.Status.OPEN):
            visit_close(visit=visit, actor=request.user)
            closed += 1
        self.message_user(request, f"Closed {closed} visit(s).", messages.SUCCESS)


@admin.register(Observation)
class ObservationAdmin(MedaiAdminMixin, admin.ModelAdmin):
    """Observations are entered on visits (with unit conversion and range checks); view only."""

    list_display = (
        "visit",
        "definition",
        "value",
        "unit",
        "interpretation",
        "entered_value",
        "entered_unit",
        "recorded_at",
    )
    list_filter = ("interpretation", "definition__category", "definition")
    search_fields = ("=visit__id", "=definition__code")
    list_select_related = ("visit", "definition")

    @admin.display(description="Unit")
    def unit(self, observation: Observation) -> str:
        return observation.definition.unit

    def get_queryset(self, request: HttpRequest) -> QuerySet[Observation]:
        return Observation.objects.filter(visit__in=visible_visits(request.user).values("pk"))

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class DiagnosisAdminForm(forms.ModelForm):
    class Meta:
        model = Diagnosis
        fields = ("status",)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        # The form excludes visit and rank, so Django would skip the one-primary constraint.
        self.instance.status = cleaned.get("status", self.instance.status)
        self.instance.validate_constraints()
        return cleaned


@admin.register(Diagnosis)
class DiagnosisAdmin(MedaiAdminMixin, admin.ModelAdmin):
    """Diagnoses are recorded on visits; here an admin may only correct a diagnosis's status."""

    form = DiagnosisAdminForm
    list_display = (
        "code",
        "display",
        "visit",
        "rank",
        "status",
        "source",
        "recorded_by",
        "created_at",
    )
    list_filter = ("status", "rank", "source")
    search_fields = ("code", "display")
    list_select_related = ("visit", "recorded_by")
    readonly_fields = (
        "visit",
        "code",
        "display",
        "rank",
        "source",
        "recorded_by",
        "created_at",
        "updated_at",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Diagnosis]:
        return Diagnosis.objects.filter(visit__in=visible_visits(request.user).values("pk"))

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def save_model(
        self, request: HttpRequest, obj: Diagnosis, form: forms.ModelForm, change: bool
    ) -> None:
        saved = diagnosis_set_status(
            diagnosis=obj, status=form.cleaned_data["status"], actor=request.user
        )
        copy_saved_state(obj, saved)


@admin.register(ObservationDefinition)
class ObservationDefinitionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The catalogue: codes, canonical units and the ranges that reject or flag values.

    Read-only: a change is made in ``visits/catalogue.py`` and loaded by a data migration.
    """

    list_display = (
        "code",
        "display",
        "category",
        "unit",
        "plausible_low",
        "plausible_high",
        "normal_low",
        "normal_high",
        "critical_low",
        "critical_high",
    )
    list_filter = ("category",)
    search_fields = ("code", "display")


@admin.register(VisitEvent)
class VisitEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The visit event outbox (visits/events.py): ids, kinds and times only, written by services."""

    list_display = ("id", "visit", "kind", "created_at", "request_id")
    list_filter = ("kind",)
    search_fields = ("=visit__id", "=request_id")
    readonly_fields = ("visit", "kind", "created_at", "request_id")

    def get_queryset(self, request: HttpRequest) -> QuerySet[VisitEvent]:
        return VisitEvent.objects.filter(visit__in=visible_visits(request.user).values("pk"))
