"""Roles are Django groups; these names are the whole vocabulary."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import connection
from django.db.models import OuterRef, QuerySet

if TYPE_CHECKING:
    from django.contrib.auth.models import User as Account  # the project's user model

DOCTOR = "doctor"
ADMIN = "admin"
INTEGRATION = "integration client"
ALL_ROLES = (DOCTOR, ADMIN, INTEGRATION)

User = AbstractBaseUser | AnonymousUser


def account_of(actor: object | None) -> Account | None:
    """The signed-in account behind ``actor``, or None for the system (a task, a command) or an
    anonymous caller: what a service records as a row's author (created_by, actor, ...)."""
    if isinstance(actor, get_user_model()) and actor.is_authenticated:
        return actor
    return None


def with_role_names(users: QuerySet[Any], user_field: str = "pk") -> QuerySet[Any]:
    """``users`` (or rows whose ``user_field`` is a user id) annotated with ``role_names``, the
    user's groups read in the same statement (PostgreSQL; elsewhere unchanged, and
    :func:`has_role` asks on first use). Nothing is cached across requests: a role removed counts
    from the next request."""
    if connection.vendor != "postgresql":
        return users
    from django.contrib.auth.models import Group
    from django.contrib.postgres.expressions import ArraySubquery

    return users.annotate(
        role_names=ArraySubquery(Group.objects.filter(user=OuterRef(user_field)).values("name"))
    )


def roles_preload(user: object, names: list[str]) -> None:
    """The user's role names, read by the caller in the same query as the user (the API's
    token look-up): :func:`has_role` then asks the database nothing for this request."""
    user._medai_roles = set(names)  # type: ignore[attr-defined]


def has_role(user: object, role: str) -> bool:
    if not getattr(user, "is_authenticated", False):
        return False
    cache = getattr(user, "_medai_roles", None)
    if cache is None:
        cache = set(user.groups.values_list("name", flat=True))
        user._medai_roles = cache
    return role in cache


def is_admin(user: object) -> bool:
    """Hospital administrators: superusers or members of the admin group."""
    return bool(getattr(user, "is_superuser", False)) or has_role(user, ADMIN)


def is_doctor(user: object) -> bool:
    return has_role(user, DOCTOR)


def has_clinical_role(viewer: object) -> bool:
    """The role half of every access decision: an active account that is a doctor, an
    integration client or a hospital admin. The care-team half is patients.access; pages
    additionally exclude integration clients (medai_site.pages)."""
    if not (getattr(viewer, "is_authenticated", False) and getattr(viewer, "is_active", False)):
        return False
    return is_admin(viewer) or is_doctor(viewer) or has_role(viewer, INTEGRATION)


def is_integration_account(user: object) -> bool:
    """An account with no person behind it (another hospital system): the integration-client
    role and no personal role. Admins issue its API tokens; a person issues their own."""
    return has_role(user, INTEGRATION) and not (is_doctor(user) or is_admin(user))


def may_train_models(user: object) -> bool:
    """Starting training (pages, API and tokens alike): admins, or a doctor granted
    ``predictions.add_trainingjob``. Promotion and rollback stay admin-only."""
    return is_admin(user) or (is_doctor(user) and user.has_perm("predictions.add_trainingjob"))
