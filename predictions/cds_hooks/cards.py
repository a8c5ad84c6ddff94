"""The CDS Hooks services MedAI offers, and the cards each one answers with.

* ``medai-patient-view`` (hook ``patient-view``): the differential diagnosis and every risk
  model for the current encounter, from the prefetched Patient, the encounter's Observations
  and Conditions, and the patient's allergies; plus the clinical rules' alerts.
* ``medai-order-select`` / ``medai-order-sign``: the draft medication orders checked against the
  patient's allergies (the allergy-conflict rule), with a suggestion to remove the order.

Scoring, validation through the catalogue, model-use records and the cards' records are the
prediction service's (:mod:`predictions.services.serving`); this module maps FHIR to its inputs
and its results to cards (CDS Hooks 2.0 card format).
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from django.conf import settings
from django.urls import get_script_prefix, reverse
from django.utils import timezone

from medai_site.compiled_query import CompiledQuery
from medai_site.errors import DomainError, InvalidInput, ModelUnavailable
from predictions.models import Feedback, ModelUse, PredictionTask
from predictions.rules import evaluate_rules, order_allergy_conflicts
from predictions.selectors import servable_tasks
from predictions.services.advice import RULES_VERSION
from predictions.services.serving import (
    CardIssued,
    PredictionInput,
    PredictionResult,
    PreparedRow,
    cds_cards_record,
    predictions_make,
    prepare_row,
)
from predictions.visit_records import OTHER_CLASS

from .fhir import ICD10_SYSTEMS, Prefetch, medication_names, read_prefetch

SUMMARY_MAX = 140  # the specification's limit on a card's summary
TOP_DIAGNOSES = 5
SUGGESTED_DIAGNOSES = 3  # suggestions offered on the differential card
OVERRIDE_SYSTEM = "https://medai.example/fhir/CodeSystem/feedback-reason"
RISK_WARNING = 0.5  # a risk at or above this (or the task's config "threshold") is a warning


class PrefetchMissing(DomainError):
    """CDS Hooks: the service cannot get the FHIR data it needs (MedAI never queries the EHR)."""

    code = "prefetch_missing"
    status = 412


@dataclass(frozen=True)
class Service:
    id: str
    hook: str
    title: str
    description: str
    prefetch: dict[str, str]

    def discovery(self) -> dict[str, Any]:
        return {
            "hook": self.hook,
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "prefetch": self.prefetch,
            "usageRequirements": (
                "Send the prefetch: MedAI does not query the FHIR server. JWT from a configured "
                "issuer only."
            ),
        }


_PATIENT = "Patient/{{context.patientId}}"
_ALLERGIES = "AllergyIntolerance?patient={{context.patientId}}"
SERVICES: dict[str, Service] = {
    s.id: s
    for s in (
        Service(
            id="medai-patient-view",
            hook="patient-view",
            title="MedAI differential diagnosis and risks",
            description=(
                "Ranked differential diagnosis and risk estimates for the current encounter from "
                "its observations, with the clinical rules' alerts."
            ),
            prefetch={
                "patient": _PATIENT,
                "encounter": "Encounter/{{context.encounterId}}",
                "observations": (
                    "Observation?patient={{context.patientId}}&encounter={{context.encounterId}}"
                ),
                "conditions": (
                    "Condition?patient={{context.patientId}}&encounter={{context.encounterId}}"
                ),
                "allergies": _ALLERGIES,
            },
        ),
        Service(
            id="medai-order-select",
            hook="order-select",
            title="MedAI allergy check of selected orders",
            description="Warns when a selected medication conflicts with a recorded allergy.",
            prefetch={"patient": _PATIENT, "allergies": _ALLERGIES},
        ),
        Service(
            id="medai-order-sign",
            hook="order-sign",
            title="MedAI allergy check before signing",
            description="Stops a medication order that conflicts with a recorded allergy.",
            prefetch={"patient": _PATIENT, "allergies": _ALLERGIES},
        ),
    )
}


def override_reasons() -> list[dict[str, str]]:
    return [
        {"system": OVERRIDE_SYSTEM, "code": value, "display": str(label)}
        for value, label in Feedback.Reason.choices
        if value
    ]


def _summary(text: str) -> str:
    return text if len(text) <= SUMMARY_MAX else text[: SUMMARY_MAX - 1] + "…"


def _absolute(path: str) -> str:
    base = settings.CDS_HOOKS_BASE_URL.rstrip("/")
    return f"{base}{path}" if base else path


@functools.lru_cache(maxsize=256)
def _report_path(script_prefix: str, version_id: int) -> str:
    """A version's report page: resolving the URL pattern costs more than the rest of its
    card's source; the URLconf does not change while the process runs (keyed by the script
    prefix, which reverse() prepends)."""
    return reverse("version_report", kwargs={"version_id": version_id})


def _source(result: PredictionResult) -> dict[str, Any]:
    version = result.version
    return {
        "label": f"MedAI {result.task.name} v{version.number}",
        "url": _absolute(_report_path(get_script_prefix(), version.pk)),
        "topic": {
            "system": "https://medai.example/fhir/CodeSystem/model-version",
            "code": f"{result.task.slug}:{version.number}:{version.artifact_sha256[:12]}",
            "display": f"{result.task.name} version {version.number}",
        },
    }


@dataclass
class Answer:
    cards: list[dict[str, Any]]
    issued: list[CardIssued]
    # The models' uses behind the cards, written with them (serving.cds_cards_record).
    uses: list[ModelUse] = field(default_factory=list)


def _card(
    answer: Answer,
    *,
    summary: str,
    indicator: str,
    detail: str,
    source: dict[str, Any],
    suggestion: str,
    rank: int | None = None,
    model_use: ModelUse | None = None,
    suggestions: list[dict[str, Any]] | None = None,
) -> None:
    card_id = uuid.uuid4()
    card: dict[str, Any] = {
        "uuid": str(card_id),
        "summary": _summary(summary),
        "indicator": indicator,
        "detail": detail,
        "source": source,
        "overrideReasons": override_reasons(),
    }
    if suggestions:
        card["suggestions"] = suggestions
        card["selectionBehavior"] = "at-most-one"
    answer.cards.append(card)
    answer.issued.append(
        CardIssued(uuid=card_id, suggestion=suggestion, rank=rank, model_use=model_use)
    )


def _condition(code: str, display: str, context: dict[str, Any]) -> dict[str, Any]:
    """The provisional Condition an accepted suggestion asks the EHR to create."""
    resource: dict[str, Any] = {
        "resourceType": "Condition",
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active",
                }
            ]
        },
        "verificationStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                    "code": "provisional",
                }
            ]
        },
        "code": {"coding": [{"system": ICD10_SYSTEMS[0], "code": code, "display": display}]},
        "subject": {"reference": f"Patient/{context['patientId']}"},
    }
    if context.get("encounterId"):
        resource["encounter"] = {"reference": f"Encounter/{context['encounterId']}"}
    return resource


def valid_entry(entry: PredictionInput) -> tuple[PreparedRow, list[str]]:
    """``entry`` validated and prepared (once: every model scores the same prepared row),
    without the observations the catalogue refuses (named in the second value): an EHR's card
    about the rest is more useful than no card. Anything else invalid raises."""
    try:
        return prepare_row(entry), []
    except InvalidInput as exc:
        refused = set(exc.fields)
        kept = tuple(o for o in entry.observations if o.code not in refused)
        if len(kept) == len(entry.observations):
            raise
        return prepare_row(replace(entry, observations=kept)), sorted(refused)


def _detail_lines(result: PredictionResult, ignored: list[str]) -> list[str]:
    row = result.rows[0]
    lines = []
    if row.abstained:
        lines.append("**MedAI abstains:** " + "; ".join(row.abstain_reasons) + ".")
    if row.contributions:
        lines.append(
            "Main contributions: "
            + ", ".join(f"{c.label} ({c.contribution:+.2f})" for c in row.contributions[:5])
            + "."
        )
    if ignored:
        lines.append(
            "Left out (outside the possible range or in an unknown unit): "
            + ", ".join(ignored)
            + "."
        )
    lines.append(
        f"Model {result.task.slug} v{result.version.number}, "
        f"sha256 {result.version.artifact_sha256[:12]}…; decision support, not a diagnosis."
    )
    return lines


# Compiled once per process (medai_site.compiled_query); read fresh on every call. A hook call
# never reads a version's feature schema (the prediction API's input schema does): a few
# kilobytes of JSON per model, decoded on every call, were half of this statement's cost.
_SCORING_TASKS = CompiledQuery(
    lambda: (
        servable_tasks()
        .defer("active_version__feature_schema")
        .filter(enabled=True, active_version__isnull=False)
        .order_by("kind", "slug")
    ),
    parameters=0,
)


def patient_view(
    *, request_body: dict[str, Any], actor: Any, client: str, today: dt.date | None = None
) -> Answer:
    context = request_body["context"]
    prefetch: dict[str, Any] = request_body.get("prefetch") or {}
    if prefetch.get("patient") is None:
        raise PrefetchMissing(
            "This service needs the 'patient' prefetch (MedAI does not query the EHR)."
        )
    facts = read_prefetch(prefetch, today=today or timezone.localdate())
    entry = _entry(facts)
    answer = Answer(cards=[], issued=[])
    alerts_seen: set[tuple[str, str]] = set()
    row, ignored = valid_entry(entry)
    tasks = _SCORING_TASKS.many()
    results = []
    for task in tasks:
        try:
            results.append(
                predictions_make(
                    task=task,
                    inputs=[row],
                    actor=actor,
                    client=client,
                    interface="cds-hooks",
                    record=False,
                )
            )
        except ModelUnavailable:
            continue  # a broken model gives no card; /readyz and the admin say why
    scored = bool(results)
    # Every model's use is written with the cards, in one statement (hook_answer).
    answer.uses = [r.pending_use for r in results if r.pending_use is not None]
    for result in results:
        task = result.task
        for alert in result.rows[0].alerts:
            alerts_seen.add((alert.severity, alert.message))
        if task.kind == PredictionTask.Kind.DIFFERENTIAL:
            _differential_card(answer, result, ignored, facts, context)
        else:
            _risk_card(answer, result, ignored)
    if not scored:  # no model answered: the clinical rules still run on the prefetched data
        for alert in evaluate_rules(
            facts=row.facts,
            free_text=row.free_text,
            suggested_codes=[],
            allergies=row.allergies,
            row=row.alerts,
        ):
            alerts_seen.add((alert["severity"], alert["message"]))
    for severity, message in sorted(alerts_seen, key=lambda a: (_SEVERITY[a[0]], a[1])):
        _card(
            answer,
            summary=message,
            indicator="critical" if severity == "critical" else "warning",
            detail=message,
            source={"label": f"MedAI clinical rules v{RULES_VERSION}"},
            suggestion="rule",
        )
    return answer


_SEVERITY = {"critical": 0, "high": 1, "warning": 2}


def _entry(facts: Prefetch) -> PredictionInput:
    return PredictionInput(
        age=facts.age,
        sex=facts.sex,
        visit_type=facts.visit_type,
        chief_complaint="",
        history="; ".join(facts.condition_text)[:20_000],
        observations=tuple(facts.observations),
        allergies=tuple(facts.allergies),
    )


def _differential_card(
    answer: Answer,
    result: PredictionResult,
    ignored: list[str],
    facts: Prefetch,
    context: dict[str, Any],
) -> None:
    row = result.rows[0]
    top = row.probabilities[:TOP_DIAGNOSES]
    head = top[0]
    summary = f"Differential: {head.label} {head.display} ({head.probability:.0%})"
    if row.abstained:
        summary = f"MedAI abstains; leading: {head.label} {head.display} ({head.probability:.0%})"
    table = "\n".join(f"| {c.label} | {c.display} | {c.probability:.0%} |" for c in top)
    detail = "\n\n".join(
        [
            "| ICD-10 | Diagnosis | Probability |\n|---|---|---|\n" + table,
            *_detail_lines(result, ignored),
        ]
    )
    recorded = set(facts.condition_codes)
    suggestions = [
        {
            "label": f"Record {c.label} {c.display} as a provisional diagnosis",
            "uuid": str(uuid.uuid4()),
            "isRecommended": False,
            "actions": [
                {
                    "type": "create",
                    "description": f"Add the provisional condition {c.label}",
                    "resource": _condition(c.label, c.display, context),
                }
            ],
        }
        for c in top[:SUGGESTED_DIAGNOSES]
        if c.label != OTHER_CLASS and c.label not in recorded
    ]
    _card(
        answer,
        summary=summary,
        indicator="info",
        detail=detail,
        source=_source(result),
        suggestion=head.label,
        rank=1,
        model_use=result.pending_use,
        suggestions=suggestions if not row.abstained else None,
    )


def _risk_card(answer: Answer, result: PredictionResult, ignored: list[str]) -> None:
    row = result.rows[0]
    task = result.task
    positive = next(
        (c for c in row.probabilities if c.label in ("positive", "1")), row.probabilities[0]
    )
    threshold = float(task.config.get("threshold", RISK_WARNING))
    label = task.config.get("label", task.name)
    summary = f"{label}: estimated risk {positive.probability:.0%}"
    if row.abstained:
        summary += " (MedAI abstains: see detail)"
    _card(
        answer,
        summary=summary,
        indicator="warning" if positive.probability >= threshold and not row.abstained else "info",
        detail="\n\n".join(_detail_lines(result, ignored)),
        source=_source(result),
        suggestion=task.slug,
        model_use=result.pending_use,
    )


def order_check(
    *, service: Service, request_body: dict[str, Any], today: dt.date | None = None
) -> Answer:
    context = request_body["context"]
    prefetch: dict[str, Any] = request_body.get("prefetch") or {}
    if "allergies" not in prefetch:
        raise PrefetchMissing(
            "This service needs the 'allergies' prefetch (MedAI does not query the EHR)."
        )
    facts = read_prefetch(prefetch, today=today or timezone.localdate())
    orders = medication_names(context.get("draftOrders"))
    selected = set(context.get("selections") or [])
    if service.hook == "order-select" and selected:
        orders = [o for o in orders if o[0] in selected] or orders
    answer = Answer(cards=[], issued=[])
    names = dict(orders)
    for reference, name in orders:
        for alert in order_allergy_conflicts([name], facts.allergies):
            suggestion = {
                "label": f"Remove the {name} order",
                "uuid": str(uuid.uuid4()),
                "isRecommended": True,
                "actions": [
                    {
                        "type": "delete",
                        "description": f"Remove the draft order for {names[reference]}",
                        "resourceId": [reference],
                    }
                ],
            }
            _card(
                answer,
                summary=alert.message,
                indicator="critical" if service.hook == "order-sign" else "warning",
                detail=(
                    f"{alert.message} Choose another medication or record why the allergy does "
                    "not apply."
                ),
                source={"label": f"MedAI clinical rules v{RULES_VERSION}"},
                suggestion="order_allergy_conflict",
                suggestions=[suggestion],
            )
    return answer


def hook_answer(
    *, service: Service, request_body: dict[str, Any], actor: Any, client: str
) -> dict[str, Any]:
    """The CDS Hooks response body for one call; the cards are recorded for their feedback."""
    if service.hook == "patient-view":
        answer = patient_view(request_body=request_body, actor=actor, client=client)
    else:
        answer = order_check(service=service, request_body=request_body)
    if answer.issued or answer.uses:
        cds_cards_record(service=service.id, client=client, cards=answer.issued, uses=answer.uses)
    return {"cards": answer.cards}
