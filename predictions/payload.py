"""The advice payload: its one typed description, and the only code that builds or reads it.

``Advice.payload`` stores an :class:`AdvicePayload` as JSON (encrypted at rest: it quotes the
visit's findings). The worker builds one (predictions/services/advice.py); pages, the admin, the
API, feedback, monitoring and the dashboard read it with :func:`advice_payload`, never with
``json.loads``. The API serializer is derived from these classes (predictions/api/payload.py).

``version`` names the shape. Payloads stored before the field existed have none: they are the
version-1 shape and read as such (version 1's similar cases, which named the other patient's
visit, are read in the version-2 shape: see :func:`_similar_case_v2`). Reading is lenient about missing keys (an older payload, or one
built by hand in a test reads with the defaults below) and ignores unknown ones (a newer payload
read by an older process during a deploy).
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

# 2: similar cases carry no visit id, exact age or distance (age band and outcome instead).
PAYLOAD_VERSION = 2


def _help(text: str) -> dict[str, str]:
    """Field metadata: the help text the API schema shows for the field."""
    return {"help": text}


@dataclass(frozen=True)
class Contribution:
    """One feature's push on a prediction (signed, on the explanation's scale)."""

    feature: str = field(metadata=_help("The engine's feature name."))
    label: str = field(default="", metadata=_help("The feature in plain words."))
    value: Any = field(
        default=None, metadata=_help("The visit's value of the feature (may be null).")
    )
    contribution: float = field(default=0.0, metadata=_help("Signed, on the explanation's scale."))
    kind: str = field(
        default="",
        metadata=_help(
            "observation (value as entered, with its unit), age, sex, visit_type or text; "
            "empty in advice stored before reasons were limited to recorded findings."
        ),
    )


@dataclass(frozen=True)
class NotMeasured:
    """A test not done on the visit that would help: the model leaned on its absence, or a
    rule's alert asks for it."""

    code: str = field(metadata=_help("Catalogue (LOINC) code, or 'ECG'."))
    label: str = ""
    source: str = field(default="", metadata=_help("model or rule"))


@dataclass(frozen=True)
class RankedDiagnosis:
    code: str = field(metadata=_help("ICD-10 category, or 'other'."))
    display: str = ""
    probability: float = 0.0
    rank: int = 0


@dataclass(frozen=True)
class Risk:
    task: str
    name: str = ""
    label: str = ""
    probability: float = 0.0
    version: int = 0
    abstain: bool = False
    contributions: list[Contribution] = field(default_factory=list)


@dataclass(frozen=True)
class TextWord:
    """A word of the doctor's own text that drove the top suggestion, where it stands in the text.

    ``start``/``end`` index the visit's text as it was when the advice was computed, so the page
    can highlight the word in place, in the language it was written in.
    """

    column: str = field(metadata=_help("'chief_complaint' or 'history'."))
    text: str = ""
    start: int = 0
    end: int = 0
    negated: bool = field(default=False, metadata=_help("Inside a negation scope ('no', '无')."))
    uncertain: bool = False
    contribution: float = field(default=0.0, metadata=_help("Signed push on the top suggestion."))


@dataclass(frozen=True)
class Explanation:
    task: str
    predicted: str = ""
    scale: str = ""
    baseline: float = 0.0
    contributions: list[Contribution] = field(default_factory=list)
    text_method: str = field(default="", metadata=_help("How the text words were credited."))
    text_words: list[TextWord] = field(default_factory=list)

    @property
    def complaint_words(self) -> list[TextWord]:
        return [w for w in self.text_words if w.column == "chief_complaint"]

    @property
    def history_words(self) -> list[TextWord]:
        return [w for w in self.text_words if w.column == "history"]


@dataclass(frozen=True)
class Alert:
    """A clinical rule's alert (predictions/rules.py)."""

    rule: str
    severity: Literal["critical", "high", "warning"]
    message: str = ""


@dataclass(frozen=True)
class SimilarCase:
    """A past visit of another patient, reduced to what the similar-case panel shows.

    The viewer may not be allowed to see that patient, so nothing here identifies them or their
    visit: no id, no exact age, no full date (HIPAA Safe Harbor keeps the year and age bands).
    """

    age_band: str = field(
        default="", metadata=_help("Age at the visit, by decade: '60-69', '90+'.")
    )
    sex: str = ""
    year: int = field(default=0, metadata=_help("Year of the visit (no full date: other patients)"))
    diagnoses: list[str] = field(
        default_factory=list, metadata=_help("The visit's confirmed diagnoses (code and name).")
    )
    outcome: str = field(
        default="",
        metadata=_help(
            "How the case was managed: the visit's type (outpatient, inpatient = admitted, "
            "emergency, telemedicine)."
        ),
    )


