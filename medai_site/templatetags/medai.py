"""Template filters for the clinician pages: translated labels, units, probabilities.

Choice values stored on models (sex, visit type, status...) and the observation catalogue's display
names are English in the database; these filters show them in the active language.
"""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.translation import gettext, gettext_lazy, gettext_noop, pgettext_lazy

register = template.Library()

# Stored values -> translated labels.
LABELS: dict[str, dict[str, Any]] = {
    "sex": {
        "female": gettext_lazy("Female"),
        "male": gettext_lazy("Male"),
        "other": gettext_lazy("Other"),
        "unknown": gettext_lazy("Unknown"),
    },
    "sex_short": {
        "female": pgettext_lazy("sex, one letter", "F"),
        "male": pgettext_lazy("sex, one letter", "M"),
        "other": pgettext_lazy("sex, one letter", "O"),
        "unknown": pgettext_lazy("sex, one letter", "U"),
    },
    "visit_type": {
        "outpatient": gettext_lazy("Outpatient"),
        "inpatient": gettext_lazy("Inpatient"),
        "emergency": gettext_lazy("Emergency"),
        "telemedicine": gettext_lazy("Telemedicine"),
    },
    "visit_status": {"open": gettext_lazy("Open"), "closed": gettext_lazy("Closed")},
    "diagnosis_status": {
        "provisional": gettext_lazy("Provisional"),
        "confirmed": gettext_lazy("Confirmed"),
        "refuted": gettext_lazy("Refuted"),
    },
    "diagnosis_rank": {"primary": gettext_lazy("Primary"), "secondary": gettext_lazy("Secondary")},
    "diagnosis_source": {
        "doctor": gettext_lazy("Doctor"),
        "advice": gettext_lazy("Accepted advice"),
    },
    "interpretation": {
        "N": gettext_lazy("Normal"),
        "L": gettext_lazy("Low"),
        "H": gettext_lazy("High"),
        "LL": gettext_lazy("Critically low"),
        "HH": gettext_lazy("Critically high"),
        "": "",
    },
    "severity": {
        "critical": gettext_lazy("Critical"),
        "high": gettext_lazy("High"),
        "warning": gettext_lazy("Warning"),
        "mild": gettext_lazy("Mild"),
        "moderate": gettext_lazy("Moderate"),
        "severe": gettext_lazy("Severe"),
    },
    "decision": {"accept": gettext_lazy("Accepted"), "override": gettext_lazy("Overridden")},
    "job_status": {
        "queued": gettext_lazy("Queued"),
        "running": gettext_lazy("Running"),
        "succeeded": gettext_lazy("Succeeded"),
        "failed": gettext_lazy("Failed"),
    },
    "metric": {
        "roc_auc": gettext_lazy("ROC AUC"),
        "accuracy": gettext_lazy("Accuracy"),
        "balanced_accuracy": gettext_lazy("Balanced accuracy"),
        "top3_accuracy": gettext_lazy("Top-3 accuracy"),
        "brier": gettext_lazy("Brier score"),
        "ece": gettext_lazy("Calibration error (ECE)"),
        "n": gettext_lazy("Visits"),
        "sensitivity": gettext_lazy("Sensitivity"),
        "log_loss": gettext_lazy("Log loss"),
    },
    "activation": {
        "auto_promote": gettext_lazy("Promoted automatically (not worse than the active model)"),
        "promote": gettext_lazy("Promoted by an admin"),
        "rollback": gettext_lazy("Rolled back by an admin"),
        "disable": gettext_lazy("Switched off"),
        "enable": gettext_lazy("Switched on again"),
    },
}

# Dynamic strings that come from code or data and have a translation in the catalogue.
# gettext_noop marks them for makemessages; the ``translate`` filter looks them up at render.
CATALOGUE_NAMES = (
    gettext_noop("Body temperature"),
    gettext_noop("Heart rate"),
    gettext_noop("Respiratory rate"),
    gettext_noop("Systolic blood pressure"),
    gettext_noop("Diastolic blood pressure"),
    gettext_noop("Oxygen saturation"),
    gettext_noop("Body weight"),
    gettext_noop("Body height"),
    gettext_noop("Body mass index"),
    gettext_noop("Glucose"),
    gettext_noop("Total cholesterol"),
    gettext_noop("White blood cell count"),
    gettext_noop("Hemoglobin"),
    gettext_noop("Creatinine"),
    gettext_noop("C-reactive protein"),
    gettext_noop("Troponin I"),
    gettext_noop("Sodium"),
    gettext_noop("Potassium"),
    gettext_noop("Hemoglobin A1c"),
    gettext_noop("Lactate"),
    gettext_noop("Differential diagnosis"),
    gettext_noop("Coronary artery disease risk"),
    gettext_noop("Other (less frequent diagnoses)"),
)

