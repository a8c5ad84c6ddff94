"""Promotion rule: a challenger replaces the champion only when it is not worse (pure decision).

A challenger is "not worse" than the champion when, on the same held-out visits, its ROC AUC is
at most ``MEDAI_PROMOTION_AUC_MARGIN`` below and its expected calibration error at most
``MEDAI_PROMOTION_ECE_MARGIN`` above the champion's. Anything else waits as a candidate. The
activation itself is written by predictions/services/registry.py.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from predictions.ml.metric_format import format_metric


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
            f"ROC AUC {format_metric(c_auc)} is more than {auc_margin} below the active model's {format_metric(h_auc)}."
        )
    else:
        reasons.append(
            f"ROC AUC {format_metric(c_auc)} vs active {format_metric(h_auc)}: within the {auc_margin} margin or better."
        )
    c_ece, h_ece = challenger.get("ece"), champion.get("ece")
    if c_ece is None or h_ece is None or c_ece > h_ece + ece_margin:
        promote = False
        reasons.append(
            f"Calibration error {format_metric(c_ece)} is more than {ece_margin} above the active model's {format_metric(h_ece)}."
        )
    else:
        reasons.append(
            f"Calibration error {format_metric(c_ece)} vs active {format_metric(h_ece)}: within the {ece_margin} margin or better."
        )
    result.update(promote=promote, reasons=reasons)
    return result
