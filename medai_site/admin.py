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

from django.contrib import admin
from django.db import models
from django.http import HttpRequest, HttpResponse

from .audit import current_interface
from .models import AuditEvent
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
        return is_admin(request.user) or super().has_module_permission(request)  # type: ignore[misc]

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_admin(request.user) or super().has_view_permission(request, obj)  # type: ignore[misc]

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return is_admin(request.user) or super().has_add_permission(request, *args)  # type: ignore[misc]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_admin(request.user) or super().has_change_permission(request, obj)  # type: ignore[misc]

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        with admin_audit_context():
            return super().changelist_view(request, extra_context)  # type: ignore[misc]

    def changeform_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        with admin_audit_context():
            return super().changeform_view(request, *args, **kwargs)  # type: ignore[misc]

    def delete_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        with admin_audit_context():
            return super().delete_view(request, *args, **kwargs)  # type: ignore[misc]

    def history_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        with admin_audit_context():
            return super().history_view(request, *args, **kwargs)  # type: ignore[misc]


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
        return is_admin(request.user) or super().has_view_permission(request, obj)  # type: ignore[misc]


@admin.register(AuditEvent)
class AuditEventAdmin(MedaiAdminMixin, admin.ModelAdmin):
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

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
