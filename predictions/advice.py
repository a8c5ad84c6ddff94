"""Computing advice for a visit: every active model, the clinical rules, similar past visits.

Idempotent by construction: advice is keyed by (visit, hash of inputs, models used). A request
whose inputs and models already have advice links to it instead of computing again; a visit
whose inputs changed gets new advice and the previous one is marked superseded.
"""

from __future__ import annotations

import json
import logging
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from medai_site.audit import audit_record
from medai_site.models import AuditEvent
from predictions.ml.artifacts import file_sha256, load_model
from predictions.ml.errors import EngineError
from visits.catalogue import BY_CODE
from visits.icd10 import icd10_lookup
from visits.models import Diagnosis, Visit

from .models import Advice, AdviceRequest, PredictionTask
from .rules import ObservationFact, evaluate_rules
from .visit_records import OTHER_CLASS, input_hash, visit_record

logger = logging.getLogger(__name__)
RULES_VERSION = 1  # bump when rules change: new inputs hash, so advice is recomputed
TOP_DIAGNOSES = 5
SIMILAR_CASES = 3
# A request whose computation never finishes (its worker killed each time, an unexpected error)
# is redelivered by the broker and re-dispatched by the relay; after this many starts it is
# marked failed with a reason instead of cycling forever (the retry cap on redelivery).
MAX_COMPUTE_ATTEMPTS = 5


class AdviceFailed(Exception):
    """A permanent failure (e.g. an artifact failing its integrity check): no retry will help."""


def _active_tasks() -> list[PredictionTask]:
    return list(
        PredictionTask.objects.filter(enabled=True, active_version__isnull=False)
        .select_related("active_version")
        .order_by("slug")
    )


def feature_label(name: str) -> str:
    """Plain words for an engine feature name."""
    if name.startswith("obs_"):
        code, _, rest = name[4:].partition(" ")
        definition = BY_CODE.get(code)
        base = definition.display if definition else code
        return f"{base} {rest}".strip()
    if name.startswith(("chief_complaint: ", "history: ")):
        column, _, term = name.partition(": ")
        where = "complaint" if column == "chief_complaint" else "history"
        return f"{where} mentions “{term}”"
    return name.replace("_", " ").replace("=", ": ")


def _category_display(category: str) -> str:
    if category == OTHER_CLASS:
        return "Other (less frequent diagnoses)"
    try:
        return icd10_lookup(category)[1]
    except Exception:
        return category


def advice_compute(*, request_id: int) -> Advice | None:
    """Compute (or find) the advice for one request; the request ends done or failed."""
    with transaction.atomic():
        request = AdviceRequest.objects.select_for_update().get(pk=request_id)
        if request.status in (AdviceRequest.Status.DONE, AdviceRequest.Status.FAILED):
            return request.advice
        if request.compute_attempts >= MAX_COMPUTE_ATTEMPTS:
            _fail(
                request_id,
                f"Advice computation started {request.compute_attempts} times without finishing "
                "(worker stopped or unexpected error each time); given up. See the worker log.",
            )
            return None
        AdviceRequest.objects.filter(pk=request_id).update(
            compute_attempts=request.compute_attempts + 1
        )
    visit = (
        Visit.objects.select_related("patient")
        # Decrypt only what advice reads (no name, contact or plan): PHI stays ciphertext.
        .only(
            "id",
            "patient_id",
            "age_years",
            "visit_type",
            "chief_complaint",
            "history_present_illness",
            "physical_exam",
            "patient__id",
            "patient__sex",
        )
        .prefetch_related("observations__definition", "patient__allergies")
        .get(pk=request.visit_id)
    )
    started = time.perf_counter()
    record = visit_record(visit)
    tasks = _active_tasks()
    models_key = ",".join(f"{t.slug}:{t.active_version.number}" for t in tasks) or "rules-only"
    allergies = sorted(a.substance for a in visit.patient.allergies.all())
    digest = input_hash(record, extra={"allergies": allergies, "rules": RULES_VERSION})

    advice = Advice.objects.filter(visit=visit, input_hash=digest, models_key=models_key).first()
    payload = None
    if advice is None:
        try:
            payload = _payload(visit, record, tasks, allergies)
        except AdviceFailed as exc:
            _fail(request_id, str(exc))
            return None
        compute_ms = (time.perf_counter() - started) * 1000
        if settings.MEDAI_TEST_ADVICE_DELAY:
            # Test-only (0 outside the test profile): a window in which integration tests kill
            # the worker between computing and storing, deterministically.
            time.sleep(settings.MEDAI_TEST_ADVICE_DELAY)
    # One transaction stores the advice, marks the request done and audits it: a worker dying
    # here leaves either all of it or none (then the request is computed again).
    with transaction.atomic():
        if advice is None:
            advice = _store(visit, digest, models_key, tasks, payload, compute_ms)
        _complete(request_id, advice)
        audit_record(
            actor=None,
            action=AuditEvent.Action.ADVICE,
            obj=advice,
            patient_id=visit.patient_id,
            interface=AuditEvent.Interface.WORKER,
        )
    return advice


