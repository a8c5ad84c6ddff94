"""The patient chart over time: visit timeline, observation series, and their SVG plots.

Reads are scoped through ``visible_patients`` and cost a fixed number of queries however many
visits a patient has. Plots are inline SVG drawn on the server (no chart library, nothing for the
Content-Security-Policy to allow): the normal range is a shaded band, abnormal points are squares
and critical ones triangles, so the flag never depends on colour alone.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field

from django.db.models import Prefetch, QuerySet
from django.utils import formats, timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext

from medai_site.templatetags.medai import LABELS, unit_display
from patients.access import visible_patients

from .catalogue import LAB_READING_ORDER, VITAL_READING_ORDER
from .models import Diagnosis, Observation, ObservationDefinition, Visit
from .units import value_text

TIMELINE_LIMIT = 25


@dataclass
class Point:
    when: dt.datetime
    value: float
    interpretation: str
    visit_id: int


@dataclass
class Series:
    definition: ObservationDefinition
    points: list[Point] = field(default_factory=list)

    @property
    def latest(self) -> Point:
        return self.points[-1]

    @property
    def abnormal_count(self) -> int:
        return sum(p.interpretation not in ("", "N") for p in self.points)


def patient_timeline(
    *, viewer: object, patient_id: int, limit: int | None = TIMELINE_LIMIT
) -> tuple[list[Visit], int]:
    """The patient's visits, newest first (at most ``limit``), and how many there are in all."""
    visits = (
        Visit.objects.filter(
            patient_id=patient_id, patient__in=visible_patients(viewer).values("pk")
        )
        .select_related("attending")
        .prefetch_related(
            Prefetch("diagnoses", queryset=Diagnosis.objects.order_by("rank", "code"))
        )
        .order_by("-start", "-id")
    )
    total = visits.count()
    shown = list(visits[:limit] if limit else visits)
    return shown, total


def patient_series(*, viewer: object, patient_id: int) -> tuple[list[Series], list[Series]]:
    """(vital sign series, lab series) of the patient, oldest point first; empty ones left out."""
    rows = (
        Observation.objects.filter(
            visit__patient_id=patient_id,
            visit__patient__in=visible_patients(viewer).values("pk"),
        )
        .order_by("visit__start", "visit_id")
        .values_list("definition_id", "value", "interpretation", "visit__start", "visit_id")
    )
    by_definition: dict[int, list[Point]] = defaultdict(list)
    for definition_id, value, interpretation, when, visit_id in rows:
        by_definition[definition_id].append(Point(when, value, interpretation, visit_id))
    definitions = {
        d.code: d for d in ObservationDefinition.objects.filter(pk__in=list(by_definition))
    }

    def build(codes: tuple[str, ...]) -> list[Series]:
        return [
            Series(definitions[c], by_definition[definitions[c].pk])
            for c in codes
            if c in definitions
        ]

    # The catalogue's reading order; labs appear only when measured.
    return build(VITAL_READING_ORDER), build(LAB_READING_ORDER)


def problem_entries(diagnoses: QuerySet[Diagnosis] | list[Diagnosis]) -> list[dict[str, object]]:
    """Confirmed diagnoses folded to one line per code: first and last date, how many visits."""
    entries: dict[str, dict[str, object]] = {}
    for d in diagnoses:  # newest first
        entry = entries.get(d.code)
        if entry is None:
            entries[d.code] = {
                "code": d.code,
                "display": d.display,
                "source": d.source,
                "last": d.visit.start,
                "first": d.visit.start,
                "visits": 1,
                "visit_id": d.visit_id,
            }
        else:
            entry["first"] = d.visit.start
            entry["visits"] = int(entry["visits"]) + 1
    return list(entries.values())


# --- SVG -------------------------------------------------------------------------------------

WIDTH, HEIGHT = 400, 170
LEFT, RIGHT, TOP, BOTTOM = 46, 10, 10, 24
TICK_GAP = 16  # px between y-axis labels: the 12 px font's height plus a little air
COLOURS = {"normal": "#1f5fa8", "abnormal": "#b35900", "critical": "#b3001b"}


def _kind(interpretation: str) -> str:
    if interpretation in ("LL", "HH"):
        return "critical"
    if interpretation in ("L", "H"):
        return "abnormal"
    return "normal"


