"""Training jobs: the only writer of TrainingJob and ModelVersion.

A job snapshots the labelled visits, runs the engine and writes an immutable ModelVersion. The job
row is the single source of truth for its state (queued → running with stage and percent →
succeeded/failed with a readable reason). The worker beats a heartbeat into it; the watchdog
fails or requeues jobs whose worker died.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Max, Q
from django.utils import timezone

from medai_site.errors import Conflict, TrainingDataError
from medai_site.roles import account_of
from predictions.ml.artifacts import file_sha256, load_model, save_model
from predictions.ml.errors import EngineError
from predictions.ml.pipeline import train
from predictions.ml.split import holdout_split
from predictions.models import ActivationEvent, ModelVersion, PredictionTask, TrainingJob
from predictions.promotion import compare
from predictions.training_set import algorithms_for, holdout_metrics, model_spec, training_snapshot

from . import registry

logger = logging.getLogger(__name__)
HOLDOUT_SHARE = 0.2  # patients held out to compare challenger and champion on the same visits
MAX_ATTEMPTS = 2  # a job whose worker died is requeued once, then failed
MIN_TRAINING_VISITS = 50


@transaction.atomic
def training_job_start(*, task: PredictionTask, actor: object | None, trigger: str) -> TrainingJob:
    if task.training_jobs.filter(
        status__in=[TrainingJob.Status.QUEUED, TrainingJob.Status.RUNNING]
    ).exists():
        raise Conflict(f"A training job for {task} is already queued or running.")
    job = TrainingJob.objects.create(
        task=task,
        trigger=trigger,
        started_by=account_of(actor),
    )
    transaction.on_commit(lambda: _enqueue(job.pk))
    return job


def training_nightly_start(
    *, actor: object | None = None, trigger: str = TrainingJob.Trigger.SCHEDULE
) -> list[TrainingJob]:
    """A training job for every prediction task; a task already training is skipped.

    The nightly schedule (beat) calls it, and so does ``seed_demo --train`` for the demo's first
    models (with its own trigger).
    """
    started = []
    for task in PredictionTask.objects.order_by("slug"):
        try:
            started.append(training_job_start(task=task, actor=actor, trigger=trigger))
        except Conflict:
            logger.info("training of %s skipped: a job is already queued or running", task.slug)
    return started


def training_monthly_pretrain_start(*, actor: object | None = None) -> list[TrainingJob]:
    """A full forecast training (pretraining, CV, CI gate) for every forecast task (monthly beat).

    The nightly schedule refits forecast tasks that already have a model (see ``_forecast_mode``).
    """
    started = []
    for task in PredictionTask.objects.filter(kind=PredictionTask.Kind.FORECAST).order_by("slug"):
        try:
            started.append(
                training_job_start(task=task, actor=actor, trigger=TrainingJob.Trigger.MONTHLY)
            )
        except Conflict:
            logger.info(
                "re-pretraining of %s skipped: a job is already queued or running", task.slug
            )
    return started


def _enqueue(job_id: int) -> None:
    from predictions.tasks import training_job_run

    try:
        training_job_run.apply_async(args=[job_id], retry=False)
    except Exception:
        logger.warning("training job %s not enqueued; watchdog will retry", job_id)


def _progress(job_id: int, stage: str, percent: int) -> None:
    TrainingJob.objects.filter(pk=job_id).update(
        stage=stage[:60], percent=max(0, min(100, int(percent))), heartbeat_at=timezone.now()
    )


def training_job_execute(*, job_id: int) -> TrainingJob:
    job = TrainingJob.objects.select_related("task").get(pk=job_id)
    if job.status in (TrainingJob.Status.SUCCEEDED, TrainingJob.Status.FAILED):
        return job  # redelivered message for finished work
    if ModelVersion.objects.filter(training_job_id=job_id).exists():
        # The worker died after writing the version but before marking the job done.
        return _finish(job_id, TrainingJob.Status.SUCCEEDED, version=job.model_version)
    # Claim the job: a duplicate message (broker redelivery beside a watchdog requeue) must not
    # train it twice at once. A running job may be taken over only once its heartbeat is stale.
    stale_before = timezone.now() - timedelta(seconds=settings.MEDAI_TRAINING_HEARTBEAT_TIMEOUT)
    claimed = (
        TrainingJob.objects.filter(pk=job_id)
        .filter(
            Q(status=TrainingJob.Status.QUEUED)
            | Q(status=TrainingJob.Status.RUNNING, heartbeat_at__lt=stale_before)
        )
        .update(
            status=TrainingJob.Status.RUNNING,
            started_at=timezone.now(),
            heartbeat_at=timezone.now(),
            attempts=F("attempts") + 1,
            stage="snapshot",
            percent=1,
            error="",
        )
    )
    if not claimed:
        logger.info("training job %s is already running elsewhere; message skipped", job_id)
        return TrainingJob.objects.get(pk=job_id)
    heartbeat = _Heartbeat(job_id)
    heartbeat.start()
    try:
        version = _train_version(job)
    except TrainingDataError as exc:
        return _finish(job_id, TrainingJob.Status.FAILED, error=exc.message)
    except EngineError as exc:
        # The engine's own errors (predictions.ml.errors, pure) fail the job in their words.
        return _finish(job_id, TrainingJob.Status.FAILED, error=str(exc))
    except Exception as exc:
        logger.exception("training job %s failed", job_id)
        _finish(
            job_id,
            TrainingJob.Status.FAILED,
            error=f"Unexpected error: {type(exc).__name__}. See the worker log.",
        )
        raise
    finally:
        heartbeat.stop()
    return _finish(job_id, TrainingJob.Status.SUCCEEDED, version=version)


class _Heartbeat(threading.Thread):
    """Beats while the job runs, so a long engine stage (one fold of a slow learner can outlast
    the timeout) never looks like a dead worker to the watchdog. Dies with its process."""

    def __init__(self, job_id: int) -> None:
        super().__init__(name=f"training-heartbeat-{job_id}", daemon=True)
        self.job_id = job_id
        # Three beats per timeout, at most one a minute, at least one a second.
        self.interval = max(1.0, min(60.0, settings.MEDAI_TRAINING_HEARTBEAT_TIMEOUT / 3))
        self._stopped = threading.Event()

    def run(self) -> None:
        try:
            while not self._stopped.wait(self.interval):
                TrainingJob.objects.filter(
                    pk=self.job_id, status=TrainingJob.Status.RUNNING
                ).update(heartbeat_at=timezone.now())
        except Exception:
            logger.exception("training job %s: heartbeat failed", self.job_id)
        finally:
            connection.close()  # this thread's own connection

    def stop(self) -> None:
        self._stopped.set()
        self.join(timeout=5)


def _finish(
    job_id: int, status: str, *, error: str = "", version: ModelVersion | None = None
) -> TrainingJob:
    TrainingJob.objects.filter(pk=job_id).update(
        status=status,
        error=error[:2000],
        finished_at=timezone.now(),
        heartbeat_at=timezone.now(),
        percent=100
        if status == TrainingJob.Status.SUCCEEDED
        else TrainingJob.objects.get(pk=job_id).percent,
        stage="done" if status == TrainingJob.Status.SUCCEEDED else "failed",
    )
    return TrainingJob.objects.get(pk=job_id)


def _train_version(job: TrainingJob) -> ModelVersion:
    task = job.task
    if task.kind == PredictionTask.Kind.FORECAST:
        return _train_forecast_version(job)
    frame, snapshot = training_snapshot(task)
    TrainingJob.objects.filter(pk=job.pk).update(snapshot=snapshot)
    _progress(job.pk, "snapshot taken", 3)
    if len(frame) < MIN_TRAINING_VISITS:
        raise TrainingDataError(
            f"Only {len(frame)} visits have a confirmed primary diagnosis; at least {MIN_TRAINING_VISITS} are needed."
        )
    if frame["label"].nunique() < 2:
        raise TrainingDataError(
            "Every labelled visit has the same outcome; a model needs at least two classes."
        )

    train_idx, holdout_idx = holdout_split(
        frame["label"].astype(str).to_numpy(), frame["patient_id"].to_numpy(), HOLDOUT_SHARE, seed=0
    )
    train_frame, holdout = frame.iloc[train_idx], frame.iloc[holdout_idx]
    number = (task.versions.aggregate(n=Max("number"))["n"] or 0) + 1
    out_dir = Path(settings.MODEL_ARTIFACT_DIR) / task.slug / f"v{number}-job{job.pk}"
    out_dir.mkdir(parents=True, exist_ok=True)

    def progress(stage: str, percent: int) -> None:
        _progress(job.pk, stage, 5 + int(percent * 0.85))  # 5–90 %: the engine's share

    result = train(
        train_frame.drop(columns=["visit_id"]),
        model_spec(task),
        algorithms=algorithms_for(task),
        cv=settings.MEDAI_TRAINING_CV_FOLDS,
        seed=0,
        progress=progress,
        out_dir=out_dir,
    )
    model = result.model
    serving = _serve_mlp_onnx(model, train_frame)
    _progress(job.pk, "held-out comparison", 92)
    challenger_metrics = holdout_metrics(model, holdout, task)
    champion_metrics, unusable = None, ""
    if task.active_version is not None:
        try:
            champion = load_model(
                task.active_version.artifact_path, task.active_version.artifact_sha256
            )
            champion_metrics = holdout_metrics(champion, holdout, task)
        except EngineError as exc:
            logger.warning(
                "champion of %s unusable for comparison: %s", task.slug, type(exc).__name__
            )
            unusable = f"{type(exc).__name__}: {exc}"[:300]
    comparison = compare(challenger_metrics, champion_metrics, champion_unusable=unusable)
    comparison["holdout_visits"] = len(holdout)

    _progress(job.pk, "saving artifact", 96)
    info = save_model(model, out_dir / "model.joblib")
    neighbours = _similar_case_index(model, frame, out_dir)
    with transaction.atomic():
        version = ModelVersion.objects.create(
            task=task,
            number=number,
            training_job=job,
            algorithm=model.algorithm,
            artifact_path=str(info.path),
            artifact_sha256=info.sha256,
            artifact_size=info.size_bytes,
            feature_schema=model.feature_schema,
            label_map={str(i): c for i, c in enumerate(model.classes)},
            library_versions=model.metadata.get("library_versions", {}),
            data_hash=snapshot["hash"],
            metrics=result.report.get("selected", {}).get("metrics", {}),
            holdout_metrics=challenger_metrics,
            comparison=comparison,
            report={
                **result.report,
                **({"serving": serving} if serving else {}),
                "similar_cases_index": neighbours,
                "output_reference": output_reference_summary(task, model.classes, result),
            },
            plots={name: str(path) for name, path in result.plots.items()},
            created_by=job.started_by,
        )
        _promote_if_better(version, comparison, actor=job.started_by)
    return version


def _promote_if_better(version: ModelVersion, comparison: dict[str, Any], *, actor: Any) -> None:
    """The champion/challenger gate's verdict (``predictions.promotion.compare``) applied:
    a challenger that beat the champion on the held-out patients serves from now on."""
    if comparison["promote"]:
        registry.version_activate(
            version=version,
            action=ActivationEvent.Action.AUTO_PROMOTE,
            reason=" ".join(comparison["reasons"]),
            actor=actor,
        )


ONNX_PARITY_ROWS = 500  # training rows on which onnxruntime must reproduce the numpy logits


def _serve_mlp_onnx(model: Any, frame: pd.DataFrame) -> dict[str, Any] | None:
    """A selected tabular MLP is served by onnxruntime when its graph matches within 1e-4
    (``predictions.ml.export.serve_mlp_onnx``); the artifact then carries the ONNX graph."""
    from predictions.ml.algorithms import TorchMLPClassifier
    from predictions.ml.dataset import apply_plans
    from predictions.ml.export import serve_mlp_onnx

    estimator = getattr(model.model, "estimator", None)
    if not isinstance(estimator, TorchMLPClassifier):
        return None
    sample = frame.drop(columns=["visit_id", "label"]).head(ONNX_PARITY_ROWS)
    return serve_mlp_onnx(estimator, model.featurizer.transform(apply_plans(sample, model.plans)))


def output_reference_summary(
    task: PredictionTask, classes: list[str], result: Any
) -> dict[str, Any]:
    """What the model predicts for visits it has not seen: a sample of its out-of-fold
    predictions on the training visits, the reference monitoring compares new visits with
    (in-sample predictions of a flexible text model are far more confident than on new visits,
    which would read as drift). Numbers and class codes only."""
    from predictions.monitoring import (
        MAX_REFERENCE_VISITS,
        REFERENCE_SAMPLE_SEED,
        predictions_summary,
    )

    proba = result.oof_probabilities
    if proba is None or not len(proba):
        return {}
    proba = np.asarray(proba, dtype=float)
    if proba.ndim == 1:  # binary: probability of the positive (second) class
        proba = np.column_stack([1 - proba, proba])
    if len(proba) > MAX_REFERENCE_VISITS:
        rng = np.random.default_rng(REFERENCE_SAMPLE_SEED)
        proba = proba[np.sort(rng.choice(len(proba), MAX_REFERENCE_VISITS, replace=False))]
    summary = predictions_summary(task, classes, proba)
    return {"score": [round(s, 5) for s in summary["score"]], "top": summary["top"]}


def _similar_case_index(model: Any, frame: pd.DataFrame, out_dir: Path) -> dict[str, Any]:
    """Probability vectors of every labelled visit: 'similar' = seen alike by the model.

    Holds visit ids and numbers only (no PHI); used to show up to three similar past visits.
    """
    proba = model.predict_frame(frame.drop(columns=["visit_id", "label"]))
    path = out_dir / "similar_cases.joblib"
    joblib.dump(
        {
            "visit_ids": np.asarray(frame.index, dtype=np.int64),
            "patient_ids": frame["patient_id"].to_numpy(),
            "vectors": proba.astype(np.float32),
        },
        path,
        compress=3,
    )
    return {"path": str(path), "sha256": file_sha256(path)}


def _forecast_mode(job: TrainingJob) -> str:
    """ "finetune" for a nightly job of a task that has a model, else "full".

    full: pretraining, cross-validation of the baseline and the sequence models, the CI gate
    (monthly re-pretraining, the first training, an admin's run).
    finetune: the nightly refit of the served model (see ``_nightly_refit``).
    Either way the result is compared with the active version on the same held-out patients.
    """
    if job.trigger == TrainingJob.Trigger.SCHEDULE and job.task.active_version is not None:
        return "finetune"
    return "full"


# Versions looked at (newest first) for the last full training's pretrained encoder.
PRETRAINED_LOOKBACK = 5


def _pretrained_weights(task: PredictionTask, kind: str, champion: Any) -> tuple[Any, str]:
    """(NetWeights, which version) of the newest full training's pretrained ``kind`` encoder.

    The monthly re-pretraining writes a full version; it serves only if it won its gate, so the
    newest full version is looked up directly. Falls back to the encoder the champion carries.
    """
    from predictions.ml.timeline.artifacts import load_forecast_model

    full = task.versions.filter(training_job__snapshot__mode="full").order_by("-number")
    for version in full[:PRETRAINED_LOOKBACK]:
        try:
            model = load_forecast_model(version.artifact_path, version.artifact_sha256)
        except EngineError:
            continue
        if model.weights is not None and kind in model.weights.pretrained:
            return model.weights.pretrained[kind], f"v{version.number}"
    if champion.weights is not None and kind in champion.weights.pretrained:
        return champion.weights.pretrained[kind], "the champion"
    return None, ""


def _nightly_refit(
    task: PredictionTask,
    events: pd.DataFrame,
    labels: pd.DataFrame,
    options: Any,
    progress: Any,
) -> tuple[Any, dict[str, Any]]:
    """The nightly refit of the served forecast model; returns (model, report).

    * count baseline served: refitted from scratch on the current data (a logistic regression or
      gradient boosting has no weights to continue from); the pretrained encoders it carries are
      kept so the similar-patient embeddings and the next fine-tune still have them.
    * sequence model served: incremental fine-tuning (``predictions.ml.timeline.incremental``)
      from the newest monthly pretrained encoder, starting from the champion's fine-tuned weights
      when they descend from it; new codes extend the embedding table.
    * the weights cannot be reused (none kept, the architecture or too much of the vocabulary
      changed): a full training, like the monthly one, with the reason in the report.
    """
    from predictions.forecasting import task_config_int
    from predictions.ml.timeline.artifacts import load_forecast_model
    from predictions.ml.timeline.forecast import fit_forecast_model, train_forecast
    from predictions.ml.timeline.incremental import IncrementalRefused, finetune_incremental

    active = task.active_version
    assert active is not None  # noqa: S101 - _forecast_mode checked it
    champion = load_forecast_model(active.artifact_path, active.artifact_sha256)
    if champion.family == "count":
        model, log = fit_forecast_model(events, labels, champion.name, options, progress)
        if champion.weights is not None and champion.weights.pretrained:
            model.weights = type(champion.weights)(pretrained=champion.weights.pretrained)
        return model, {
            "mode": "finetune",
            "path": "baseline refit",
            "why": f"the served model is the count baseline ({champion.name}): refitted from "
            "scratch on the current data (it has no network weights to fine-tune)",
            "fit": log,
        }
    pretrained, source = _pretrained_weights(task, champion.name, champion)
    reason = ""
    if pretrained is None:
        reason = f"no pretrained {champion.name} weights are kept (artifact written before weights were kept)"
    else:
        progress(f"{champion.name}: incremental fine-tuning", 20)
        finetuned = champion.weights.finetuned if champion.weights is not None else None
        try:
            model, log = finetune_incremental(
                events,
                labels,
                pretrained=pretrained,
                champion=finetuned,
                options=options,
                epochs=task_config_int(task, "nightly_epochs", 3),
            )
        except IncrementalRefused as exc:
            reason = str(exc)
        else:
            return model, {
                "mode": "finetune",
                "path": "incremental",
                "why": f"fine-tuned from {log['start_reason']}; pretrained encoder of {source}",
                "incremental": log,
            }
    result = train_forecast(events, labels, options, progress)
    return result.model, {
        "mode": "full",
        "path": "full refit",
        "why": f"incremental fine-tuning not possible: {reason}",
        **result.report,
    }


def _train_forecast_version(job: TrainingJob) -> ModelVersion:
    from predictions.forecasting import (
        forecast_holdout_metrics,
        forecast_holdout_probabilities,
        forecast_holdout_risk_bins,
        forecast_options,
        task_definition,
    )
    from predictions.ml.evaluate import _clean as json_safe
    from predictions.ml.timeline.artifacts import load_forecast_model, save_forecast_model
    from predictions.ml.timeline.events import Timelines, read_events
    from predictions.ml.timeline.forecast import train_forecast
    from predictions.ml.timeline.labels import build_labels

    from .meds_export import meds_export

    task = job.task
    mode = _forecast_mode(job)
    number = (task.versions.aggregate(n=Max("number"))["n"] or 0) + 1
    out_dir = Path(settings.MODEL_ARTIFACT_DIR) / task.slug / f"v{number}-job{job.pk}"
    out_dir.mkdir(parents=True, exist_ok=True)
    # The snapshot is a MEDS export (pseudonymous, audited like any export) kept with the model.
    export = meds_export(out_dir=out_dir / "meds", actor=job.started_by, overwrite=True)
    events = read_events(export.path / "data" / "0.parquet")
    timelines = Timelines.from_frame(events)
    labels = build_labels(timelines, task_definition(task), seed=0)
    y = labels["boolean_value"].to_numpy(dtype=bool)
    snapshot = {
        "kind": "meds",
        "mode": mode,
        "path": str(export.path),
        "hash": export.sha256,
        "subjects": export.subjects,
        "events": export.events,
        "rows": len(labels),
        "class_counts": {"false": int((~y).sum()), "true": int(y.sum())},
    }
    TrainingJob.objects.filter(pk=job.pk).update(snapshot=snapshot)
    _progress(job.pk, "snapshot taken", 3)
    if len(labels) < MIN_TRAINING_VISITS:
        raise TrainingDataError(
            f"Only {len(labels)} patients have a usable prediction time for {task}; at least "
            f"{MIN_TRAINING_VISITS} are needed."
        )
    train_idx, holdout_idx = holdout_split(
        y.astype(int).astype(str), labels["subject_id"].to_numpy(), HOLDOUT_SHARE, seed=0
    )
    holdout = labels.iloc[holdout_idx]
    # Held-out patients are left out of training entirely, pretraining included.
    held = set(holdout["subject_id"].tolist())
    train_events = events[~events["subject_id"].isin(held)]

    def progress(stage: str, percent: int) -> None:
        _progress(job.pk, stage, 5 + int(percent * 0.85))

    options = forecast_options(task)
    report: dict[str, Any]
    if mode == "finetune":
        model, report = _nightly_refit(
            task, train_events, labels.iloc[train_idx], options, progress
        )
        if report["mode"] == "finetune":
            report["selected"] = {"name": model.name, "family": model.family, "metrics": {}}
        snapshot["mode"] = report["mode"]
        TrainingJob.objects.filter(pk=job.pk).update(snapshot=snapshot)
    else:
        result = train_forecast(train_events, labels.iloc[train_idx], options, progress)
        model, report = result.model, {"mode": "full", **result.report}
    _progress(job.pk, "held-out comparison", 92)
    challenger_metrics = forecast_holdout_metrics(model, timelines, holdout)
    if report["mode"] == "finetune":
        report["selected"]["metrics"] = challenger_metrics
        # A refit without cross-validation has no out-of-fold risks: the risk interval table is
        # built from the held-out patients instead (never seen in training).
        model.risk_bins = forecast_holdout_risk_bins(model, timelines, holdout)
    if model.weights is not None:
        report["weights"] = model.weights.summary()
    # Monitoring's reference for output drift: the risks given to patients the model never saw.
    report["output_reference"] = {
        "score": [
            round(float(p), 5) for p in forecast_holdout_probabilities(model, timelines, holdout)
        ]
    }
    champion_metrics, unusable = None, ""
    if task.active_version is not None:
        try:
            champion = load_forecast_model(
                task.active_version.artifact_path, task.active_version.artifact_sha256
            )
            champion_metrics = forecast_holdout_metrics(champion, timelines, holdout)
        except EngineError as exc:
            unusable = f"{type(exc).__name__}: {exc}"[:300]
    comparison = compare(challenger_metrics, champion_metrics, champion_unusable=unusable)
    comparison["holdout_visits"] = len(holdout)
    _progress(job.pk, "saving artifact", 96)
    info = save_forecast_model(model, out_dir / "forecast-model.joblib")
    report["patient_index"], report["phenotypes"] = _patient_index(model, timelines, task, out_dir)
    with transaction.atomic():
        version = ModelVersion.objects.create(
            task=task,
            number=number,
            training_job=job,
            algorithm=model.name,
            artifact_path=str(info.path),
            artifact_sha256=info.sha256,
            artifact_size=info.size_bytes,
            feature_schema={
                "kind": "forecast",
                "codes": list(task.config["codes"]),
                "horizon_days": task.config.get("horizon_days"),
                "family": model.family,
            },
            label_map={"0": "false", "1": "true"},
            library_versions=model.metadata.get("library_versions", {}),
            data_hash=export.sha256,
            metrics=json_safe(report.get("selected", {}).get("metrics", {})),
            holdout_metrics=json_safe(challenger_metrics),
            comparison=json_safe(comparison),
            report=json_safe(report),
            created_by=job.started_by,
        )
        _promote_if_better(version, comparison, actor=job.started_by)
    return version


MAX_PHENOTYPES = 6


def _patient_index(
    model: Any, timelines: Any, task: PredictionTask, out_dir: Path
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Embeddings of every patient's whole course (similar patients) and phenotype clusters.

    The index file maps pseudonymous subject ids to patient ids on the server only; the report
    keeps cluster sizes, defining codes and outcome rates, never who is in a cluster.
    """
    from patients.models import Patient
    from predictions.ml.timeline.embeddings import phenotype_clusters
    from predictions.ml.timeline.labels import outcome_subjects

    from .meds_export import subject_id_for

    if model.embedder is None:
        return None, None
    histories = timelines.full_histories()
    vectors = model.embedder.embed(timelines, histories).astype(np.float32)
    by_subject = {subject_id_for(pk): pk for pk in Patient.objects.values_list("pk", flat=True)}
    patient_ids = np.array([by_subject.get(int(s), 0) for s in timelines.subjects], dtype=np.int64)
    path = out_dir / "patient-index.joblib"
    joblib.dump(
        {"subject_ids": timelines.subjects, "patient_ids": patient_ids, "vectors": vectors},
        path,
        compress=3,
    )
    index = {"path": str(path), "sha256": file_sha256(path), "patients": len(vectors)}
    n_clusters = min(MAX_PHENOTYPES, len(vectors) // 20)
    if n_clusters < 2:
        return index, None
    outcomes = np.isin(timelines.subjects, outcome_subjects(timelines, task.config["codes"]))
    clusters = phenotype_clusters(
        vectors, timelines.subjects, timelines, histories, n_clusters=n_clusters, outcomes=outcomes
    )
    for cluster in clusters["clusters"]:
        cluster.pop("subject_ids", None)
    clusters["outcome"] = task.config.get("label", "")
    return index, clusters


def training_job_watchdog() -> dict[str, int]:
    """Jobs whose worker died: requeue (once) or fail; queued jobs never enqueued: enqueue."""
    timeout = timedelta(seconds=settings.MEDAI_TRAINING_HEARTBEAT_TIMEOUT)
    stale_before = timezone.now() - timeout
    requeued = failed = 0
    for job in TrainingJob.objects.filter(
        status=TrainingJob.Status.RUNNING, heartbeat_at__lt=stale_before
    ):
        if job.attempts < MAX_ATTEMPTS:
            updated = TrainingJob.objects.filter(
                pk=job.pk, status=TrainingJob.Status.RUNNING
            ).update(
                status=TrainingJob.Status.QUEUED,
                stage="requeued after its worker stopped",
                percent=0,
                heartbeat_at=timezone.now(),
            )
            if updated:
                requeued += 1
                _enqueue(job.pk)
        else:
            TrainingJob.objects.filter(pk=job.pk, status=TrainingJob.Status.RUNNING).update(
                status=TrainingJob.Status.FAILED,
                finished_at=timezone.now(),
                stage="failed",
                error=f"The worker stopped responding {job.attempts} times (no heartbeat for "
                f"{_duration(timeout)}); the job was abandoned.",
            )
            failed += 1
    for job in TrainingJob.objects.filter(
        status=TrainingJob.Status.QUEUED, created_at__lt=stale_before
    ):
        _enqueue(job.pk)
    return {"requeued": requeued, "failed": failed}


def _duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    return f"{seconds // 60} min" if seconds >= 120 else f"{seconds} s"
