"""The model registry: one active version per task, promotion only when not worse, full history.

A challenger is "not worse" than the champion when, on the same held-out visits, its ROC AUC is
at most ``MEDAI_PROMOTION_AUC_MARGIN`` below and its expected calibration error at most
``MEDAI_PROMOTION_ECE_MARGIN`` above the champion's. Anything else waits as a candidate.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction

from medai_site.errors import Conflict, InvalidInput

from .models import ActivationEvent, ModelVersion, PredictionTask


def compare(
    challenger: dict[str, Any], champion: dict[str, Any] | None, *, champion_unusable: str = ""
) -> dict[str, Any]:
    """Decide promotion from metrics on the same held-out data; reasons in plain words.

    ``champion_unusable`` (why the active model could not be scored) keeps the challenger a
    candidate: without a comparison, promotion is an admin's decision, not automatic.
    """
    auc_margin = settings.MEDAI_PROMOTION_AUC_MARGIN
    ece_margin = settings.MEDAI_PROMOTION_ECE_MARGIN
    result: dict[str, Any] = {
        "auc_margin": auc_margin,
        "ece_margin": ece_margin,
        "challenger": {k: challenger.get(k) for k in ("roc_auc", "ece", "brier", "accuracy")},
    }
    if champion_unusable:
        result.update(
            promote=False,
            reasons=[
                f"The active model could not be scored on the held-out visits ({champion_unusable}); "
                "an admin should review this version and promote it."
            ],
        )
        return result
    if champion is None:
        result.update(
            promote=True,
            reasons=["No active model for this task: the first version becomes active."],
        )
        return result
    result["champion"] = {k: champion.get(k) for k in ("roc_auc", "ece", "brier", "accuracy")}
    reasons, promote = [], True
    c_auc, h_auc = challenger.get("roc_auc"), champion.get("roc_auc")
    if c_auc is None or h_auc is None or c_auc < h_auc - auc_margin:
        promote = False
        reasons.append(
            f"ROC AUC {_f(c_auc)} is more than {auc_margin} below the active model's {_f(h_auc)}."
        )
    else:
        reasons.append(
            f"ROC AUC {_f(c_auc)} vs active {_f(h_auc)}: within the {auc_margin} margin or better."
        )
    c_ece, h_ece = challenger.get("ece"), champion.get("ece")
    if c_ece is None or h_ece is None or c_ece > h_ece + ece_margin:
        promote = False
        reasons.append(
            f"Calibration error {_f(c_ece)} is more than {ece_margin} above the active model's {_f(h_ece)}."
        )
    else:
        reasons.append(
            f"Calibration error {_f(c_ece)} vs active {_f(h_ece)}: within the {ece_margin} margin or better."
        )
    result.update(promote=promote, reasons=reasons)
    return result


def _f(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}"


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
        actor=actor if getattr(actor, "is_authenticated", False) else None,
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
    if task.active_version is None or last is None:
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
        actor=actor if getattr(actor, "is_authenticated", False) else None,
    )
