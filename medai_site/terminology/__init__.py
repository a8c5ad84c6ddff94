"""The bilingual clinical terminology: English and Simplified Chinese names of the ICD-10 codes
MedAI predicts or its catalogue and rules use, the catalogue's observations, visit types,
care-team names, alert (rule) titles and severities.

Clinical terms are data, not UI text: they live in ``zh_hans.csv`` (kind, key, en, zh_hans,
source), one row per term, and each row names its source:

- ``ICD10-ZH``: the Chinese names of the WHO ICD-10 as published in China — 《疾病和有关健康问题的
  国际统计分类》第十次修订本（第二版，人民卫生出版社）and the national standard GB/T 14396-2016
  《疾病分类与代码》; the names were transcribed by the MedAI team, not imported from a licensed file.
- ``LOINC-ZH``: the catalogue's observation names as the Chinese LOINC linguistic variant words
  them (the same strings as the UI translation in locale/zh_Hans).
- ``MEDAI``: MedAI's own wording (care-team names, visit types, alert titles), reviewed with the
  same references for the clinical terms they contain.

The UI's own text (buttons, headings, messages) stays in Django's i18n (locale/zh_Hans). Adding a
predicted category, a catalogue entry or a rule means adding its row here: tests fail otherwise.
"""

from __future__ import annotations

import csv
from functools import lru_cache
from pathlib import Path

from django.utils import translation

TABLE = Path(__file__).with_name("zh_hans.csv")
KINDS = ("icd10", "class", "observation", "visit_type", "care_team", "alert", "severity")


@lru_cache(maxsize=1)
def _table() -> dict[tuple[str, str], tuple[str, str]]:
    with TABLE.open(encoding="utf-8", newline="") as handle:
        return {(r["kind"], r["key"]): (r["en"], r["zh_hans"]) for r in csv.DictReader(handle)}


def chinese(kind: str, key: str) -> str:
    """The Simplified Chinese name of a term, or "" when the table has none."""
    entry = _table().get((kind, key))
    return entry[1] if entry else ""


def ui_chinese() -> bool:
    return (translation.get_language() or "").lower().startswith("zh")


def term(kind: str, key: str, english: str) -> str:
    """``english`` in the UI language: the table's Chinese name under 简体中文, when it has one."""
    if ui_chinese():
        return chinese(kind, key) or english
    return english


def icd10_name(code: str, english: str) -> str:
    """An ICD-10 code's display name in the UI language (the category's, for a subcategory the
    table lacks, is not used: a subcategory keeps its English name rather than a wrong one)."""
    return term("icd10", code, english)


def icd10_chinese_search(query: str) -> list[str]:
    """ICD-10 codes whose Chinese name contains every word of ``query`` (table order)."""
    words = query.split()
    return [
        key
        for (kind, key), (_en, zh) in _table().items()
        if kind == "icd10" and words and all(word in zh for word in words)
    ]


def rows(kind: str) -> dict[str, tuple[str, str]]:
    """Every term of one kind: key -> (English, Chinese)."""
    return {key: names for (k, key), names in _table().items() if k == kind}
