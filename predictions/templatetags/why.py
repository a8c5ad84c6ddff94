"""``{{ contribution|why_text }}``: one reason of an advice in the reader's language.

The payload stores each recorded finding's English label (a msgid of the translation catalogue)
and its value as entered, with its unit (predictions/why.py); this words it for the page.
"""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.translation import gettext

from medai_site.templatetags.medai import LABELS

register = template.Library()


@register.filter
def why_text(c: Any) -> str:
    kind = getattr(c, "kind", "")
    label = gettext(c.label) if c.label else ""
    if kind == "observation":
        return f"{label} {c.value}"
    if kind == "age":
        return gettext("Age %(age)s") % {"age": c.value}
    if kind in ("sex", "visit_type"):
        value = LABELS.get(kind, {}).get(str(c.value), c.value)
        return f"{label}: {value}"
    if kind == "text":
        return gettext("%(field)s: “%(text)s”") % {"field": label, "text": c.value}
    # Advice stored before reasons were limited to recorded findings: as it was shown then.
    shown = "" if c.value in (None, "") else f" ({str(c.value)[:40]})"
    return f"{label}{shown}"
