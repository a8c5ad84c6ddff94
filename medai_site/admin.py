"""Admin pieces shared by every MedAI app, and the read-only audit trail.

Hospital admins (the ``admin`` group, see :mod:`medai_site.roles`) run MedAI from the Django admin
without per-model permission rows: :class:`MedaiAdminMixin` lets them view, add and change what
an admin page offers, while deletion still needs an explicit Django permission (records are
retained; superusers have every permission). Each admin request runs with the audit interface set
to ``admin``, so the services and selectors it calls record where the access came from.

Reading patient data in the admin is audited here, once, for every model whose rows belong to a
patient (found through its foreign keys, :func:`patient_path`): opening a row records a VIEW of
it, and a list page or an autocomplete answer records one LIST record with the ids of every
patient it showed (:func:`medai_site.audit.audit_record_list`). No model admin has to remember.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.views.autocomplete import AutocompleteJsonView
from django.contrib.admin.views.main import ChangeList
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from .accounts import acting_as
from .admin_login import MedaiAdminSite as SignInAdminSite
from .audit import audit_record, audit_record_list, current_interface
from .audit_report import AuditReportForm, audit_csv, audit_events_for, patient_labels
from .models import ApiToken, AuditEvent
from .roles import is_admin

PATIENT_MODEL = "patients.patient"
# Foreign keys followed from a model to find its patient: Feedback -> Advice -> Visit -> Patient.
PATIENT_PATH_DEPTH = 4
_DERIVED = object()  # MedaiAdminMixin.audit_patient_path's default: derive from the model


def patient_path(model: type[models.Model]) -> str | None:
    """The ORM lookup from ``model`` to the id of the patient its rows belong to: ``"pk"`` for the
    patient itself, the shortest chain of foreign keys otherwise (``"visit__patient"``), None
    for a model that holds no patient's data. By label, because the base imports no app."""
    if model._meta.label_lower == PATIENT_MODEL:
        return "pk"
    frontier: list[tuple[type[models.Model], str]] = [(model, "")]
    seen = {model}
    for _ in range(PATIENT_PATH_DEPTH):
        following = []
        for current, prefix in frontier:
            for field in current._meta.concrete_fields:
                target = field.related_model
                if not (field.many_to_one or field.one_to_one) or not isinstance(target, type):
                    continue
                lookup = f"{prefix}{field.name}"
                if target._meta.label_lower == PATIENT_MODEL:
                    return lookup
                if target not in seen:
                    seen.add(target)
                    following.append((target, f"{lookup}__"))
        frontier = following
    return None


@contextmanager
def admin_audit_context() -> Iterator[None]:
    """Audit events written inside are attributed to the admin interface."""
    token = current_interface.set(AuditEvent.Interface.ADMIN)
    try:
        yield
    finally:
        current_interface.reset(token)


def copy_saved_state(target: models.Model, source: models.Model) -> None:
    """Make the admin's in-memory object the row a service just wrote (pk, derived fields).

    The admin keeps using the object it built from the form (to save m2m, log and redirect),
    while the service returns its own instance.
    """
    for field in type(source)._meta.concrete_fields:
        setattr(target, field.attname, getattr(source, field.attname))
    target._state.adding = False
    target._state.db = source._state.db


