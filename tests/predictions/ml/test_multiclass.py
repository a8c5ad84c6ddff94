"""Differential diagnosis on the demo generator's visits: multi-class, top-3 far above majority."""

from __future__ import annotations

import pytest

from predictions.ml.pipeline import ModelSpec, train

demo = pytest.importorskip("visits.demo")


def test_differential_diagnosis_top3_far_above_majority_baseline() -> None:
    frame = demo.population_frame(demo.generate_population(n_visits=1500, seed=0))
    spec = ModelSpec(
        target="diagnosis_category",
        group="patient_id",
        text=["chief_complaint", "history"],
        exclude=["visit_id", "diagnosis_code"],
        subgroup_columns={"sex": "sex", "age": "age"},
    )
    result = train(frame, spec, algorithms=("logistic_regression",), cv=3, seed=0, n_bootstrap=50)
    m = result.report["selected"]["metrics"]
    print(
        f"\nmulticlass ({len(result.model.classes)} ICD-10 categories, {m['n']} visits): "
        f"top-1 {m['top1_accuracy']:.3f}, top-3 {m['top3_accuracy']:.3f}, "
        f"majority baseline {m['majority_baseline_accuracy']:.3f}, macro AUC {m['roc_auc']:.3f}"
    )
    assert result.model.task == "multiclass"
    assert len(result.model.classes) >= 10
    assert m["top3_accuracy"] >= 0.8
    assert m["top1_accuracy"] >= 3 * m["majority_baseline_accuracy"]
    assert m["top3_accuracy"] > m["top1_accuracy"]
    prediction = result.model.predict_one(frame.iloc[0].to_dict())
    assert len(prediction.ranked) == len(result.model.classes)
    assert prediction.scale.startswith("calibrated logit of")
