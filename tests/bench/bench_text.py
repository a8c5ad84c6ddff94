"""Free-text benchmark: the CLI's 10-fold ``evaluate`` on 1,200 short English texts x 24 classes
(wall and CPU seconds, default algorithm set), engine vs the plain TF-IDF+LR baseline on the same
folds (accuracy, top-3) for that set and the bilingual benchmark, single-visit latency with text
features (linear models; the neural text models separately), and the demo differential's top-1/top-3
with the app's algorithm set.

Run: ``python tests/bench/bench_text.py [--skip-neural] [--demo-only]`` (``make bench``). Prints a table and writes
``var/bench/text.json``. Timings are reported, never asserted (STYLE.md); the machine's load
average is recorded beside them because a shared 2-core machine slows everything down.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from predictions.ml.artifacts import load_model  # noqa: E402 - after the path fix
from predictions.ml.pipeline import ModelSpec, TrainedModel, train  # noqa: E402
from tests.predictions.ml.text_baseline import accuracy_and_top3, baseline_oof  # noqa: E402

DATA = REPO / "tests" / "predictions" / "ml" / "text_data"
LATENCY_VISITS = 300


def cli_evaluate(path: Path, out: Path, *extra: str) -> dict[str, Any]:
    """Run the CLI once; wall seconds, CPU seconds of the child, and its report."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "predictions.ml",
            "evaluate",
            "--data",
            str(path),
            "--target",
            "label",
            "--out",
            str(out),
            *extra,
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    report = json.loads((out / "report.json").read_text())
    return {"wall_s": wall, "cpu_s": cpu, "report": report, "stdout": done.stdout}


def against_baseline(path: Path, report: dict[str, Any]) -> dict[str, Any]:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    proba, codes, _ = baseline_oof(frame, target="label", text="text", cv=10, seed=0)
    base_acc, base_top3 = accuracy_and_top3(proba, codes)
    m = report["selected"]["metrics"]
    return {
        "engine": report["selected"]["name"],
        "text_representation": report["selected"].get("text_representation"),
        "engine_accuracy": m["accuracy"],
        "engine_top3": m["top3_accuracy"],
        "baseline_accuracy": base_acc,
        "baseline_top3": base_top3,
        "representations": report.get("text", {}).get("representations"),
    }


def latency(model: TrainedModel, texts: list[str]) -> dict[str, float]:
    """predict_one (clean, features, calibrated probabilities, column and word explanations)."""
    for text in texts[:20]:
        model.predict_one({"text": text})
    samples = []
    for text in texts:
        started = time.perf_counter()
        model.predict_one({"text": text})
        samples.append(time.perf_counter() - started)
    return {
        "median_ms": float(np.median(samples) * 1000),
        "p99_ms": float(np.percentile(samples, 99) * 1000),
        "n": len(samples),
    }


def demo_differential() -> dict[str, Any]:
    from visits.catalogue import LAB_CODES
    from visits.demo import generate_population, population_frame

    frame = population_frame(generate_population(n_visits=3000, seed=0))
    spec = ModelSpec(
        target="diagnosis_category",
        group="patient_id",
        categorical=["sex", "visit_type"],
        text=["chief_complaint", "history"],
        exclude=["visit_id", "diagnosis_code"],
        order_driven=[f"obs_{code}" for code in LAB_CODES],  # as the app's model_spec
    )
    result = train(frame, spec, algorithms=["logistic_regression", "mlp"], cv=5, n_bootstrap=0)
    return {
        m["name"]: {
            "text_representation": m.get("text_representation"),
            "top1": m["metrics"]["top1_accuracy"],
            "top3": m["metrics"]["top3_accuracy"],
        }
        for m in result.report["models"]
    } | {"selected": result.report["selected"]["name"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--skip-neural", action="store_true", help="no CNN/GRU latency figures")
    parser.add_argument(
        "--demo-only", action="store_true", help="only the demo differential's top-1/top-3"
    )
    parser.add_argument("--out", type=Path, default=REPO / "var" / "bench" / "text.json")
    args = parser.parse_args()
    results: dict[str, Any] = {"load_average_at_start": os.getloadavg()}
    if args.demo_only:
        results["demo_differential"] = demo_differential()
        print(json.dumps(results, indent=2, default=str))
        return 0
    english, bilingual = DATA / "english_symptoms_1200.csv", DATA / "bilingual_symptoms.csv"
    with tempfile.TemporaryDirectory() as tmp:
        run = cli_evaluate(english, Path(tmp) / "en")
        results["cli_10fold_1200x24"] = {
            "wall_s": run["wall_s"],
            "cpu_s": run["cpu_s"],
            "algorithms": [m["name"] for m in run["report"]["models"]],
            "skipped": run["report"].get("skipped", {}),
            **against_baseline(english, run["report"]),
        }
        print(run["stdout"])
        english_model = load_model(
            Path(tmp) / "en" / "model.joblib", run["report"]["artifact"]["sha256"]
        )
        run = cli_evaluate(bilingual, Path(tmp) / "bi")
        results["bilingual_benchmark"] = {
            "wall_s": run["wall_s"],
            **against_baseline(bilingual, run["report"]),
        }
        bilingual_model = load_model(
            Path(tmp) / "bi" / "model.joblib", run["report"]["artifact"]["sha256"]
        )
    texts_en = pd.read_csv(english)["text"].tolist()[:LATENCY_VISITS]
    texts_bi = pd.read_csv(bilingual)["text"].tolist()[:LATENCY_VISITS]
    results["latency_linear"] = {
        f"english ({english_model.algorithm}, {english_model.featurizer.representation})": latency(
            english_model, texts_en
        ),
        f"bilingual ({bilingual_model.algorithm}, {bilingual_model.featurizer.representation})": latency(
            bilingual_model, texts_bi
        ),
    }
    if not args.skip_neural:
        frame = pd.read_csv(bilingual)
        results["latency_neural"] = {}
        for name in ("cnn_text", "gru_text"):
            started = time.perf_counter()
            model = train(
                frame, ModelSpec(target="label"), algorithms=[name], cv=2, n_bootstrap=0
            ).model
            entry = latency(model, texts_bi)
            entry["train_2fold_s"] = time.perf_counter() - started
            results["latency_neural"][name] = entry
    results["demo_differential"] = demo_differential()
    results["load_average_at_end"] = os.getloadavg()

    cli = results["cli_10fold_1200x24"]
    print(
        f"CLI 10-fold evaluate, 1,200 texts x 24 classes: {cli['wall_s']:.1f} s wall, {cli['cpu_s']:.1f} s CPU"
    )
    for key in ("cli_10fold_1200x24", "bilingual_benchmark"):
        r = results[key]
        print(
            f"{key}: engine {r['engine']} [{r['text_representation']}] accuracy {r['engine_accuracy']:.3f} "
            f"top-3 {r['engine_top3']:.3f} | TF-IDF+LR baseline {r['baseline_accuracy']:.3f} / {r['baseline_top3']:.3f}"
        )
    for group in ("latency_linear", "latency_neural"):
        for name, r in results.get(group, {}).items():
            print(
                f"{group} {name}: predict_one median {r['median_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms"
            )
    for name, r in results["demo_differential"].items():
        if isinstance(r, dict):
            print(
                f"demo differential {name} [{r['text_representation']}]: top-1 {r['top1']:.3f} top-3 {r['top3']:.3f}"
            )
    print(
        f"load average: start {results['load_average_at_start']}, end {results['load_average_at_end']}"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str))
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
