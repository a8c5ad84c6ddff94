"""``python -m predictions.ml forecast ...``: the forecast command-line contract of DESIGN.md.

Registered by :mod:`predictions.ml.cli`; bad input ends with one line on stderr and exit code 2
(raised as :class:`~predictions.ml.errors.DataError`, printed by the main command line). The inputs
are read and checked (:func:`~predictions.ml.timeline.inputs.load_inputs`) before the training code,
scikit-learn and torch are imported, so bad input fails fast.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from predictions.ml.timeline.inputs import FORECAST_ALGORITHMS, load_inputs

DEFAULT_FOLDS = 5
DEFAULT_OUT = "ml-report"


def add_forecast_parser(commands: Any) -> None:
    forecast = commands.add_parser(
        "forecast", help="count baseline vs. pretrained sequence models on MEDS timelines"
    )
    forecast.add_argument(
        "--events", required=True, type=Path, help="MEDS events (.parquet or .csv)"
    )
    forecast.add_argument(
        "--labels", required=True, type=Path, help="MEDS labels (.parquet or .csv)"
    )
    forecast.add_argument("--cv", type=int, default=DEFAULT_FOLDS, help="grouped folds (default 5)")
    forecast.add_argument("--seed", type=int, default=0)
    forecast.add_argument(
        "--algorithms",
        nargs="+",
        choices=list(FORECAST_ALGORITHMS),
        help="default: all; a count baseline is always added",
    )
    forecast.add_argument(
        "--pretrain-epochs", type=int, default=3, help="self-supervised epochs (0 = none)"
    )
    forecast.add_argument(
        "--finetune-epochs", type=int, default=20, help="most fine-tuning epochs (early stopping)"
    )
    forecast.add_argument("--out", type=Path, default=Path(DEFAULT_OUT), help="report directory")


def _fmt(value: Any) -> str:
    return "   -  " if value is None else f"{value:6.3f}"


def print_forecast_table(report: dict[str, Any]) -> None:
    data = report["dataset"]
    print(
        f"{data['subjects']} subjects, {data['events']} events, {data['labels']} labels "
        f"({data['positive_labels']} positive), {report['cv']['folds']}-fold grouped CV "
        f"(seed {report['cv']['seed']})"
    )
    print(f"{'model':<27} roc_auc  [95% CI]         pr_auc  brier    ece")
    for entry in report["models"]:
        m = entry["metrics"]
        lo, hi = m["roc_auc_ci"]
        mark = "*" if entry["name"] == report["selected"]["name"] else " "
        print(
            f"{mark}{entry['name']:<26} {_fmt(m['roc_auc'])} [{_fmt(lo)},{_fmt(hi)}] "
            f"{_fmt(m['pr_auc'])} {_fmt(m['brier'])} {_fmt(m['ece'])}"
        )
    for entry in report.get("compression", []):
        lat = entry["latency_ms"]
        print(
            f"  {entry['model']}: onnx {entry['onnx_fp32_bytes'] / 1024:.0f} KiB -> int8 "
            f"{entry['onnx_int8_bytes'] / 1024:.0f} KiB; latency torch {lat['torch']:.2f} ms, "
            f"onnxruntime {lat['onnxruntime']:.2f} ms, int8 {lat['onnxruntime_int8']:.2f} ms; "
            f"{entry['int8_decision']}"
        )
    print(f"* selected: {report['selected']['name']} ({report['selected']['selection']['reason']})")


def run_forecast(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    inputs = load_inputs(args.events, args.labels, args.cv, args.algorithms)
    from predictions.ml.evaluate import _clean as json_safe
    from predictions.ml.timeline.forecast import ForecastOptions, train_forecast

    options = ForecastOptions(
        cv=args.cv,
        seed=args.seed,
        algorithms=args.algorithms,
        pretrain_epochs=args.pretrain_epochs,
        finetune_epochs=args.finetune_epochs,
    )
    result = train_forecast(inputs.timelines, inputs.labels, options)
    report = result.report
    from predictions.ml.timeline.artifacts import save_forecast_model

    info = save_forecast_model(result.model, args.out / "forecast-model.joblib")
    report["artifact"] = {
        "path": str(info.path),
        "sha256": info.sha256,
        "size_bytes": info.size_bytes,
    }
    report["seconds"] = round(time.perf_counter() - started, 2)
    args.out.mkdir(parents=True, exist_ok=True)
    # NaN (an AUC on one-class rows) becomes null: report.json stays valid JSON for other tools.
    report = json_safe(report)
    (args.out / "report.json").write_text(
        json.dumps(report, indent=2, default=_json_default, allow_nan=False)
    )
    print_forecast_table(report)
    print(f"report: {args.out / 'report.json'}  ({report['seconds']} s)")
    return 0


def _json_default(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