def series_svg(series: Series, *, chart_id: str) -> SafeString:
    """One observation over time as an accessible inline SVG."""
    d = series.definition
    points = series.points
    values = [p.value for p in points]
    unit = unit_display(d.unit)
    candidates = values + [v for v in (d.normal_low, d.normal_high) if v is not None]
    low, high = min(candidates), max(candidates)
    pad = (high - low) * 0.12 or max(abs(high) * 0.1, 1.0)
    y_min, y_max = low - pad, high + pad
    if d.plausible_low is not None:
        y_min = max(y_min, d.plausible_low)
    if d.plausible_high is not None:
        y_max = min(y_max, d.plausible_high)
    if y_max <= y_min:
        y_max = y_min + 1
    t0, t1 = points[0].when.timestamp(), points[-1].when.timestamp()
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(when: dt.datetime) -> float:
        if t1 == t0:
            return LEFT + plot_w / 2
        return LEFT + (when.timestamp() - t0) / (t1 - t0) * plot_w

    def y(value: float) -> float:
        clamped = min(max(value, y_min), y_max)
        return TOP + (y_max - clamped) / (y_max - y_min) * plot_h

    name = gettext(d.display)
    title_id, desc_id = escape(f"{chart_id}-title"), escape(f"{chart_id}-desc")
    latest = series.latest
    desc = gettext(
        "%(count)s values from %(first)s to %(last)s; latest %(value)s %(unit)s; "
        "%(abnormal)s outside the normal range."
    ) % {
        "count": len(points),
        "first": formats.date_format(points[0].when, "SHORT_DATE_FORMAT"),
        "last": formats.date_format(latest.when, "SHORT_DATE_FORMAT"),
        "value": value_text(latest.value, d.decimals),
        "unit": unit,
        "abnormal": series.abnormal_count,
    }
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="{title_id} {desc_id}" preserveAspectRatio="xMidYMid meet">',
        f'<title id="{title_id}">{escape(name)} ({escape(unit)})</title>',
        f'<desc id="{desc_id}">{escape(desc)}</desc>',
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#ffffff" '
        'stroke="#c9d3de"/>',
    ]
    if d.normal_low is not None or d.normal_high is not None:
        band_top = y(d.normal_high if d.normal_high is not None else y_max)
        band_bottom = y(d.normal_low if d.normal_low is not None else y_min)
        parts.append(
            f'<rect class="normal-band" x="{LEFT}" y="{band_top:.1f}" width="{plot_w}" '
            f'height="{max(band_bottom - band_top, 0):.1f}" fill="#dff0e3"/>'
        )
    # Normal-range bounds are labelled first, the axis ends after them; a label is drawn only at
    # least TICK_GAP px from every other (troponin's 0 and 0.04 sit 1 px apart and overlapped).
    ticks: list[float] = []
    for candidate in (d.normal_high, d.normal_low, y_min, y_max):
        if candidate is None or not y_min <= candidate <= y_max:
            continue
        if all(abs(y(candidate) - y(t)) >= TICK_GAP for t in ticks):
            ticks.append(candidate)
    for tick in sorted(ticks):
        ty = y(tick)
        parts.append(
            f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{ty:.1f}" y2="{ty:.1f}" '
            'stroke="#e3e8ee" stroke-width="1"/>'
            f'<text x="{LEFT - 6}" y="{ty + 4:.1f}" text-anchor="end" font-size="12" '
            f'fill="#3d4852">{escape(value_text(tick, d.decimals))}</text>'
        )
    # Points of the same day differ only by their time: show it (axis ends and tooltips).
    days = {timezone.localtime(p.when).date() for p in points}
    axis_format = "SHORT_DATE_FORMAT" if len(days) == len(points) else "SHORT_DATETIME_FORMAT"
    for when, anchor in ((points[0].when, "start"), (latest.when, "end")):
        if anchor == "end" and t1 == t0:
            break
        parts.append(
            f'<text x="{x(when) if t1 != t0 else LEFT + plot_w / 2:.1f}" y="{HEIGHT - 6}" '
            f'text-anchor="{anchor if t1 != t0 else "middle"}" font-size="12" fill="#3d4852">'
            f"{escape(formats.date_format(timezone.localtime(when), axis_format))}</text>"
        )
    if len(points) > 1:
        path = " ".join(f"{x(p.when):.1f},{y(p.value):.1f}" for p in points)
        parts.append(f'<polyline points="{path}" fill="none" stroke="#7d8b99" stroke-width="1.5"/>')
    for p in points:
        kind = _kind(p.interpretation)
        px, py = x(p.when), y(p.value)
        flag = LABELS["interpretation"].get(p.interpretation, "")
        tip = (
            f"{formats.date_format(timezone.localtime(p.when), 'SHORT_DATETIME_FORMAT')}: "
            f"{value_text(p.value, d.decimals)} {unit}{f' ({flag})' if flag else ''}"
        )
        colour = COLOURS[kind]
        if kind == "critical":
            shape = (
                f'<polygon class="pt pt-critical" points="{px:.1f},{py - 7:.1f} '
                f'{px - 6.5:.1f},{py + 5:.1f} {px + 6.5:.1f},{py + 5:.1f}" fill="{colour}" '
                'stroke="#ffffff" stroke-width="1"/>'
            )
        elif kind == "abnormal":
            shape = (
                f'<rect class="pt pt-abnormal" x="{px - 4.5:.1f}" y="{py - 4.5:.1f}" width="9" '
                f'height="9" fill="{colour}" stroke="#ffffff" stroke-width="1"/>'
            )
        else:
            shape = (
                f'<circle class="pt pt-normal" cx="{px:.1f}" cy="{py:.1f}" r="3.5" '
                f'fill="{colour}"/>'
            )
        parts.append(f"<g><title>{escape(tip)}</title>{shape}</g>")
    parts.append("</svg>")
    # Reviewed: every interpolated text is escaped above (the ids too); the rest are numbers
    # formatted with numeric format specs and constants (colours, anchors, shapes).
    return mark_safe("".join(parts))  # noqa: S308  # nosec B308, B703  # reviewed above
