"""Signal handlers: thin calls into services, for writes MedAI does not own the code of.

Why a signal here: roles and activation are Django's own ``User.groups`` and ``User.is_active``,
changed by django.contrib.auth's admin (the user form saves groups through ``form.save_m2m()``,
the group form through the reverse relation), by ``manage.py shell`` and by our services.
``m2m_changed`` and ``post_save`` are the only hooks every one of those writers passes through,
so a removed role or a deactivated account can never keep a live API token. Each handler only
decides whether standing was lost and calls :func:`medai_site.accounts.user_tokens_revoke`; the
actor is the one named by :func:`medai_site.accounts.acting_as` (set by the admin's user pages
and the services), else unknown (shell). Bulk ``QuerySet.update(is_active=False)`` sends no
signal: use ``accounts.user_deactivate``.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models.signals import m2m_changed, post_save

from .request_context import current_actor
from .roles import ALL_ROLES

_CLEARED_ATTR = "_medai_role_holders_cleared"


def _revoke(users: Any) -> None:
    from .accounts import user_tokens_revoke

    actor = current_actor.get()
    for user in users:
        user_tokens_revoke(user=user, actor=actor)


def groups_changed(
    sender: Any, instance: Any, action: str, reverse: bool, pk_set: set[int] | None, **kwargs: Any
) -> None:
    """A role taken away, from the user's side (user form) or the group's side (group form)."""
    User = get_user_model()
    if not reverse:  # instance is a user; pk_set are groups
        removed_roles = Group.objects.filter(pk__in=pk_set or (), name__in=ALL_ROLES)
        if action == "post_remove" and removed_roles.exists():
            _revoke([instance])
        elif action == "pre_clear":
            setattr(instance, _CLEARED_ATTR, instance.groups.filter(name__in=ALL_ROLES).exists())
        elif action == "post_clear" and getattr(instance, _CLEARED_ATTR, False):
            _revoke([instance])
        return
    if instance.name not in ALL_ROLES:  # instance is a group; pk_set are users
        return
    if action == "post_remove":
        _revoke(User.objects.filter(pk__in=pk_set))
    elif action == "pre_clear":
        setattr(instance, _CLEARED_ATTR, list(instance.user_set.values_list("pk", flat=True)))
    elif action == "post_clear":
        _revoke(User.objects.filter(pk__in=getattr(instance, _CLEARED_ATTR, [])))


def user_saved(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
    """An inactive account keeps no live token (a no-op query when it has none)."""
    if not created and not instance.is_active:
        _revoke([instance])


def connect() -> None:
    User = get_user_model()
    m2m_changed.connect(
        groups_changed, sender=User.groups.through, dispatch_uid="medai_groups_changed"
    )
    post_save.connect(user_saved, sender=User, dispatch_uid="medai_user_saved")