def _fail(request_id: int, reason: str) -> None:
    AdviceRequest.objects.filter(pk=request_id).update(
        status=AdviceRequest.Status.FAILED, error=reason[:2000], finished_at=timezone.now()
    )


def _complete(request_id: int, advice: Advice) -> None:
    with transaction.atomic():
        if advice.superseded:
            Advice.objects.filter(visit_id=advice.visit_id, superseded=False).update(
                superseded=True
            )
            Advice.objects.filter(pk=advice.pk).update(superseded=False)
        AdviceRequest.objects.filter(pk=request_id).update(
            status=AdviceRequest.Status.DONE, advice=advice, finished_at=timezone.now(), error=""
        )


def _store(
    visit: Visit,
    digest: str,
    models_key: str,
    tasks: list[PredictionTask],
    payload: dict[str, Any],
    compute_ms: float,
) -> Advice:
    alerts = payload["alerts"]
    try:
        with transaction.atomic():
            Advice.objects.filter(visit=visit, superseded=False).update(superseded=True)
            advice = Advice.objects.create(
                visit=visit,
                input_hash=digest,
                models_key=models_key,
                payload=json.dumps(payload),
                abstained=payload["abstained"],
                alert_count=len(alerts),
                critical_alert_count=sum(a["severity"] == "critical" for a in alerts),
                compute_ms=compute_ms,
            )
            advice.model_versions.set([t.active_version for t in tasks])
    except IntegrityError:
        # Another worker stored the same advice first (same inputs, same models): use it. If the
        # clash was instead with another current advice for the visit, raise: the task retries.
        existing = Advice.objects.filter(
            visit=visit, input_hash=digest, models_key=models_key
        ).first()
        if existing is None:
            raise
        return existing
    return advice


