"""What a training job learns from and how its model is judged (reads; no writes).

The snapshot is the labelled frame of a task with its visit ids, data hash and class counts; the
held-out metrics score any fitted model on the same visits (champion and challenger alike).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pandas as pd
from django.conf import settings

from predictions.ml.dataset import normalise_label
from predictions.ml.evaluate import evaluate_predictions
from predictions.ml.pipeline import ModelSpec
from visits.catalogue import LAB_CODES, plausible_ranges

from .models import PredictionTask
from .visit_records import (
    CATEGORICAL_COLUMNS,
    OTHER_CLASS,
    TEXT_COLUMNS,
    differential_labels,
    label_provenance,
    labelled_visits,
    observation_column,
    risk_labels,
    visits_frame,
)


def algorithms_for(task: PredictionTask) -> list[str]:
    configured = task.config.get("algorithms") or settings.MEDAI_TRAINING_ALGORITHMS
    return list(configured)


def training_snapshot(task: PredictionTask) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The labelled frame for ``task`` and its snapshot (visit ids, hash, counts per class)."""
    frame = visits_frame(labelled_visits())
    if task.kind == PredictionTask.Kind.DIFFERENTIAL:
        labels = differential_labels(
            frame.index,
            min_class_visits=task.config.get("min_class_visits", 30),
            max_classes=task.config.get("max_classes", 40),
        )
    else:
        labels = risk_labels(frame.index, positive_prefixes=task.config["positive_prefixes"])
    frame["label"] = labels.reindex(frame.index).astype(object)
    visit_ids = [int(v) for v in frame.index]
    counts = {str(k): int(v) for k, v in frame["label"].value_counts().sort_index().items()}
    data_hash = hashlib.sha256(
        pd.util.hash_pandas_object(frame.drop(columns=TEXT_COLUMNS), index=True).values.tobytes()
        + json.dumps(frame[TEXT_COLUMNS].values.tolist()).encode()
    ).hexdigest()
    return frame, {
        "visit_ids": visit_ids,
        "rows": len(visit_ids),
        "hash": data_hash,
        "class_counts": counts,
        # Each label's provenance: every visit in visit_ids was labelled by a doctor; visits
        # whose labels came from advice are listed and excluded (predictions/visit_records.py).
        "label_provenance": label_provenance(used=len(visit_ids)),
    }


BODY_MEASURES = ("29463-7", "8302-2", "39156-5")  # weight, height, BMI (LOINC)


def model_spec(task: PredictionTask) -> ModelSpec:
    return ModelSpec(
        target="label",
        group="patient_id",
        categorical=CATEGORICAL_COLUMNS,
        text=TEXT_COLUMNS,
        subgroup_columns={"sex": "sex", "age": "age"},
        exclude=["visit_id"],
        positive=["1"] if task.kind == PredictionTask.Kind.RISK else None,
        plausible=plausible_ranges(),  # the engine judges values by the clinical catalogue
        # Labs are measured when a clinician orders them: their absence is no finding (the
        # engine's ordering-bias handling, predictions.ml.pipeline.FRONT_DOOR_SHARE).
        order_driven=[observation_column(code) for code in LAB_CODES],
        # The history is the doctor's, written after triage, and weight, height and BMI are taken
        # in the clinic room: front-door views remove them too, so the complaint and the triage
        # vitals alone carry each condition (the clinical vignettes' setting).
        recorded_later=["history", *(observation_column(code) for code in BODY_MEASURES)],
    )


def holdout_metrics(model: Any, frame: pd.DataFrame, task: PredictionTask) -> dict[str, Any]:
    """Metrics of ``model`` on ``frame``; labels it never learned count as its 'other' class."""
    classes = list(model.classes)
    labels = frame["label"].map(normalise_label)  # the engine's class names are normalised
    if task.kind == PredictionTask.Kind.RISK:
        # The engine names the two classes of a binary target (--positive) negative/positive.
        labels = labels.map(lambda v: classes[1] if v == "1" else classes[0])
    elif OTHER_CLASS in classes:
        labels = labels.where(labels.isin(classes), OTHER_CLASS)
    keep = labels.isin(classes).to_numpy()
    proba = model.predict_frame(frame[keep])
    return evaluate_predictions(labels[keep].to_numpy(), proba, classes, n_bootstrap=200)
