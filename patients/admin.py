"""Admin for patients, allergies and care teams.

PHI is shown decrypted (never as ciphertext); search goes through the blind indexes
(:func:`patients.selectors.patient_search`), scoped to the admin user like every other read;
writes go through :mod:`patients.services`, so validation, normalisation and the audit trail are
the same as on every other path. Reads are audited by :class:`medai_site.admin.MedaiAdminMixin`
(a row opened, a list page shown) for every model here that belongs to a patient.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import F, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from medai_site.admin import MedaiAdminMixin, ReadOnlyInlineMixin, copy_saved_state
from medai_site.errors import Conflict, InvalidInput

from .access import visible_patients
from .break_glass import break_glass_review
from .models import Allergy, BreakGlassGrant, CareTeam, Patient
from .selectors import care_teams_registrable, patient_search
from .services import (
    PATIENT_FIELDS,
    allergy_add,
    care_team_create,
    care_team_members_set,
    care_team_rename,
    check_birth_date,
    patient_care_teams_set,
    patient_create,
    patient_update,
    registration_care_teams,
)

# Derived or audit-relevant: written by services and fields themselves, never typed in the admin.
PATIENT_READONLY = (
    "audit_report_link",
    "created_at",
    "updated_at",
    "created_by",
    "name_bidx",
    "given_name_bidx",
    "family_name_bidx",
    "phone_bidx",
    "national_id_bidx",
)


class PatientAdminForm(forms.ModelForm):
    class Meta:
        model = Patient
        fields = (*PATIENT_FIELDS, "care_teams")

    def clean_birth_date(self) -> Any:
        birth_date = self.cleaned_data.get("birth_date")
        try:
            check_birth_date(birth_date)  # the service's own rule, reported on the form
        except InvalidInput as exc:
            raise ValidationError(exc.message) from None
        return birth_date


class AllergyInline(ReadOnlyInlineMixin, admin.TabularInline):
    model = Allergy
    fields = ("substance", "reaction", "severity", "recorded_at")
    readonly_fields = fields


@admin.register(Patient)
class PatientAdmin(MedaiAdminMixin, admin.ModelAdmin):
    form = PatientAdminForm
    list_display = ("mrn", "name", "sex", "care_team_names", "created_at")
    list_filter = ("sex", "care_teams", "created_at")
    # The search box searches blind indexes, not these columns (see get_search_results).
    search_fields = ("mrn",)
    search_help_text = "Exact MRN, full name, given or family name, phone or national id."
    readonly_fields = PATIENT_READONLY
    filter_horizontal = ("care_teams",)
    inlines = (AllergyInline,)
    fieldsets = (
        (None, {"fields": ("mrn", "sex", "care_teams")}),
        (
            "Identity and contact (encrypted)",
            {
                "fields": (
                    "given_name",
                    "family_name",
                    "birth_date",
                    "phone",
                    "email",
                    "address",
                    "national_id",
                    "emergency_contact",
                ),
            },
        ),
        ("Record", {"fields": ("created_at", "updated_at", "created_by", "audit_report_link")}),
        (
            "Search index (HMAC digests)",
            {
                "classes": ("collapse",),
                "fields": (
                    "name_bidx",
                    "given_name_bidx",
                    "family_name_bidx",
                    "phone_bidx",
                    "national_id_bidx",
                ),
            },
        ),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Patient]:
        return visible_patients(request.user).prefetch_related("care_teams")

    def get_form(
        self, request: HttpRequest, obj: Patient | None = None, change: bool = False, **kwargs: Any
    ) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        if obj is None:  # registering: the registration rule offers the care teams
            form.base_fields["care_teams"].queryset = care_teams_registrable(viewer=request.user)
        return form

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Patient], search_term: str
    ) -> tuple[QuerySet[Patient], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        # patient_search is scoped to the viewer, compares decrypted candidates and audits hits.
        hits = patient_search(viewer=request.user, query=term).values("pk")
        return queryset.filter(pk__in=hits) | queryset.filter(mrn=term.upper()), False

    @admin.display(description="Audit trail")
    def audit_report_link(self, patient: Patient) -> str:
        """Who opened this record: the per-patient audit report (by id: no MRN in the URL)."""
        if patient.pk is None:
            return "—"
        return format_html(
            '<a href="{}?patient={}">Who opened this record (audit report)</a>',
            reverse("admin:medai_site_auditevent_report"),
            patient.pk,
        )

    @admin.display(description="Name")
    def name(self, patient: Patient) -> str:
        return patient.full_name

    @admin.display(description="Care teams")
    def care_team_names(self, patient: Patient) -> str:
        return ", ".join(team.name for team in patient.care_teams.all())

    def save_model(
        self, request: HttpRequest, obj: Patient, form: forms.ModelForm, change: bool
    ) -> None:
        if change:
            changes = {
                name: form.cleaned_data[name]
                for name in form.changed_data
                if name in PATIENT_FIELDS
            }
            saved = patient_update(patient=obj, actor=request.user, **changes)
        else:
            values = {name: form.cleaned_data[name] for name in PATIENT_FIELDS}
            teams = registration_care_teams(
                actor=request.user, team_ids=[t.pk for t in form.cleaned_data["care_teams"]]
            )
            saved = patient_create(actor=request.user, care_teams=teams, **values)
        copy_saved_state(obj, saved)

    def save_related(
        self, request: HttpRequest, form: forms.ModelForm, formsets: Any, change: bool
    ) -> None:
        # Not form.save_m2m(): care teams decide who may read this record, so they change through
        # the service, which audits the change (patient_create already set them on an add).
        if change:
            patient_care_teams_set(
                patient=form.instance, teams=form.cleaned_data["care_teams"], actor=request.user
            )
        for formset in formsets:  # the read-only allergy inline: nothing to save, kept for form
            self.save_formset(request, form, formset, change=change)


class AllergyAdminForm(forms.ModelForm):
    class Meta:
        model = Allergy
        fields = ("patient", "substance", "reaction", "severity")

    def clean_substance(self) -> str:
        # As allergy_add stores it, so the uniqueness check below sees the stored spelling.
        return " ".join(self.cleaned_data["substance"].split()).lower()


@admin.register(Allergy)
class AllergyAdmin(MedaiAdminMixin, admin.ModelAdmin):
    """Allergies are added through the service; a recorded allergy is viewed, not edited here."""

    form = AllergyAdminForm
    list_display = ("patient", "substance", "severity", "recorded_at")
    list_filter = ("severity",)
    search_fields = ("=patient__mrn", "substance")
    search_help_text = "Exact patient MRN, or part of a substance name."
    list_select_related = ("patient",)
    autocomplete_fields = ("patient",)
    readonly_fields = ("recorded_at",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Allergy]:
        return Allergy.objects.filter(patient__in=visible_patients(request.user).values("pk"))

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is None and super().has_change_permission(request, obj)

    def save_model(
        self, request: HttpRequest, obj: Allergy, form: forms.ModelForm, change: bool
    ) -> None:
        saved = allergy_add(
            patient=form.cleaned_data["patient"],
            substance=form.cleaned_data["substance"],
            reaction=form.cleaned_data["reaction"],
            severity=form.cleaned_data["severity"],
            actor=request.user,
        )
        copy_saved_state(obj, saved)


@admin.register(CareTeam)
class CareTeamAdmin(MedaiAdminMixin, admin.ModelAdmin):
    list_display = ("name", "member_count", "patient_count")
    search_fields = ("name", "members__username")
    filter_horizontal = ("members",)

    @admin.display(description="Members")
    def member_count(self, team: CareTeam) -> int:
        return team.members.count()

    @admin.display(description="Patients")
    def patient_count(self, team: CareTeam) -> int:
        return team.patients.count()

    def save_model(
        self, request: HttpRequest, obj: CareTeam, form: forms.ModelForm, change: bool
    ) -> None:
        if change:
            saved = care_team_rename(team=obj, name=form.cleaned_data["name"], actor=request.user)
        else:
            saved = care_team_create(
                name=form.cleaned_data["name"],
                members=form.cleaned_data["members"],
                actor=request.user,
            )
        copy_saved_state(obj, saved)

    def save_related(
        self, request: HttpRequest, form: forms.ModelForm, formsets: Any, change: bool
    ) -> None:
        # Not form.save_m2m(): membership decides who may read which patients, so it changes
        # through the service, which audits the change.
        care_team_members_set(
            team=form.instance, members=form.cleaned_data["members"], actor=request.user
        )


@admin.register(BreakGlassGrant)
class BreakGlassGrantAdmin(MedaiAdminMixin, admin.ModelAdmin):
    """The review list: every emergency access stays here, unreviewed first, until signed off."""

    list_display = (
        "created_at",
        "grantee",
        "patient",
        "category",
        "extension",
        "expires_at",
        "reviewed_by",
        "reviewed_at",
    )
    list_filter = (
        ("reviewed_at", admin.EmptyFieldListFilter),
        ("extends", admin.EmptyFieldListFilter),
        "category",
        "created_at",
    )
    list_select_related = ("grantee", "patient", "reviewed_by")
    readonly_fields = (
        "patient",
        "grantee",
        "category",
        "extends",
        "reason",
        "created_at",
        "expires_at",
        "reviewed_by",
        "reviewed_at",
        "review_note",
    )
    actions = ("sign_off",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[BreakGlassGrant]:
        # Unreviewed first, extensions first among them: the review list is the point of this page.
        return (
            super()
            .get_queryset(request)
            .order_by(
                F("reviewed_at").asc(nulls_first=True),
                F("extends").asc(nulls_last=True),
                "-created_at",
            )
        )

    @admin.display(description="extension", boolean=False)
    def extension(self, grant: BreakGlassGrant) -> str:
        """Flag for review: access prolonged while the previous grant was still active."""
        return f"⚠ extends #{grant.extends_id}" if grant.extends_id else ""

    @admin.action(description="Sign off the selected emergency accesses as reviewed")
    def sign_off(self, request: HttpRequest, queryset: QuerySet[BreakGlassGrant]) -> None:
        signed = refused = 0
        for grant in queryset.filter(reviewed_at__isnull=True):
            try:
                break_glass_review(grant=grant, reviewer=request.user)
                signed += 1
            except (InvalidInput, Conflict):
                refused += 1
        self.message_user(
            request,
            f"Signed off {signed}; {refused} could not be (own access or already reviewed).",
        )

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False  # grants come from the doctor's emergency-access form only

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
