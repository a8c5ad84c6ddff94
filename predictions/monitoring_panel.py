"""The monitoring panel of one task: status in plain words, open alerts, plots over time.

Shared by the admin's monitoring page and the clinicians' model page. Plots are inline SVG drawn
on the server (no JavaScript, nothing inline that the Content-Security-Policy would block).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from .models import PredictionTask
from .monitoring import ADVICE_LABEL_WATCH
from .selectors import model_alerts_open, monitoring_history

HISTORY = 60  # snapshots per plot: two months of nightly runs
STATUS_WORDS = {
    "ok": "OK — the model behaves as on the day it was promoted.",
    "watch": "Watch — something moved. Read the alerts; no action is forced yet.",
    "act": "Act — the model may be unsafe as it is. Review it, retrain or switch it off.",
}


@dataclass
class Series:
    title: str
    values: list[float | None]
    bands: tuple[tuple[float, str], ...] = ()
    y_max: float | None = None


def svg_plot(series: Series, *, width: int = 320, height: int = 110) -> SafeString:
    """A small line plot (oldest left, newest right) with optional threshold lines."""
    pad_l, pad_r, pad_t, pad_b = 34, 8, 16, 14
    points = [(i, v) for i, v in enumerate(series.values) if v is not None]
    top = max([v for _, v in points] + [b for b, _ in series.bands] + [series.y_max or 0, 1e-9])
    if series.y_max is not None:
        top = max(series.y_max, top)
    inner_w, inner_h = width - pad_l - pad_r, height - pad_t - pad_b
    count = max(len(series.values) - 1, 1)

    def x(i: int) -> float:
        return pad_l + inner_w * i / count

    def y(v: float) -> float:
        return pad_t + inner_h * (1 - v / top)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(series.title)}">',
        f'<text x="{pad_l}" y="11" font-size="11" fill="#333">{escape(series.title)}</text>',
        f'<line x1="{pad_l}" y1="{pad_t + inner_h}" x2="{width - pad_r}" y2="{pad_t + inner_h}" '
        'stroke="#999" stroke-width="1"/>',
        f'<text x="2" y="{pad_t + 8}" font-size="9" fill="#666">{top:.2f}</text>',
        f'<text x="2" y="{pad_t + inner_h}" font-size="9" fill="#666">0</text>',
    ]
    for value, label in series.bands:
        parts.append(
            f'<line x1="{pad_l}" y1="{y(value):.1f}" x2="{width - pad_r}" y2="{y(value):.1f}" '
            'stroke="#d08020" stroke-width="1" stroke-dasharray="4 3"/>'
            f'<text x="{width - pad_r - 2}" y="{y(value) - 2:.1f}" font-size="9" fill="#d08020" '
            f'text-anchor="end">{escape(label)}</text>'
        )
    if not points:
        parts.append(
            f'<text x="{pad_l + 6}" y="{pad_t + inner_h / 2:.1f}" font-size="10" fill="#666">'
            "no data yet</text>"
        )
    else:
        path = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in points)
        parts.append(f'<polyline points="{path}" fill="none" stroke="#1f5fa8" stroke-width="1.5"/>')
        last_i, last_v = points[-1]
        parts.append(
            f'<circle cx="{x(last_i):.1f}" cy="{y(last_v):.1f}" r="2.5" fill="#1f5fa8"/>'
            f'<text x="{min(x(last_i) + 4, width - 40):.1f}" y="{y(last_v) - 4:.1f}" '
            f'font-size="9" fill="#1f5fa8">{last_v:.3f}</text>'
        )
    parts.append("</svg>")
    # Reviewed: every interpolated value above is either a number (the plot's integer sizes, and
    # values formatted with numeric format specs, which raise on anything else) or text passed
    # through escape(); nothing reaches the markup raw.
    return mark_safe("".join(parts))  # noqa: S308  # nosec B308, B703  # reviewed above


def _value(data: dict[str, Any], *path: str) -> float | None:
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data if isinstance(data, int | float) else None


def task_panel(task: PredictionTask, *, viewer: object) -> dict[str, Any]:
    history = monitoring_history(viewer=viewer, task=task, limit=HISTORY)
    latest = history[-1] if history else None
    # Forecasts are judged like risk tasks (ROC AUC and Brier of a binary outcome).
    risk = task.kind in (PredictionTask.Kind.RISK, PredictionTask.Kind.FORECAST)
    plots = [
        Series(
            "Largest input PSI",
            [_value(s.input_drift, "psi_max") for s in history],
            bands=((0.1, "0.1 watch"), (0.25, "0.25 act")),
        ),
        Series(
            "Live ROC AUC" if risk else "Live top-1 agreement",
            [_value(s.performance, "roc_auc" if risk else "top1", "value") for s in history],
            y_max=1.0,
        ),
        Series("Live Brier score", [_value(s.performance, "brier", "value") for s in history]),
        Series(
            "Confirmed labels from advice",
            [_value(s.performance, "labels", "advice_share") for s in history],
            bands=((ADVICE_LABEL_WATCH, f"{ADVICE_LABEL_WATCH:g} watch"),),
            y_max=1.0,
        ),
    ]
    return {
        "task": task,
        "latest": latest,
        "status_words": STATUS_WORDS.get(latest.status, "") if latest else "Not monitored yet.",
        "open_alerts": model_alerts_open(viewer=viewer, task=task, limit=10),
        "plots": [svg_plot(p) for p in plots],
    }