def age_band(age: int | None) -> str:
    """The decade band of an age; 90 and over is one band (ages above 89 identify people)."""
    if age is None or age < 0:
        return ""
    if age >= 90:
        return "90+"
    low = age // 10 * 10
    return f"{low}-{low + 9}"


@dataclass(frozen=True)
class ModelUsed:
    task: str
    task_name: str = ""
    version: int = 0
    version_id: int = 0
    algorithm: str = ""


@dataclass(frozen=True)
class AdvicePayload:
    """What one advice says: ranked diagnoses, risks, why, rule alerts, similar past visits."""

    version: int = field(default=PAYLOAD_VERSION, metadata=_help("Shape of this payload."))
    visit_id: int | None = None
    computed_at: str = ""  # ISO 8601, time-zone aware
    diagnoses: list[RankedDiagnosis] = field(default_factory=list)
    risks: list[Risk] = field(default_factory=list)
    explanation: Explanation | None = None
    abstained: bool = False
    abstain_reasons: list[str] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    not_measured: list[NotMeasured] = field(
        default_factory=list, metadata=_help("Tests not done that would help ('would help').")
    )
    similar_cases: list[SimilarCase] = field(default_factory=list)
    models: list[ModelUsed] = field(default_factory=list)
    rules_version: int = 0

    @property
    def top_diagnosis(self) -> RankedDiagnosis | None:
        return self.diagnoses[0] if self.diagnoses else None

    def suggestions(self) -> dict[str, int | None]:
        """What a clinician may accept or override: diagnosis codes (with rank) and risk tasks."""
        ranked: dict[str, int | None] = {d.code: d.rank for d in self.diagnoses}
        ranked.update({r.task: None for r in self.risks})
        return ranked

    def ranked_codes(self) -> list[str]:
        return [d.code for d in self.diagnoses]

    def risk(self, task: str) -> Risk | None:
        return next((r for r in self.risks if r.task == task), None)

    @property
    def critical_alerts(self) -> list[Alert]:
        return [a for a in self.alerts if a.severity == "critical"]

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def payload_dumps(payload: AdvicePayload) -> str:
    return json.dumps(payload.as_dict())


def payload_loads(text: str) -> AdvicePayload:
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("An advice payload is a JSON object.")
    data.setdefault("version", 1)  # stored before versioning: the version-1 shape
    if isinstance(data.get("similar_cases"), list):
        data["similar_cases"] = [_similar_case_v2(c) for c in data["similar_cases"]]
    return _build(AdvicePayload, data)


def _similar_case_v2(case: Any) -> Any:
    """A version-1 similar case read in the version-2 shape: the other patient's visit id,
    exact age and distance are dropped (unknown keys are ignored), the age becomes its band and
    the visit type the outcome. Stored payloads are never rewritten; reading is enough."""
    if not isinstance(case, dict):
        return case
    upgraded = dict(case)
    if "age_band" not in upgraded and isinstance(upgraded.get("age"), int):
        upgraded["age_band"] = age_band(upgraded["age"])
    if "outcome" not in upgraded and upgraded.get("visit_type"):
        upgraded["outcome"] = upgraded["visit_type"]
    return upgraded


def advice_payload(advice: Any) -> AdvicePayload:
    """The payload of an ``Advice`` row, decrypted and parsed once per instance."""
    raw = advice.payload
    cached = getattr(advice, "_payload_cache", None)
    if cached is not None and cached[0] is raw:
        return cached[1]
    payload = payload_loads(raw)
    advice._payload_cache = (raw, payload)
    return payload


def _build(cls: type, data: dict[str, Any]) -> Any:
    hints = typing.get_type_hints(cls)
    values = {
        f.name: _convert(hints[f.name], data[f.name])
        for f in dataclasses.fields(cls)
        if f.name in data
    }
    return cls(**values)


def _convert(hint: Any, value: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin is list:
        (item,) = typing.get_args(hint)
        return [_convert(item, v) for v in value or []]
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        inner = next(a for a in typing.get_args(hint) if a is not type(None))
        return _convert(inner, value)
    if dataclasses.is_dataclass(hint) and isinstance(value, dict):
        return _build(hint, value)
    return value
