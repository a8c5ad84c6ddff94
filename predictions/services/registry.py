"""The model registry: the only writer of task activation, the kill switch and ActivationEvent.

One active version per task, promotion only when not worse (predictions/promotion.py decides),
and the full history: every activation, rollback and switch records who and why.
"""

from __future__ import annotations

from django.db import transaction

from medai_site.errors import Conflict, InvalidInput
from medai_site.roles import account_of
from predictions.models import ActivationEvent, ModelVersion, PredictionTask


@transaction.atomic
def version_activate(
    *, version: ModelVersion, action: str, reason: str, actor: object | None
) -> ActivationEvent:
    if not (reason or "").strip():
        raise InvalidInput(
            "A reason is required to change the active model.", fields={"reason": ["Required."]}
        )
    task = PredictionTask.objects.select_for_update().get(pk=version.task_id)
    if task.active_version_id == version.pk:
        raise Conflict(f"{version} is already active.")
    previous = task.active_version
    task.active_version = version
    task.save(update_fields=["active_version"])
    return ActivationEvent.objects.create(
        task=task,
        action=action,
        from_version=previous,
        to_version=version,
        reason=reason.strip(),
        actor=account_of(actor),
    )


def version_promote(*, version: ModelVersion, reason: str, actor: object | None) -> ActivationEvent:
    """An admin promotes a candidate, overriding the automatic comparison, with a reason."""
    return version_activate(
        version=version, action=ActivationEvent.Action.PROMOTE, reason=reason, actor=actor
    )


@transaction.atomic
def version_rollback(*, task: PredictionTask, reason: str, actor: object | None) -> ActivationEvent:
    """Re-activate the version that was active before the current one."""
    task = PredictionTask.objects.select_for_update().get(pk=task.pk)
    # The activation that made the current version active (kill-switch events name the active
    # version on both sides and are not activations).
    last = (
        task.activations.filter(
            to_version=task.active_version,
            action__in=[
                ActivationEvent.Action.AUTO_PROMOTE,
                ActivationEvent.Action.PROMOTE,
                ActivationEvent.Action.ROLLBACK,
            ],
        )
        .exclude(from_version=None)
        .first()
    )
    if task.active_version is None or last is None or last.from_version is None:
        raise Conflict("There is no earlier version to roll back to.")
    return version_activate(
        version=last.from_version,
        action=ActivationEvent.Action.ROLLBACK,
        reason=reason,
        actor=actor,
    )


@transaction.atomic
def task_set_enabled(
    *, task: PredictionTask, enabled: bool, reason: str, actor: object | None
) -> ActivationEvent:
    """The kill switch: stop (or resume) advice from a task without deleting any version."""
    if not (reason or "").strip():
        raise InvalidInput(
            "A reason is required to switch a model off or on.", fields={"reason": ["Required."]}
        )
    task = PredictionTask.objects.select_for_update().get(pk=task.pk)
    if task.enabled == enabled:
        raise Conflict(f"{task} is already {'enabled' if enabled else 'disabled'}.")
    task.enabled = enabled
    task.disabled_reason = "" if enabled else reason.strip()
    task.save(update_fields=["enabled", "disabled_reason"])
    return ActivationEvent.objects.create(
        task=task,
        action=ActivationEvent.Action.ENABLE if enabled else ActivationEvent.Action.DISABLE,
        from_version=task.active_version,
        to_version=task.active_version,
        reason=reason.strip(),
        actor=account_of(actor),
    )
