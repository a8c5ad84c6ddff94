"""Clinical rules that run beside the models on every advice. Pure functions of plain data.

Alerts carry a severity (critical > high > warning), the rule's name and a message in plain words.
Thresholds follow widely used criteria: hypertensive crisis SBP >= 180 or DBP >= 120 mmHg;
hypoxaemia SpO2 < 92 % (critical < 88 %); qSOFA (Singer et al., JAMA 2016) >= 2 of RR >= 22/min,
SBP <= 100 mmHg, altered mentation.

Every free-text rule reads English and Chinese alike through the engine's text module
(:mod:`predictions.ml.text`): its lexicons name the findings and allergy substances in both
languages, and its NegEx scopes keep negated findings from firing ("no confusion", "无意识障碍",
"denies penicillin allergy"). Uncertain findings ("? confused", "可疑意识模糊") do count: the
rules screen, so a possible red flag is worth a look.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from predictions.ml import red_flags
from predictions.ml import text as clinical_text

SEVERITY_ORDER = {"critical": 0, "high": 1, "warning": 2}


@dataclass(frozen=True)
class ObservationFact:
    code: str
    display: str
    value: float
    unit: str
    interpretation: str  # "", N, L, H, LL, HH
    critical_low: float | None
    critical_high: float | None


@dataclass(frozen=True)
class Alert:
    rule: str
    severity: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


# First-line treatments a suggested diagnosis usually leads to, and the allergy substances they
# conflict with (keys of predictions.ml.text.SUBSTANCES, which knows each one's English and Chinese
# names; a class name matches its members).
TREATMENT_CONFLICTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "J18": ("amoxicillin", ("penicillin", "amoxicillin", "beta-lactam")),
    "J06": ("amoxicillin (if bacterial)", ("penicillin", "amoxicillin")),
    "N39": (
        "trimethoprim-sulfamethoxazole",
        ("sulfonamide", "sulfonamides", "sulfa", "trimethoprim"),
    ),
    "I21": ("aspirin", ("aspirin", "nsaid", "nsaids")),
    "I20": ("aspirin", ("aspirin", "nsaid", "nsaids")),
    "I25": ("aspirin", ("aspirin", "nsaid", "nsaids")),
    "G43": ("NSAIDs", ("nsaid", "nsaids", "ibuprofen", "aspirin")),
    "A41": ("piperacillin-tazobactam", ("penicillin", "beta-lactam", "piperacillin")),
    "K35": ("cefazolin + metronidazole", ("cephalosporin", "cephalosporins", "metronidazole")),
}

# Red-flag phrases in the notes (either language) and what each asks the doctor to consider.
CRITICAL_PHRASES: dict[str, tuple[str, str]] = {
    "critical_chest_pain": (
        "critical",
        "Chest pain described as {found}: exclude acute coronary syndrome and aortic dissection now.",
    ),
    "thunderclap_headache": (
        "critical",
        "Headache described as {found}: exclude subarachnoid haemorrhage.",
    ),
    "stroke_signs": (
        "critical",
        "Possible stroke signs ({found}): time of onset, FAST assessment and stroke pathway.",
    ),
    "gi_bleeding": (
        "high",
        "Possible gastrointestinal bleeding ({found}): check haemoglobin and haemodynamics.",
    ),
    "anaphylaxis": ("critical", "Possible anaphylaxis ({found}): airway, adrenaline."),
    "suicidality": (
        "high",
        "Risk of self-harm mentioned ({found}): assess safety before the patient leaves.",
    ),
    "loss_of_consciousness": (
        "high",
        "Loss of consciousness noted ({found}): look for a cardiac or neurological cause.",
    ),
    "seizure": ("high", "Seizure noted ({found}): check glucose, consider neurology."),
    "meningism": ("high", "Meningism noted ({found}): with fever, consider meningitis."),
}


def _value(facts: dict[str, ObservationFact], code: str) -> float | None:
    fact = facts.get(code)
    return None if fact is None else fact.value


def critical_observations(facts: dict[str, ObservationFact]) -> list[Alert]:
    alerts = []
    for fact in facts.values():
        if fact.interpretation == "HH":
            alerts.append(
                Alert(
                    "critical_value",
                    "critical",
                    f"{fact.display} {fact.value:g} {fact.unit} is critically high (above {fact.critical_high:g}).",
                )
            )
        elif fact.interpretation == "LL":
            alerts.append(
                Alert(
                    "critical_value",
                    "critical",
                    f"{fact.display} {fact.value:g} {fact.unit} is critically low (below {fact.critical_low:g}).",
                )
            )
    return alerts


def hypertensive_crisis(facts: dict[str, ObservationFact]) -> list[Alert]:
    sbp, dbp = _value(facts, "8480-6"), _value(facts, "8462-4")
    if (sbp is not None and sbp >= 180) or (dbp is not None and dbp >= 120):
        return [
            Alert(
                "hypertensive_crisis",
                "critical",
                f"Blood pressure {sbp or '?'}/{dbp or '?'} mmHg meets hypertensive crisis "
                "criteria (≥180 systolic or ≥120 diastolic): assess for end-organ damage.",
            )
        ]
    return []


def hypoxaemia(facts: dict[str, ObservationFact]) -> list[Alert]:
    spo2 = _value(facts, "2708-6")
    if spo2 is None or spo2 >= 92:
        return []
    severity = "critical" if spo2 < 88 else "high"
    return [
        Alert(
            "hypoxaemia",
            severity,
            f"Oxygen saturation {spo2:g} % indicates hypoxaemia (below 92 %).",
        )
    ]


def qsofa(facts: dict[str, ObservationFact], free_text: str) -> list[Alert]:
    rr, sbp = _value(facts, "9279-1"), _value(facts, "8480-6")
    criteria = []
    if rr is not None and rr >= 22:
        criteria.append(f"respiratory rate {rr:g}/min")
    if sbp is not None and sbp <= 100:
        criteria.append(f"systolic BP {sbp:g} mmHg")
    confusion = clinical_text.affirmed(free_text or "", "confusion")
    if confusion:
        criteria.append(f"altered mentation noted (“{confusion[0].text}”)")
    if len(criteria) >= 2:
        return [
            Alert(
                "sepsis_qsofa",
                "high",
                f"qSOFA {len(criteria)}/3 ({'; '.join(criteria)}): screen for sepsis.",
            )
        ]
    return []


def _allergy_substances(allergy: str) -> set[str]:
    """The substance keys an allergy entry names, in English or Chinese, unless it denies them
    ("no penicillin allergy", "否认青霉素过敏")."""
    return set(clinical_text.substances_in(allergy))


def allergy_conflicts(suggested_codes: list[str], allergies: list[str]) -> list[Alert]:
    recorded = {a.strip() for a in allergies if a and a.strip()}
    named = {a: _allergy_substances(a) for a in recorded}
    alerts = []
    for code in suggested_codes:
        conflict = TREATMENT_CONFLICTS.get(code[:3])
        if conflict is None:
            continue
        treatment, substances = conflict
        clashes = sorted(a for a in recorded if named[a] & set(substances))
        if clashes:
            alerts.append(
                Alert(
                    "allergy_conflict",
                    "high",
                    f"Suggested {code}: usual first-line treatment ({treatment}) conflicts "
                    f"with recorded allergy to {', '.join(clashes)}.",
                )
            )
    return alerts


# What a substance also is, for an order checked against allergies: an allergy to a class
# (penicillin, beta-lactam, NSAID) forbids its members.
SUBSTANCE_CLASSES: dict[str, tuple[str, ...]] = {
    "amoxicillin": ("penicillin", "beta-lactam"),
    "piperacillin": ("penicillin", "beta-lactam"),
    "penicillin": ("beta-lactam",),
    "cephalosporin": ("beta-lactam",),
    "ibuprofen": ("nsaid",),
    "aspirin": ("nsaid",),
}


def order_allergy_conflicts(orders: list[str], allergies: list[str]) -> list[Alert]:
    """An ordered medication that is, or belongs to a class of, a recorded allergy substance
    (CDS Hooks order-select/order-sign). ``orders`` are medication names as the EHR wrote them."""
    recorded = {a.strip(): _allergy_substances(a) for a in allergies if a and a.strip()}
    alerts = []
    for order in orders:
        ordered = _allergy_substances(order)
        also = {c for substance in ordered for c in SUBSTANCE_CLASSES.get(substance, ())}
        clashes = sorted(a for a, named in recorded.items() if named & (ordered | also))
        if clashes:
            alerts.append(
                Alert(
                    "order_allergy_conflict",
                    "critical",
                    f"{order} conflicts with the recorded allergy to {', '.join(clashes)}.",
                )
            )
    return alerts


def critical_phrases(free_text: str, *, skip: frozenset[str] = frozenset()) -> list[Alert]:
    """Red-flag phrases written in the notes (English or Chinese), unless negated; concepts in
    ``skip`` are left out (a red-flag screen already raised them, with its action)."""
    alerts = []
    for concept, (severity, message) in CRITICAL_PHRASES.items():
        if concept in skip:
            continue
        found = clinical_text.affirmed(free_text or "", concept)
        if found:
            words = ", ".join(dict.fromkeys(f"“{m.text}”" for m in found))
            alerts.append(Alert("critical_phrase", severity, message.format(found=words)))
    return alerts


# The phrase concepts a red-flag screen (predictions.ml.red_flags) supersedes when it fires: the
# screen names the same words and adds what to do now, so one alert says it.
SUPERSEDED_PHRASES: dict[str, str] = {
    "possible_acs": "critical_chest_pain",
    "stroke_fast": "stroke_signs",
    "anaphylaxis": "anaphylaxis",
    "meningism": "meningism",
    "gi_bleed": "gi_bleeding",
}


def red_flag_alerts(facts: dict[str, ObservationFact], free_text: str) -> list[Alert]:
    """The model-independent red-flag screens (ACS, FAST, anaphylaxis, DKA, meningism, GI
    bleeding) over the notes and the recorded values; see :mod:`predictions.ml.red_flags`."""
    values = {code: fact.value for code, fact in facts.items()}
    return [
        Alert(flag.rule, flag.severity, flag.message)
        for flag in red_flags.screen(free_text or "", values)
    ]


def row_alerts(*, facts: dict[str, ObservationFact], free_text: str) -> list[Alert]:
    """Every rule that reads only the row (its values and notes): all but the allergy conflicts
    of suggested diagnoses, which depend on a model's answer. The free-text rules are the
    expensive part; a caller scoring one row with several models runs them once
    (:func:`evaluate_rules` with ``row``)."""
    flags = red_flag_alerts(facts, free_text)
    superseded = frozenset(
        SUPERSEDED_PHRASES[a.rule] for a in flags if a.rule in SUPERSEDED_PHRASES
    )
    return [
        *critical_observations(facts),
        *hypertensive_crisis(facts),
        *hypoxaemia(facts),
        *qsofa(facts, free_text),
        *flags,
        *critical_phrases(free_text, skip=superseded),
    ]


def evaluate_rules(
    *,
    facts: dict[str, ObservationFact],
    free_text: str,
    suggested_codes: list[str],
    allergies: list[str],
    row: Sequence[Alert] | None = None,
) -> list[dict[str, Any]]:
    """Every rule's alerts, most severe first. ``row``: :func:`row_alerts` of these facts and
    notes, already computed."""
    if row is None:
        row = row_alerts(facts=facts, free_text=free_text)
    alerts = [*row, *allergy_conflicts(suggested_codes, allergies)]
    alerts.sort(key=lambda a: (SEVERITY_ORDER[a.severity], a.rule))
    return [a.as_dict() for a in alerts]
