"""Accounts' standing: roles and activation, and what losing them takes away.

A role (Django group, medai_site.roles) is half of every access decision (medai_site.roles.has_clinical_role; patients.access);
an API token acts as its user. So when a user loses a role or is deactivated, every live token
of theirs is revoked (each revocation audited): the services below do it, and so does a signal
handler (medai_site.signals) for the paths that bypass them — the Django admin's user form and
group edits, the shell.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from django.contrib.auth.models import Group
from django.db import transaction

from .audit import audit_record
from .errors import InvalidInput
from .models import AuditEvent
from .request_context import current_actor
from .roles import ALL_ROLES


@contextmanager
def acting_as(actor: object | None) -> Iterator[None]:
    """Name the actor of changes that reach the audit trail through a signal (not a service)."""
    token = current_actor.set(actor)
    try:
        yield
    finally:
        current_actor.reset(token)


def user_tokens_revoke(*, user: Any, actor: object | None) -> int:
    """The user's standing shrank: revoke their live API tokens (each audited)."""
    from .api_auth import api_tokens_revoke_for_user

    user.__dict__.pop("_medai_roles", None)  # roles cached on this object are stale now
    return api_tokens_revoke_for_user(user=user, actor=actor)


@transaction.atomic
def user_roles_set(*, user: Any, roles: Iterable[str], actor: object | None) -> None:
    """Give ``user`` exactly ``roles``; losing any role revokes the user's API tokens."""
    wanted = set(roles)
    unknown = wanted - set(ALL_ROLES)
    if unknown:
        raise InvalidInput(
            f"Unknown role(s): {', '.join(sorted(unknown))}.", fields={"roles": ["Unknown."]}
        )
    current = set(user.groups.filter(name__in=ALL_ROLES).values_list("name", flat=True))
    with acting_as(actor):
        user.groups.remove(*Group.objects.filter(name__in=current - wanted))
        user.groups.add(*Group.objects.filter(name__in=wanted - current))
    if current - wanted:
        user_tokens_revoke(user=user, actor=actor)  # already done by the signal: a no-op
    user.__dict__.pop("_medai_roles", None)
    audit_record(actor=actor, action=AuditEvent.Action.UPDATE, obj=user)


@transaction.atomic
def user_deactivate(*, user: Any, actor: object | None) -> None:
    """Deactivate the account: no sign-in, no session, and its API tokens revoked."""
    if user.is_active:
        user.is_active = False
        with acting_as(actor):
            user.save(update_fields=["is_active"])
    user_tokens_revoke(user=user, actor=actor)
    audit_record(actor=actor, action=AuditEvent.Action.UPDATE, obj=user)
