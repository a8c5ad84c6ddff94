"""Admin pieces shared by every MedAI app, and the read-only audit trail.

Hospital admins (the ``admin`` group, see :mod:`medai_site.roles`) run MedAI from the Django admin
without per-model permission rows: :class:`MedaiAdminMixin` lets them view, add and change what
an admin page offers, while deletion still needs an explicit Django permission (records are
retained; superusers have every permission). Each admin request runs with the audit interface set
to ``admin``, so the services and selectors it calls record where the access came from.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path

from .accounts import acting_as
from .audit import current_interface
from .audit_report import AuditReportForm, audit_csv, audit_events_for
from .models import ApiToken, AuditEvent
from .roles import is_admin


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
    """Hospital admins may use every MedAI admin page; each request is audited as ``admin``."""

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
            return super().changelist_view(request, extra_context)

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


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The audit trail is append-only: nobody adds, changes or deletes it here."""

    list_display = ("at", "actor", "action", "interface", "patient_id", "object_type", "object_id")
    list_filter = ("action", "interface", "object_type", "at")
    date_hierarchy = "at"
    search_fields = ("=object_id", "=request_id", "=actor__username")
    search_help_text = "Exact patient id, object id, request id or username."
    list_select_related = ("actor",)
    readonly_fields = [f.name for f in AuditEvent._meta.fields]

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
        context = {
            **self.admin_site.each_context(request),
            "title": "Audit report",
            "form": form,
            "events": events[:500] if events is not None else None,
            "count": events.count() if events is not None else 0,
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