# UCUM codes as people read them.
UNIT_DISPLAY = {
    "Cel": "°C",
    "[degF]": "°F",
    "/min": "/min",
    "mm[Hg]": "mmHg",
    "%": "%",
    "kg": "kg",
    "[lb_av]": "lb",
    "cm": "cm",
    "kg/m2": "kg/m²",
    "mg/dL": "mg/dL",
    "mmol/L": "mmol/L",
    "10*3/uL": "×10³/µL",
    "g/dL": "g/dL",
    "mg/L": "mg/L",
    "ng/mL": "ng/mL",
}


def unit_display(unit: str) -> str:
    return UNIT_DISPLAY.get(unit, unit)


@register.filter
def label(value: Any, kind: str) -> Any:
    """``{{ patient.sex|label:"sex" }}``: the translated label of a stored choice value."""
    return LABELS.get(kind, {}).get("" if value is None else str(value), value)


@register.filter
def translate(value: Any) -> str:
    """Translate a dynamic string that has an entry in the catalogue (else show it as is)."""
    return gettext(str(value)) if value else ""


@register.filter
def unit(value: str) -> str:
    return unit_display(value)


@register.filter
def percent(value: Any, digits: int = 0) -> str:
    """0.4231 -> '42%' (digits after the point as asked)."""
    try:
        number = float(value) * 100
    except (TypeError, ValueError):
        return "–"
    from django.utils.formats import number_format

    if 0 < number < 0.5 and not int(digits):
        return "<1%"  # "0%" would read as "impossible"
    return f"{number_format(number, int(digits))}%"


@register.filter
def bar_width(value: Any) -> str:
    """A probability as an SVG width attribute (CSP forbids inline style="width:...")."""
    try:
        return f"{max(0.0, min(1.0, float(value))) * 100:.1f}%"
    except (TypeError, ValueError):
        return "0%"


@register.filter
def metric(value: Any, digits: int = 3) -> str:
    from django.utils.formats import number_format

    try:
        number = float(value)
    except (TypeError, ValueError):
        return "–"
    if number != number:  # NaN: metric undefined for this group (e.g. one class only)
        return "–"
    return number_format(number, int(digits))


@register.filter
def get(mapping: Any, key: Any) -> Any:
    try:
        return mapping.get(key)
    except AttributeError:
        return None


@register.simple_tag
def idle_seconds() -> int:
    """The inactivity limit, for the page's idle timer (the server enforces it regardless)."""
    from django.conf import settings

    return int(settings.SESSION_COOKIE_AGE)


@register.filter
def age(patient: Any) -> int | str:
    """Age in whole years today (local date)."""
    from django.utils import timezone

    try:
        return patient.age_on(timezone.localdate())
    except (AttributeError, TypeError, ValueError):
        return "–"


@register.filter
def highlight_words(text: Any, words: Any) -> str:
    """The doctor's text with the words that drove a suggestion marked in place.

    ``words`` carry ``start``/``end`` offsets into the text as it was when the advice was
    computed; a word whose offsets no longer match (the text was edited since) is left unmarked
    rather than marking the wrong characters. Every segment is escaped.
    """
    from django.utils.html import escape
    from django.utils.safestring import mark_safe
    from django.utils.translation import gettext as _

    text = str(text or "")
    marks = sorted(
        (w for w in words or [] if text[w.start : w.end] == w.text and w.end > w.start),
        key=lambda w: w.start,
    )
    parts: list[str] = []
    cursor = 0
    for w in marks:
        if w.start < cursor:  # overlapping words: keep the first
            continue
        parts.append(escape(text[cursor : w.start]))
        direction = "up" if w.contribution > 0 else "down"
        hint = _("raises the top suggestion") if w.contribution > 0 else _("lowers it")
        if w.negated:
            hint = f"{hint} ({_('negated')})"
        parts.append(
            f'<mark class="term term-{direction}{" term-negated" if w.negated else ""}" '
            f'title="{escape(hint)}">{escape(text[w.start : w.end])}</mark>'
        )
        cursor = w.end
    parts.append(escape(text[cursor:]))
    return mark_safe("".join(parts))  # noqa: S308  # nosec B308, B703  # segments escaped above
