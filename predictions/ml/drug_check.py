"""Allergy and drug checks on what the doctor writes: pure functions over a data file.

The lexicon (``drug_lexicon.json``, its clinical sources inside) names drugs and drug classes in
English and Chinese, each drug's classes, and the cross-reactions between classes that call for
caution (penicillins and cephalosporins; aspirin/NSAIDs and selective COX-2 inhibitors).
:func:`check_plan` finds the drugs a plan prescribes and compares them with the patient's
allergies:

- the same drug as an allergy, or a drug of the allergy's class (amoxicillin with a penicillin
  allergy, ibuprofen with an aspirin allergy, any cephalosporin with a beta-lactam allergy):
  ``critical`` when the allergy is recorded as severe, else ``high``;
- a cross-reacting class (a cephalosporin with a penicillin allergy): ``warning``, with the
  lexicon's note.

A drug the plan says to avoid is not a prescription: a mention whose clause has an avoid word
before it ("avoid NSAIDs", "stop aspirin", "停用阿司匹林"), or that is followed by an allergy
word ("penicillin allergy", "青霉素过敏"), does not count. Clauses end at . ; , ! ? and line
breaks (and their Chinese forms), so "no ibuprofen, give aspirin" still checks the aspirin. A
double negative ("do not stop aspirin") reads as avoided: the check screens, it does not parse.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

LEXICON_PATH = Path(__file__).with_name("drug_lexicon.json")
Severity = Literal["critical", "high", "warning"]
SEVERITY_ORDER: dict[str, int] = {"critical": 0, "high": 1, "warning": 2}  # worst first
Kind = Literal["same_drug", "same_class", "cross_reactive"]
Source = Literal["plan", "medications"]  # where the doctor wrote the drug
_SOURCE_WORDS = {"plan": "Plan", "medications": "Medication list"}
_CLAUSE_END = re.compile(r"[.;,!?\n。；，！？：:]")
_HAN = re.compile(r"[\u4e00-\u9fff]")


@dataclass(frozen=True)
class AllergyRecord:
    """One recorded allergy: the substance as written, and its severity (mild/moderate/severe)."""

    substance: str
    severity: str = ""


@dataclass(frozen=True)
class Mention:
    """A drug (``drug`` key) or class (``drug`` empty) named in a text, with its classes."""

    drug: str
    classes: tuple[str, ...]
    text: str
    start: int
    end: int


@dataclass(frozen=True)
class DrugConflict:
    drug: str  # the lexicon's drug key, or "" when the plan names a class ("NSAIDs")
    written: str  # as the plan writes it
    allergy: str  # the recorded allergy substance
    allergy_severity: str
    kind: Kind
    severity: Severity
    drug_class: str  # the class involved, in words ("" for the same drug)
    note: str = ""
    source: Source = "plan"

    @property
    def message(self) -> str:
        """The conflict in plain English (the advice payload; pages word it in their language)."""
        recorded = (
            f"recorded {self.allergy_severity} allergy"
            if self.allergy_severity
            else "recorded allergy"
        )
        where = _SOURCE_WORDS[self.source]
        if self.kind == "same_drug":
            return (
                f"{where} names “{self.written}”: the patient has a {recorded} to {self.allergy}."
            )
        if self.kind == "same_class":
            return (
                f"{where} names “{self.written}” ({self.drug_class}): the patient has a {recorded} "
                f"to {self.allergy}, of the same class. Choose another drug."
            )
        return (
            f"{where} names “{self.written}” ({self.drug_class}) with a {recorded} to "
            f"{self.allergy}: caution, {self.note}."
        )


@functools.cache
def lexicon() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(LEXICON_PATH.read_text(encoding="utf-8"))
    return data


@functools.cache
def _patterns() -> tuple[tuple[re.Pattern[str], str, tuple[str, ...], int], ...]:
    """(pattern, drug key or "", classes, priority): drugs before classes on the same span."""
    data = lexicon()
    out: list[tuple[re.Pattern[str], str, tuple[str, ...], int]] = []
    for key, entry in data["drugs"].items():
        out.extend(_compiled(entry, key, tuple(entry["classes"]), 1))
    for key, entry in data["classes"].items():
        out.extend(_compiled(entry, "", (key,), 0))
    return tuple(out)


def _compiled(
    entry: dict[str, Any], drug: str, classes: tuple[str, ...], priority: int
) -> list[tuple[re.Pattern[str], str, tuple[str, ...], int]]:
    out = []
    if entry.get("en"):
        pattern = re.compile(r"\b(?:" + "|".join(entry["en"]) + r")\b", re.IGNORECASE)
        out.append((pattern, drug, classes, priority))
    if entry.get("zh"):
        terms = sorted(entry["zh"], key=len, reverse=True)
        out.append((re.compile("|".join(re.escape(t) for t in terms)), drug, classes, priority))
    return out


def mentions(text: str) -> list[Mention]:
    """Every drug or class named in ``text``; overlapping names keep the longest (then drugs)."""
    found: list[Mention] = []
    for pattern, drug, classes, _priority in sorted(_patterns(), key=lambda p: -p[3]):
        for match in pattern.finditer(text or ""):
            found.append(Mention(drug, classes, match.group(), match.start(), match.end()))
    found.sort(key=lambda m: (m.start, -(m.end - m.start), m.drug == ""))
    kept: list[Mention] = []
    for mention in found:
        if kept and mention.start < kept[-1].end:
            continue  # inside a longer (or equally long, drug-first) name already kept
        kept.append(mention)
    return kept


def _words(kind: str) -> tuple[re.Pattern[str], re.Pattern[str]]:
    entry = lexicon()[kind]
    english = re.compile(r"\b(?:" + "|".join(re.escape(w) for w in entry["en"]) + r")\b", re.I)
    chinese = re.compile("|".join(re.escape(w) for w in entry["zh"]))
    return english, chinese


def _clause_before(text: str, start: int) -> str:
    head = text[:start]
    ends = [m.end() for m in _CLAUSE_END.finditer(head)]
    return head[ends[-1] if ends else 0 :]


def _clause_after(text: str, end: int, width: int = 16) -> str:
    tail = text[end : end + width]
    stop = _CLAUSE_END.search(tail)
    return tail[: stop.start()] if stop else tail


def _has(patterns: tuple[re.Pattern[str], re.Pattern[str]], text: str) -> bool:
    return any(p.search(text) for p in patterns)


def prescribed(text: str) -> list[Mention]:
    """Drugs and classes ``text`` prescribes: mentioned, not avoided, not an allergy named."""
    avoid, allergy = _words("avoid_words"), _words("allergy_words")
    return [
        m
        for m in mentions(text)
        if not _has(avoid, _clause_before(text, m.start))
        and not _has(allergy, _clause_after(text, m.end))
        and not _has(allergy, _clause_before(text, m.start)[-12:])  # "allergic to penicillin"
    ]


def allergens(substance: str) -> list[Mention]:
    """What an allergy entry names (drugs or classes), unless it denies them ("否认青霉素过敏")."""
    negations = _words("allergy_negations")
    return [
        m for m in mentions(substance) if not _has(negations, _clause_before(substance, m.start))
    ]


def _primary_classes(mention: Mention) -> set[str]:
    """The classes an allergy to ``mention`` covers: a drug's own (first) class, or the class."""
    return {mention.classes[0]} if mention.classes else set()


