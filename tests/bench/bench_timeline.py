"""Timeline forecast benchmark: baseline vs. sequence models with CIs, training time, latency.

Run: ``python tests/bench/bench_timeline.py [--subjects 5000] [--cv 5] [--tasks ckd ...]``.
Writes ``var/bench/timeline.json`` and prints a summary. Figures are reported, never asserted.

1. ``comparison``: ``train_forecast`` on a synthetic population (``timeline.synthetic``) per task
   (a new diagnosis within two years): every model's out-of-fold ROC AUC with its 95% CI, the
   gate's decision, and the ONNX/int8 compression table of every sequence model.
2. ``training_time``: pretraining + fine-tuning of one sequence model for one task on all labels
   (``fit_forecast_model``), the figure with a 15-minute target.
3. ``forecast_latency``: one patient's forecast *with* its visit-occlusion explanation, served by
   onnxruntime (float32 and int8) and for the count baseline; median and p90 over patients.
4. ``mlp_compression``: the tabular MLP exported, quantised and scored on grouped test folds of the
   reference datasets (Cleveland heart disease, Wisconsin breast cancer).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from predictions.ml.timeline.events import Timelines, read_events  # noqa: E402 - after path fix
from predictions.ml.timeline.forecast import (  # noqa: E402
    FORECAST_ALGORITHMS,
    ForecastOptions,
    fit_forecast_model,
    train_forecast,
)
from predictions.ml.timeline.labels import TaskDefinition, build_labels  # noqa: E402
from predictions.ml.timeline.synthetic import TASK_CODES, generate_events  # noqa: E402

HORIZON_DAYS = 730


def population(subjects: int, seed: int) -> tuple[Any, Timelines, float]:
    started = time.perf_counter()
    events = read_events(generate_events(subjects, seed=seed))
    return events, Timelines.from_frame(events), time.perf_counter() - started


def compare(timelines: Timelines, task: str, args: argparse.Namespace) -> dict[str, Any]:
    labels = build_labels(timelines, TaskDefinition(task, TASK_CODES[task], HORIZON_DAYS))
    options = ForecastOptions(
        cv=args.cv, seed=args.seed, algorithms=args.algorithms, pretrain_epochs=args.pretrain_epochs
    )
    started = time.perf_counter()
    result = train_forecast(
        timelines,
        labels,
        options,
        progress=lambda stage, _: print(f"  [{task}] {stage}", flush=True),
    )
    report = result.report
    models = [
        {
            "name": m["name"],
            "roc_auc": m["metrics"]["roc_auc"],
            "roc_auc_ci": m["metrics"]["roc_auc_ci"],
            "pr_auc": m["metrics"]["pr_auc"],
            "brier": m["metrics"]["brier"],
            "ece": m["metrics"]["ece"],
            "seconds": m["seconds"],
        }
        for m in report["models"]
    ]
    return {
        "task": f"new {task} ({', '.join(TASK_CODES[task])}) within {HORIZON_DAYS} days",
        "labels": report["dataset"]["labels"],
        "positive": report["dataset"]["positive_labels"],
        "models": models,
        "baseline": report["baseline"]["name"],
        "selected": report["selected"]["name"],
        "reason": report["selected"]["selection"]["reason"],
        "compression": report.get("compression", []),
        "pretraining": report.get("pretraining", {}).get("per_model"),
        "seconds": round(time.perf_counter() - started, 1),
    }


def latency(model: Any, events: Any, labels: Any, patients: int) -> dict[str, Any]:
    """Forecast + explanation per patient: at the labels' prediction times, and at the end of the
    longest timelines (20 visits explained one by one + the older block)."""
    by_subject = dict(iter(events.groupby("subject_id")))
    at_labels = [
        (by_subject[s], t)
        for s, t in labels[["subject_id", "prediction_time"]].itertuples(index=False)
    ][:patients]
    visits = events.dropna(subset=["time"]).groupby("subject_id")["time"].nunique()
    longest = visits.sort_values(ascending=False).index[:patients]
    at_end = [
        (by_subject[s], by_subject[s]["time"].max() + np.timedelta64(1, "s")) for s in longest
    ]
    return {
        "at_label_times": _time_forecasts(model, at_labels),
        "long_histories": _time_forecasts(model, at_end),
    }


def _time_forecasts(model: Any, cases: list[tuple[Any, Any]]) -> dict[str, float]:
    for history, when in cases[:10]:
        model.forecast(history, when)
    wall, cpu, drivers = [], [], []
    for history, when in cases:
        started, used = time.perf_counter(), time.process_time()
        forecast = model.forecast(history, when, explain=True)
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - used)
        drivers.append(len(forecast.drivers))
    return {
        "median_ms": round(1000 * float(np.median(wall)), 2),
        "p90_ms": round(1000 * float(np.percentile(wall, 90)), 2),
        # CPU time of this process: what the forecast costs when it has a core to itself.
        "cpu_median_ms": round(1000 * float(np.median(cpu)), 2),
        "patients": len(cases),
        "explained_items_median": float(np.median(drivers)),
        "load_average": round(os.getloadavg()[0], 1),
    }


def mlp_compression() -> list[dict[str, Any]]:
    import pandas as pd
    from sklearn.datasets import load_breast_cancer

    from predictions.ml.dataset import clean
    from predictions.ml.export import mlp_compression_report
    from predictions.ml.features import Featurizer
    from predictions.ml.split import grouped_folds

    out = []
    heart = REPO / ".." / "shared" / "datasets" / "heart_cleveland.csv"
    cases = []
    if heart.is_file():
        frame = pd.read_csv(heart)
        frame["target"] = (frame["target"] > 0).astype(int)
        cases.append(("heart_cleveland", frame, "target"))
    cancer = load_breast_cancer(as_frame=True).frame
    cases.append(("breast_cancer", cancer, "target"))
    for name, frame, target in cases:
        data = clean(frame, target=target)
        y = np.array([data.classes.index(v) for v in data.labels])
        # One featuriser on all rows is enough here: the figure is the float32 vs int8 gap.
        X = Featurizer(data.plans).fit(data.frame).transform(data.frame)
        folds = grouped_folds(y, np.arange(len(y)), 5, 0)
        entry = mlp_compression_report(X, y, folds)
        entry["dataset"] = name
        out.append(entry)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subjects", type=int, default=5000)
    parser.add_argument("--cv", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tasks", nargs="*", default=["ckd", "heart_failure", "diabetes"])
    parser.add_argument("--algorithms", nargs="+", choices=FORECAST_ALGORITHMS)
    parser.add_argument("--pretrain-epochs", type=int, default=3)
    parser.add_argument("--timing-model", default="gru")
    parser.add_argument("--latency-patients", type=int, default=200)
    parser.add_argument("--skip", nargs="*", default=[], choices=["comparison", "timing", "mlp"])
    parser.add_argument("--out", type=Path, default=REPO / "var" / "bench" / "timeline.json")
    args = parser.parse_args()

    events, timelines, generate_seconds = population(args.subjects, args.seed)
    result: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average_at_start": os.getloadavg(),
        },
        "population": {
            "subjects": args.subjects,
            "events": timelines.n_events,
            "generate_seconds": round(generate_seconds, 1),
        },
    }
    if "mlp" not in args.skip:
        print("mlp compression", flush=True)
        result["mlp_compression"] = mlp_compression()
    if "timing" not in args.skip:
        task = args.tasks[0] if args.tasks else "ckd"
        labels = build_labels(timelines, TaskDefinition(task, TASK_CODES[task], HORIZON_DAYS))
        print(f"training time: {args.timing_model} on {task}", flush=True)
        options = ForecastOptions(seed=args.seed, pretrain_epochs=args.pretrain_epochs)
        model, log = fit_forecast_model(timelines, labels, args.timing_model, options)
        result["training_time"] = {
            "model": args.timing_model,
            "task": task,
            "labels": len(labels),
            "pretraining_seconds": log["pretraining"]["seconds"],
            "pretraining_epochs": log["pretraining"]["epochs"],
            "finetune_seconds": log["finetune"]["seconds"],
            "finetune_epochs": log["finetune"]["epochs"],
            "total_seconds": log["seconds"],
            "target_seconds": 900,
        }
        from predictions.ml.export import OnnxModel, quantize_int8

        fp32 = latency(model, events, labels, args.latency_patients)
        assert model.onnx is not None
        model.onnx_int8, model.serve_int8 = OnnxModel(quantize_int8(model.onnx.model_bytes)), True
        int8 = latency(model, events, labels, args.latency_patients)
        baseline, _ = fit_forecast_model(timelines, labels, "count_gradient_boosting", options)
        result["forecast_latency"] = {
            f"{args.timing_model}_onnxruntime_fp32": fp32,
            f"{args.timing_model}_onnxruntime_int8": int8,
            "count_gradient_boosting": latency(baseline, events, labels, args.latency_patients),
            "what": "one patient's forecast with occlusion of its 20 most recent visits and of the older block, all variants in one batch (int8: one row at a time)",
            "target_median_ms": 20,
        }
    if "comparison" not in args.skip:
        result["comparison"] = []
        for task in args.tasks:
            print(f"comparison: {task}", flush=True)
            result["comparison"].append(compare(timelines, task, args))
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(result, indent=2, default=float))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=float))
    print(json.dumps(result, indent=2, default=float)[:20000])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