class MedaiAdminMixin:
    """Hospital admins may use every MedAI admin page; each request is audited as ``admin``, and
    every page showing patient data records which patients' (see the module docstring)."""

    # The lookup from a row to its patient's id; by default derived from the foreign keys
    # (patient_path). None: the rows hold no patient data, nothing to record.
    audit_patient_path: str | object | None = _DERIVED

    def patient_lookup(self) -> str | None:
        explicit = self.audit_patient_path
        if explicit is _DERIVED:
            return patient_path(self.model)
        return explicit if isinstance(explicit, str) else None

    def _patient_ids(self, pks: list[Any]) -> list[int]:
        lookup = self.patient_lookup()
        if lookup is None or not pks:
            return []
        if lookup == "pk":
            return [int(pk) for pk in pks]
        manager = self.model._default_manager
        return [
            pid
            for pid in manager.filter(pk__in=pks).values_list(lookup, flat=True).distinct()
            if pid is not None
        ]

    def audit_shown(
        self, request: HttpRequest, objects: Iterable[models.Model], *, view: str = "list"
    ) -> None:
        """One LIST record naming every patient whose rows ``objects`` are (none if no patient)."""
        if self.patient_lookup() is None:
            return
        patient_ids = self._patient_ids([obj.pk for obj in objects])
        if patient_ids:
            audit_record_list(
                actor=request.user,
                object_type=self.model._meta.label_lower,
                object_id=view,
                patient_ids=patient_ids,
            )

    def get_object(
        self, request: HttpRequest, object_id: str, from_field: str | None = None
    ) -> Any:
        """Change, delete and history pages all open their row here: a VIEW of its patient."""
        obj = super().get_object(request, object_id, from_field)
        if obj is not None and self.patient_lookup() is not None:
            patient_ids = self._patient_ids([obj.pk])
            audit_record(
                actor=request.user,
                action=AuditEvent.Action.VIEW,
                obj=obj,
                patient_id=patient_ids[0] if patient_ids else None,
            )
        return obj

    def has_module_permission(self, request: HttpRequest) -> bool:
        return is_admin(request.user) or super().has_module_permission(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_admin(request.user) or super().has_view_permission(request, obj)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return is_admin(request.user) or super().has_add_permission(request, *args)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_admin(request.user) or super().has_change_permission(request, obj)

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        with admin_audit_context():
            response = super().changelist_view(request, extra_context)
            changelist = (getattr(response, "context_data", None) or {}).get("cl")
            if changelist is not None:
                # Evaluates the page's rows once; rendering reuses the same evaluated queryset.
                self.audit_shown(request, changelist.result_list)
            return response

    def changeform_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        with admin_audit_context():
            return super().changeform_view(request, *args, **kwargs)

    def delete_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        with admin_audit_context():
            return super().delete_view(request, *args, **kwargs)

    def history_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        with admin_audit_context():
            return super().history_view(request, *args, **kwargs)


class ReadOnlyAdminMixin(MedaiAdminMixin):
    """Rows written by services only: viewable by hospital admins, never added/changed/deleted."""

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyInlineMixin:
    """Inlines that show rows written elsewhere (through services) and never edit them."""

    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_admin(request.user) or super().has_view_permission(request, obj)


class AuditedAutocompleteJsonView(AutocompleteJsonView):
    """The admin's autocomplete answer (e.g. choosing a patient for an allergy) shows records:
    recorded like a list page, once per answer, through the model admin's :meth:`audit_shown`."""

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        shown = list(context["object_list"])
        context["object_list"] = shown
        audit_shown = getattr(self.model_admin, "audit_shown", None)
        if audit_shown is not None:
            audit_shown(self.request, shown, view="autocomplete")
        return context


class MedaiAdminSite(SignInAdminSite):
    """The admin: password and second factor in one submit (admin_login.py), and audited
    autocomplete answers."""

    def autocomplete_view(self, request: HttpRequest) -> HttpResponse:
        with admin_audit_context():
            return AuditedAutocompleteJsonView.as_view(admin_site=self)(request)


class AuditChangeList(ChangeList):
    """The audit list's page, with each record's patient MRN looked up in one query."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        events = list(self.result_list)  # evaluated once: the template reuses these objects
        mrns = patient_labels({e.patient_id for e in events if e.patient_id})
        for event in events:
            event.mrn = mrns.get(event.patient_id)


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The audit trail is append-only: nobody adds, changes or deletes it here.

    Patients are shown by MRN (with a link to their report), lists by how many patients they
    showed; the MRNs shown make this list itself an audited read of those patients.
    """

    audit_patient_path = "patient_id"
    list_display = (
        "at",
        "actor",
        "action",
        "interface",
        "patient_display",
        "object_display",
        "api_token",
    )
    list_filter = ("action", "interface", "object_type", "at")
    date_hierarchy = "at"
    search_fields = ("=object_id", "=request_id", "=actor__username")
    search_help_text = "Exact patient id, object id, request id or username."
    list_select_related = ("actor", "api_token")
    readonly_fields = [f.name for f in AuditEvent._meta.fields]

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return AuditChangeList

    @admin.display(description="patient", ordering="patient_id")
    def patient_display(self, event: AuditEvent) -> str:
        if event.patient_ids:
            return f"{len(event.patient_ids)} patients (list)"
        if event.patient_id is None:
            return "—"
        mrn = getattr(event, "mrn", None) or patient_labels([event.patient_id]).get(
            event.patient_id
        )
        return format_html(
            '<a href="{}?patient={}" title="Audit report of patient id {}">{}</a>',
            reverse("admin:medai_site_auditevent_report"),
            event.patient_id,
            event.patient_id,
            mrn or f"patient id {event.patient_id} (not registered)",
        )

    @admin.display(description="object")
    def object_display(self, event: AuditEvent) -> str:
        kind = event.object_type.rsplit(".", 1)[-1] if event.object_type else ""
        return f"{kind} {event.object_id}".strip() or "—"

    def get_search_results(
        self, request: HttpRequest, queryset: models.QuerySet, search_term: str
    ) -> tuple[models.QuerySet, bool]:
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        term = search_term.strip()
        if term.isdigit():  # a patient id; the column is numeric, so only digits are tried
            results |= queryset.filter(patient_id=int(term))
        return results, may_have_duplicates

    def get_urls(self) -> list[Any]:
        report = self.admin_site.admin_view(self.report_view)
        return [path("report/", report, name="medai_site_auditevent_report"), *super().get_urls()]

    def report_view(self, request: HttpRequest) -> HttpResponse:
        """Per patient ("who looked at my record") or per user ("what did this account open")."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = AuditReportForm(request.GET or None)
        events = None
        if form.is_valid():
            events = audit_events_for(**form.cleaned_data)
            if request.GET.get("format") == "csv":
                response = HttpResponse(
                    audit_csv(events, exported_by=request.user), content_type="text/csv"
                )
                response["Content-Disposition"] = 'attachment; filename="audit-report.csv"'
                return response
        count = events.count() if events is not None else 0  # before this view's own record
        shown = list(events[:500]) if events is not None else None
        mrns = patient_labels({e.patient_id for e in shown or [] if e.patient_id})
        for event in shown or []:
            event.mrn = mrns.get(event.patient_id)
        if mrns:  # the report names these patients (by MRN): itself a read of them
            audit_record_list(
                actor=request.user,
                object_type="medai_site.auditevent",
                object_id="report",
                patient_ids=mrns,
            )
        context = {
            **self.admin_site.each_context(request),
            "title": "Audit report",
            "form": form,
            "events": shown,
            "count": count,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/medai_site/audit_report.html", context)


def integration_accounts() -> models.QuerySet:
    """Accounts an admin may issue tokens for: integration clients, never a person (a person's
    token would let the admin act as them; people create their own under Account → API tokens)."""
    from django.contrib.auth import get_user_model

    from .roles import ADMIN, DOCTOR, INTEGRATION

    return (
        get_user_model()
        .objects.filter(groups__name=INTEGRATION, is_active=True, is_superuser=False)
        .exclude(groups__name__in=[DOCTOR, ADMIN])
        .order_by("username")
    )


class ApiTokenAddForm(forms.ModelForm):
    """Creating a token: for which integration client, which scopes, how long. The secret is
    generated."""

    scopes = forms.MultipleChoiceField(
        choices=ApiToken.Scope.choices, widget=forms.CheckboxSelectMultiple
    )
    days = forms.IntegerField(min_value=1, max_value=366, initial=90, help_text="Lifetime in days.")

    class Meta:
        model = ApiToken
        fields = ("user", "name")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["user"].queryset = integration_accounts()
        self.fields[
            "user"
        ].help_text = "Integration-client accounts only: a person creates their own tokens."


@admin.register(ApiToken)
class ApiTokenAdmin(MedaiAdminMixin, admin.ModelAdmin):
    """Tokens are created here (secret shown once) and revoked, never edited or deleted."""

    list_display = (
        "prefix",
        "name",
        "user",
        "created_by",
        "scope_list",
        "expires_at",
        "revoked_at",
        "last_used_at",
    )
    list_filter = ("revoked_at", "expires_at")
    search_fields = ("=prefix", "name", "=user__username")
    list_select_related = ("user", "created_by")
    actions = ["revoke_tokens"]

    @admin.display(description="scopes")
    def scope_list(self, token: ApiToken) -> str:
        return ", ".join(token.scopes)

    def get_form(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = ApiTokenAddForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ("user", "name", "scopes", "days")
        return (
            "prefix",
            "name",
            "user",
            "scopes",
            "created_by",
            "created_at",
            "expires_at",
            "revoked_at",
            "last_used_at",
        )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return () if obj is None else self.get_fields(request, obj)

    def save_model(self, request: HttpRequest, obj: ApiToken, form: Any, change: bool) -> None:
        if change:
            return  # tokens are immutable; revoke and create a new one instead
        from .api_auth import api_token_create
        from .errors import Forbidden, InvalidInput

        try:
            token, secret = api_token_create(
                user=form.cleaned_data["user"],
                name=form.cleaned_data["name"],
                scopes=form.cleaned_data["scopes"],
                days=form.cleaned_data["days"],
                actor=request.user,
            )
        except (InvalidInput, Forbidden) as exc:
            raise ValidationError(exc.message) from None
        copy_saved_state(obj, token)
        messages.warning(
            request,
            f"Token secret (shown once, copy it now): {secret}",
        )

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Revoke selected tokens")
    def revoke_tokens(self, request: HttpRequest, queryset: models.QuerySet) -> None:
        from .api_auth import api_token_revoke

        revoked = 0
        for token in queryset.filter(revoked_at__isnull=True):
            api_token_revoke(token=token, actor=request.user)
            revoked += 1
        messages.success(request, f"Revoked {revoked} token(s).")


# --- Users: Django's own user admin, with the acting admin named for the audit trail ---------
_User = get_user_model()


class MedaiUserAdmin(UserAdmin):
    """django.contrib.auth's user admin, unchanged, except that changes made here name the
    acting admin: removing a role (groups) or deactivating revokes the user's API tokens through
    medai_site.signals, and those revocations are audited as this admin's."""

    def changeform_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        with acting_as(request.user), admin_audit_context():
            return super().changeform_view(request, *args, **kwargs)

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        with acting_as(request.user), admin_audit_context():
            return super().changelist_view(request, extra_context)


class MedaiGroupAdmin(GroupAdmin):
    """Group pages likewise (a role's member list can be edited from the group's side too)."""

    def changeform_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        with acting_as(request.user), admin_audit_context():
            return super().changeform_view(request, *args, **kwargs)

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        with acting_as(request.user), admin_audit_context():
            return super().changelist_view(request, extra_context)


for _model, _admin in ((_User, MedaiUserAdmin), (Group, MedaiGroupAdmin)):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)
    admin.site.register(_model, _admin)