def check_plan(
    *, text: str, allergies: Sequence[AllergyRecord], source: Source = "plan"
) -> list[DrugConflict]:
    """Conflicts between the drugs ``text`` prescribes and ``allergies``, worst first, one per
    (drug as written, allergy). ``source`` says where ``text`` was written (the plan, or the
    visit's medication list, one medicine per line: each line is its own clause)."""
    given = prescribed(text)
    if not given:
        return []
    cross = lexicon()["cross_reactivity"]
    class_label = {k: v["label"] for k, v in lexicon()["classes"].items()}
    conflicts: dict[tuple[str, str], DrugConflict] = {}
    for allergy in allergies:
        named = allergens(allergy.substance)
        allergy_drugs = {m.drug for m in named if m.drug}
        allergy_classes = set().union(*(_primary_classes(m) for m in named)) if named else set()
        worst: Severity = "critical" if allergy.severity == "severe" else "high"
        for m in given:
            conflict = None
            if m.drug and m.drug in allergy_drugs:
                conflict = DrugConflict(
                    m.drug,
                    m.text,
                    allergy.substance,
                    allergy.severity,
                    "same_drug",
                    worst,
                    "",
                    source=source,
                )
            elif shared := sorted(set(m.classes) & allergy_classes):
                conflict = DrugConflict(
                    m.drug,
                    m.text,
                    allergy.substance,
                    allergy.severity,
                    "same_class",
                    worst,
                    class_label[shared[0]],
                    source=source,
                )
            else:
                rule = next(
                    (
                        r
                        for r in cross
                        if r["allergy"] in allergy_classes and r["drug"] in m.classes
                    ),
                    None,
                )
                if rule is not None:
                    conflict = DrugConflict(
                        m.drug,
                        m.text,
                        allergy.substance,
                        allergy.severity,
                        "cross_reactive",
                        "high" if rule["severity"] == "high" else "warning",
                        class_label[rule["drug"]],
                        rule["note"],
                        source=source,
                    )
            key = (m.text.casefold(), allergy.substance)
            if conflict is not None and key not in conflicts:
                conflicts[key] = conflict
    return sorted(
        conflicts.values(), key=lambda c: (SEVERITY_ORDER[c.severity], c.written, c.allergy)
    )


def allergies_from_text(text: str) -> list[AllergyRecord]:
    """Allergies a free-text allergy history names (unless denied), severity unknown."""
    return [AllergyRecord(substance=m.text) for m in _unique(allergens(text))]


def _unique(items: Iterable[Mention]) -> list[Mention]:
    seen: set[str] = set()
    out = []
    for m in items:
        if m.text.casefold() not in seen:
            seen.add(m.text.casefold())
            out.append(m)
    return out


def drug_keys(text: str) -> list[str]:
    """The sorted drug and class keys ``text`` prescribes (what advice depends on, no PHI)."""
    return sorted({m.drug or m.classes[0] for m in prescribed(text)})
