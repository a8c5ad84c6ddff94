"""Clinical terms in the UI language, from the bilingual terminology table (medai_site/terminology).

``{{ code|icd10_name:display }}`` an ICD-10 code's name; ``{{ key|term:"care_team" }}`` any
other term (visit_type, care_team, alert, severity, observation, class), English as given when
the table has no Chinese name.
"""

from __future__ import annotations

from django import template

from medai_site import terminology

register = template.Library()


@register.filter
def icd10_name(code: str, english: str) -> str:
    return terminology.icd10_name(str(code), str(english))


@register.filter
def term(key: str, kind: str) -> str:
    """The term's name in the UI language; for a key the table lacks, the key itself."""
    english = terminology.rows(kind).get(str(key), (str(key), ""))[0]
    return terminology.term(kind, str(key), english)


@register.filter
def diagnosis_name(code: str, english: str) -> str:
    """A ranked diagnosis of the advice: an ICD-10 category, or the "other" class."""
    if code == "other":
        return terminology.term("class", "other", str(english))
    return terminology.icd10_name(str(code), str(english))
