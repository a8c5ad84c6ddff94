"""SVG plots of the selected model's out-of-fold performance: ROC, calibration, confusion matrix."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never a display (workers and CI have none)

import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import roc_curve

MAX_ROC_CLASSES = 8  # more curves than this is unreadable; the most frequent classes are drawn


def write_plots(
    out_dir: Path,
    labels: Sequence[str] | np.ndarray,
    proba: np.ndarray,
    classes: Sequence[str],
    metrics: dict[str, Any],
    *,
    title: str,
) -> dict[str, Path]:
    """Write roc.svg, calibration.svg and confusion_matrix.svg; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    classes = [str(c) for c in classes]
    codes = np.array([classes.index(str(v)) for v in labels])
    paths = {
        "roc": out_dir / "roc.svg",
        "calibration": out_dir / "calibration.svg",
        "confusion_matrix": out_dir / "confusion_matrix.svg",
    }

    fig, ax = plt.subplots(figsize=(5, 5))
    if len(classes) == 2:
        fpr, tpr, _ = roc_curve(codes == 1, proba[:, 1])
        ax.plot(fpr, tpr, label=f"{classes[1]} (AUC {metrics['roc_auc']:.3f})")
    else:
        frequent = np.argsort(-np.bincount(codes, minlength=len(classes)))[:MAX_ROC_CLASSES]
        for c in frequent:
            if 0 < (codes == c).sum() < len(codes):
                fpr, tpr, _ = roc_curve(codes == c, proba[:, c])
                ax.plot(fpr, tpr, lw=1, label=classes[c])
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.set(
        xlabel="1 - specificity",
        ylabel="sensitivity",
        title=f"ROC, {title} (macro AUC {metrics['roc_auc']:.3f})",
    )
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    fig.savefig(paths["roc"])
    plt.close(fig)

    curve = metrics["calibration_curve"]
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], "k:", lw=1, label="perfect")
    ax.plot(
        curve["predicted"], curve["observed"], "o-", label=f"{title} (ECE {metrics['ece']:.3f})"
    )
    what = f"P({classes[1]})" if len(classes) == 2 else "top-class probability"
    ax.set(
        xlabel=f"predicted {what}", ylabel="observed frequency", title="Calibration (out-of-fold)"
    )
    ax.legend(loc="upper left", fontsize="small")
    fig.tight_layout()
    fig.savefig(paths["calibration"])
    plt.close(fig)

    matrix = np.array(metrics["confusion_matrix"]["matrix"])
    size = max(4.0, min(12.0, 0.5 * len(classes) + 2))
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=90, fontsize="small")
    ax.set_yticks(range(len(classes)), classes, fontsize="small")
    if len(classes) <= 15:  # numbers in cells only while they stay legible
        for (i, j), n in np.ndenumerate(matrix):
            ax.text(j, i, str(n), ha="center", va="center", fontsize="small")
    ax.set(xlabel="predicted", ylabel="true", title="Confusion matrix (out-of-fold)")
    fig.tight_layout()
    fig.savefig(paths["confusion_matrix"])
    plt.close(fig)
    return paths