def _payload(
    visit: Visit, record: dict[str, Any], tasks: list[PredictionTask], allergies: list[str]
) -> dict[str, Any]:
    diagnoses: list[dict[str, Any]] = []
    risks: list[dict[str, Any]] = []
    models: list[dict[str, Any]] = []
    explanation: dict[str, Any] | None = None
    abstained, abstain_reasons = False, []
    differential_vector = None
    differential_version = None
    for task in tasks:
        version = task.active_version
        try:
            model = load_model(version.artifact_path, version.artifact_sha256)
        except (EngineError, OSError) as exc:
            raise AdviceFailed(
                f"Model {task.slug} v{version.number} cannot be used: {exc}. "
                "An admin should roll back or switch the model off."
            ) from exc
        prediction = model.predict_one(record)
        models.append(
            {
                "task": task.slug,
                "task_name": task.name,
                "version": version.number,
                "version_id": version.pk,
                "algorithm": version.algorithm,
            }
        )
        if prediction.abstain:
            abstained = True
            abstain_reasons.append(f"{task.name}: {prediction.abstain_reason}")
        contributions = [
            {**c, "label": feature_label(c["feature"])} for c in prediction.contributions
        ]
        if task.kind == PredictionTask.Kind.DIFFERENTIAL:
            for rank, (label, probability) in enumerate(prediction.ranked[:TOP_DIAGNOSES], start=1):
                # The engine's class names are normalised to lower case; codes are upper case.
                category = label if label == OTHER_CLASS else label.upper()
                diagnoses.append(
                    {
                        "code": category,
                        "display": _category_display(category),
                        "probability": round(probability, 4),
                        "rank": rank,
                    }
                )
            explanation = {
                "task": task.slug,
                "predicted": prediction.predicted,
                "scale": prediction.scale,
                "baseline": prediction.baseline,
                "contributions": contributions,
            }
            differential_vector = np.array(
                [prediction.probabilities[c] for c in model.classes], dtype=np.float32
            )
            differential_version = version
        else:
            positive = "1" if "1" in prediction.probabilities else model.classes[-1]
            risks.append(
                {
                    "task": task.slug,
                    "name": task.name,
                    "label": task.config.get("label", task.name),
                    "probability": round(prediction.probabilities[positive], 4),
                    "version": version.number,
                    "abstain": prediction.abstain,
                    "contributions": contributions,
                }
            )
    facts = {
        obs.definition.code: ObservationFact(
            code=obs.definition.code,
            display=obs.definition.display,
            value=obs.value,
            unit=obs.definition.unit,
            interpretation=obs.interpretation,
            critical_low=obs.definition.critical_low,
            critical_high=obs.definition.critical_high,
        )
        for obs in visit.observations.all()
    }
    alerts = evaluate_rules(
        facts=facts,
        free_text=f"{visit.chief_complaint}\n{visit.history_present_illness}\n{visit.physical_exam}",
        suggested_codes=[d["code"] for d in diagnoses[:3] if d["code"] != OTHER_CLASS],
        allergies=allergies,
    )
    similar = (
        similar_cases(
            differential_version, differential_vector, exclude_patient=str(visit.patient_id)
        )
        if differential_version is not None
        else []
    )
    return {
        "visit_id": visit.pk,
        "computed_at": timezone.now().isoformat(),
        "diagnoses": diagnoses,
        "risks": risks,
        "explanation": explanation,
        "abstained": abstained,
        "abstain_reasons": abstain_reasons,
        "alerts": alerts,
        "similar_cases": similar,
        "models": models,
        "rules_version": RULES_VERSION,
    }


@lru_cache(maxsize=8)
def _similar_index(path: str, sha256: str) -> dict[str, Any]:
    if file_sha256(Path(path)) != sha256:
        raise AdviceFailed("The similar-case index failed its integrity check.")
    return joblib.load(path)


def similar_cases(
    version: Any, vector: np.ndarray, *, exclude_patient: str
) -> list[dict[str, Any]]:
    """Up to three past visits of other patients that the model sees most alike."""
    meta = version.report.get("similar_cases_index")
    if not meta:
        return []
    index = _similar_index(meta["path"], meta["sha256"])
    distances = np.abs(index["vectors"] - vector).sum(axis=1)  # L1 between probability vectors
    distances[index["patient_ids"] == exclude_patient] = np.inf
    nearest = np.argsort(distances, kind="stable")[: SIMILAR_CASES * 3]
    visit_ids = [int(index["visit_ids"][i]) for i in nearest if np.isfinite(distances[i])]
    found = {
        v.pk: v
        for v in Visit.objects.filter(pk__in=visit_ids)
        .select_related("patient")
        .only("id", "age_years", "visit_type", "start", "patient__id", "patient__sex")
        .prefetch_related("diagnoses")
    }
    cases = []
    for i in nearest:
        visit = found.get(int(index["visit_ids"][i]))
        if visit is None:
            continue
        confirmed = [
            f"{d.code} {d.display}"
            for d in visit.diagnoses.all()
            if d.status == Diagnosis.Status.CONFIRMED
        ]
        if not confirmed:
            continue
        cases.append(
            {
                "visit_id": visit.pk,
                "age": visit.age_years,
                "sex": visit.patient.sex,
                "visit_type": visit.visit_type,
                # Year only: the visits are other patients' (possibly outside the viewer's care
                # teams), and full dates are identifiers (HIPAA Safe Harbor keeps the year).
                "year": visit.start.year,
                "diagnoses": confirmed,
                "distance": round(float(distances[i]), 4),
            }
        )
        if len(cases) == SIMILAR_CASES:
            break
    return cases
