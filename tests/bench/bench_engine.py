"""Engine benchmark: training time of all six learners on generated visits, and the single-visit
prediction path (clean -> features -> calibrated probabilities -> contributions) against bare
``predict_proba`` of the same fitted estimator on an already-built numpy row.

Run: ``python tests/bench/bench_engine.py [--visits 100000]`` (``--rows`` is the same option). Prints a table and writes
``var/bench/engine.json``. Timings are reported, never asserted (STYLE.md).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from predictions.ml.algorithms import ALGORITHMS, boosted_forest  # noqa: E402 - after path fix
from predictions.ml.dataset import clean, clean_record  # noqa: E402
from predictions.ml.evaluate import evaluate_predictions  # noqa: E402
from predictions.ml.features import Featurizer  # noqa: E402
from predictions.ml.pipeline import TrainedModel, fit_learner, usual_inputs  # noqa: E402
from predictions.ml.split import holdout_split  # noqa: E402
from visits.demo import generate_population, population_frame  # noqa: E402

# Hyper-parameter search and calibration run on this many training rows; the chosen learner is
# refitted on all of them (SVM: on its own 4,000-row cap; RBF kernels are quadratic in rows).
SEARCH_ROWS = 20_000
PREDICT_VISITS = 300


def percentile_ms(samples: list[float], q: float) -> float:
    return float(np.percentile(samples, q) * 1000)


def time_prediction(model: TrainedModel, records: list[dict[str, Any]]) -> dict[str, float]:
    """Median/p99 of the full path and of its parts, and of bare predict_proba on a ready row."""
    rows = [model.prepare(r) for r in records]
    estimator = model.model.estimator
    # SVC without Platt's internal CV has no predict_proba; its decision_function is the bare call.
    bare_call = getattr(estimator, "predict_proba", None) or estimator.decision_function
    # Gradient boosting: sklearn's one-row predict_proba pays an OpenMP region per tree; the engine
    # scores single rows with the numpy BoostedForest, whose predict_proba is timed as well.
    forest = boosted_forest(estimator)
    fast_call = forest.predict_proba if forest is not None else None
    for record in records[:20]:  # warm caches (explainer preparation, first-call overheads)
        model.predict_one(record)
    full, bare, fast, cleaning, featurising, calibrated, explaining = [], [], [], [], [], [], []
    for record, row in zip(records, rows, strict=True):
        t0 = time.perf_counter()
        model.predict_one(record)
        full.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        bare_call(row)
        bare.append(time.perf_counter() - t0)
        if fast_call is not None:
            t0 = time.perf_counter()
            fast_call(row)
            fast.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        cleaned = clean_record(record, model.plans)
        t1 = time.perf_counter()
        x = model.featurizer.transform_record(cleaned)
        t2 = time.perf_counter()
        proba = model.model.predict_proba(x)
        t3 = time.perf_counter()
        model.explainer.explain(x, int(proba[0].argmax()))
        t4 = time.perf_counter()
        cleaning.append(t1 - t0)
        featurising.append(t2 - t1)
        calibrated.append(t3 - t2)
        explaining.append(t4 - t3)
    median_full, median_bare = percentile_ms(full, 50), percentile_ms(bare, 50)
    result = {
        "predict_one_median_ms": median_full,
        "predict_one_p99_ms": percentile_ms(full, 99),
        "bare_predict_proba_median_ms": median_bare,
        "bare_predict_proba_p99_ms": percentile_ms(bare, 99),
        "ratio_to_bare": median_full / median_bare,
        "clean_median_ms": percentile_ms(cleaning, 50),
        "features_median_ms": percentile_ms(featurising, 50),
        "calibrated_proba_median_ms": percentile_ms(calibrated, 50),
        "explain_median_ms": percentile_ms(explaining, 50),
    }
    if fast:
        median_fast = percentile_ms(fast, 50)
        result.update(
            fast_bare_predict_proba_median_ms=median_fast,
            fast_bare_predict_proba_p99_ms=percentile_ms(fast, 99),
            ratio_to_fast_bare=median_full / median_fast,
            fast_bare_over_sklearn_bare=median_fast / median_bare,
        )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--visits",
        "--rows",
        dest="visits",
        type=int,
        default=100_000,
        help="generated visits (rows before cleaning); 20000 for a quick run on a busy machine",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--algorithms", nargs="+", default=list(ALGORITHMS))
    parser.add_argument("--out", type=Path, default=REPO / "var" / "bench" / "engine.json")
    args = parser.parse_args()

    results: dict[str, Any] = {
        "visits": args.visits,
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
        "search_rows": SEARCH_ROWS,
        "algorithms": {},
    }
    t0 = time.perf_counter()
    frame = population_frame(generate_population(n_visits=args.visits, seed=args.seed))
    results["generate_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    data = clean(
        frame,
        target="diagnosis_category",
        group="patient_id",
        text=["chief_complaint", "history"],
        exclude=["visit_id", "diagnosis_code"],
    )
    results["clean_s"] = time.perf_counter() - t0
    codes = np.array([data.classes.index(v) for v in data.labels])
    train_idx, test_idx = holdout_split(codes, data.groups, 0.2, args.seed)
    t0 = time.perf_counter()
    featurizer = Featurizer(data.plans).fit(data.frame.iloc[train_idx])
    X_train = featurizer.transform(data.frame.iloc[train_idx])
    X_test = featurizer.transform(data.frame.iloc[test_idx])
    results["featurise_s"] = time.perf_counter() - t0
    results.update(
        rows=len(codes),
        train_rows=len(train_idx),
        test_rows=len(test_idx),
        features=featurizer.n_features,
        classes=len(data.classes),
    )
    print(
        f"{args.visits} visits -> {len(codes)} rows after cleaning, {featurizer.n_features} features, "
        f"{len(data.classes)} classes; generate {results['generate_s']:.1f}s, clean "
        f"{results['clean_s']:.1f}s, featurise {results['featurise_s']:.1f}s"
    )
    records = [frame.iloc[i].to_dict() for i in data.raw_index[test_idx[:PREDICT_VISITS]]]
    header = (
        f"{'algorithm':<20} {'train s':>8} {'rows':>7} {'top1':>6} {'top3':>6} "
        f"{'p1 med ms':>9} {'p99 ms':>7} {'bare ms':>8} {'ratio':>6}  (clean/feat/proba/explain ms)"
    )
    print(header)
    for name in args.algorithms:
        algorithm = ALGORITHMS[name]
        t0 = time.perf_counter()
        fitted = fit_learner(
            algorithm,
            X_train,
            codes[train_idx],
            data.groups[train_idx],
            len(data.classes),
            seed=args.seed,
            max_search_rows=SEARCH_ROWS,
        )
        train_s = time.perf_counter() - t0
        model = TrainedModel(
            algorithm=name,
            params=fitted.params,
            classes=data.classes,
            task="multiclass",
            featurizer=featurizer,
            model=fitted.model,
            usual_inputs=usual_inputs(data.frame.iloc[train_idx], data.plans),
        )
        metrics = evaluate_predictions(
            data.labels[test_idx], fitted.model.predict_proba(X_test), data.classes, n_bootstrap=0
        )
        speed = time_prediction(model, records)
        entry = {
            "train_s": train_s,
            "training_rows": fitted.training_rows,
            "params": fitted.params,
            "holdout_top1": metrics["top1_accuracy"],
            "holdout_top3": metrics["top3_accuracy"],
            "holdout_roc_auc": metrics["roc_auc"],
            "explanation": model.explainer.method,
            **speed,
        }
        if fitted.training_rows < len(train_idx):
            entry["note"] = f"fitted on a stratified subsample of {fitted.training_rows} rows"
        results["algorithms"][name] = entry
        print(
            f"{name:<20} {train_s:8.1f} {fitted.training_rows:7d} {entry['holdout_top1']:6.3f} "
            f"{entry['holdout_top3']:6.3f} {speed['predict_one_median_ms']:9.3f} "
            f"{speed['predict_one_p99_ms']:7.3f} {speed['bare_predict_proba_median_ms']:8.3f} "
            f"{speed['ratio_to_bare']:6.2f}  ({speed['clean_median_ms']:.3f}/"
            f"{speed['features_median_ms']:.3f}/{speed['calibrated_proba_median_ms']:.3f}/"
            f"{speed['explain_median_ms']:.3f})",
            flush=True,
        )
        if "fast_bare_predict_proba_median_ms" in speed:
            print(
                f"{'':<20} numpy fast path predict_proba {speed['fast_bare_predict_proba_median_ms']:.3f}"
                f" ms median ({speed['fast_bare_predict_proba_p99_ms']:.3f} p99): "
                f"{speed['fast_bare_over_sklearn_bare']:.4f} x sklearn's bare call; "
                f"predict_one / fast bare = {speed['ratio_to_fast_bare']:.2f}",
                flush=True,
            )
    results["total_train_s"] = sum(a["train_s"] for a in results["algorithms"].values())
    print(
        f"training all: {results['total_train_s']:.0f} s "
        f"(search on {SEARCH_ROWS} rows, SVM on <= {ALGORITHMS['svm'].max_train_rows} rows)"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
