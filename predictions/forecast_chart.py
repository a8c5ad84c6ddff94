"""The forecast's drivers as a timeline (SVG, server-rendered, no script): one mark per visit.

A mark's position is the visit's date, its radius the size of its contribution (occlusion: how
much the forecast falls without the visit), its colour the direction (raises / lowers the risk).
"""

from __future__ import annotations

from typing import Any

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT, PAD = 320, 70, 14
RAISES, LOWERS = "#b3001b", "#1f5fa8"


def forecast_timeline_svg(entry: dict[str, Any]) -> SafeString:
    drivers = [d for d in entry.get("drivers", []) if d["kind"] == "visit"]
    if not drivers:
        return SafeString("")
    times = [d["time"].timestamp() for d in drivers]
    first, last = min(times), max(times)
    span = max(last - first, 1.0)
    biggest = max(abs(d["contribution"]) for d in drivers) or 1.0
    marks = []
    for d, t in zip(drivers, times, strict=True):
        x = PAD + (WIDTH - 2 * PAD) * (t - first) / span
        r = 2.5 + 9 * abs(d["contribution"]) / biggest
        colour = RAISES if d["contribution"] >= 0 else LOWERS
        label = escape(
            f"{d['time']:%Y-%m-%d}: {d['contribution'] * 100:+.1f} points; "
            + ", ".join(d["events"][:6])
        )
        marks.append(
            f'<circle cx="{x:.1f}" cy="{HEIGHT / 2:.1f}" r="{r:.1f}" fill="{colour}" '
            f'fill-opacity="0.75"><title>{label}</title></circle>'
        )
    axis = (
        f'<line x1="{PAD}" y1="{HEIGHT / 2}" x2="{WIDTH - PAD}" y2="{HEIGHT / 2}" '
        'stroke="#999" stroke-width="1"/>'
    )
    years = (
        f'<text x="{PAD}" y="{HEIGHT - 2}" font-size="10">{drivers[0]["time"]:%Y}</text>'
        f'<text x="{WIDTH - PAD}" y="{HEIGHT - 2}" font-size="10" text-anchor="end">'
        f"{drivers[-1]['time']:%Y}</text>"
    )
    # Every interpolated value above is a number or escaped text.
    return mark_safe(  # noqa: S308  # nosec B308 B703
        f'<svg class="forecast-timeline" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="visits that drove the forecast">{axis}{"".join(marks)}{years}</svg>'
    )
