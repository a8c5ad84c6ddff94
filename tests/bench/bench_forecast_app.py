"""Forecasts in the app, measured end to end on the demo's longitudinal cohort.

Run: ``MEDAI_PROFILE=test python tests/bench/bench_forecast_app.py [--longitudinal 300]
[--algorithms count_logistic_regression count_gradient_boosting gru]``. It builds its own
PostgreSQL database (``medai_bench_forecast``, dropped afterwards), so nothing shared is touched.
Prints the figures and writes ``var/bench/forecast_app.json``; timings are reported, never
asserted (STYLE.md).

1. Import the demo population with ``--longitudinal`` followed patients (bulk services).
2. ``meds_export`` of every visit (the ``export_meds`` command's service).
3. One training job per forecast task, in-process (the trainer worker calls the same service):
   MEDS snapshot, labels, the engine's CV with the CI gate, held-out comparison, patient index.
4. The chart panel's work for 30 patients (``patient_outlook``: events, forecast with occlusion
   of visits, similar patients): median and p95.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
BENCH_DB = "medai_bench_forecast"
PG = "postgres://postgres@127.0.0.1:5432"


def _database(create: bool) -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        if create:
            conn.execute(f"CREATE DATABASE {BENCH_DB}")


def run(args: argparse.Namespace) -> dict[str, object]:
    import numpy as np
    from django.core.management import call_command
    from django.utils import timezone

    call_command("migrate", verbosity=0)
    from patients.models import Patient
    from predictions.forecasting import patient_outlook
    from predictions.models import PredictionTask, TrainingJob
    from predictions.services.meds_export import meds_export
    from predictions.services.training import training_job_execute
    from tests.factories import CareTeamFactory, DoctorFactory
    from visits.demo import generate_population
    from visits.demo_import import population_import

    out: dict[str, object] = {"longitudinal_patients": args.longitudinal}
    doctor = DoctorFactory(username="bench_doctor")
    team = CareTeamFactory(name="Bench", members=[doctor])
    started = time.perf_counter()
    population = generate_population(
        n_visits=args.visits, seed=7, longitudinal_patients=args.longitudinal
    )
    out["generate_s"] = round(time.perf_counter() - started, 2)
    started = time.perf_counter()
    imported = population_import(population=population, teams=[team], attendings=[doctor])
    out["import_s"] = round(time.perf_counter() - started, 2)
    out["patients"], out["visits"] = imported.patients, imported.visits
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        export = meds_export(out_dir=Path(folder) / "meds", actor=None)
        out["export"] = {
            "seconds": round(time.perf_counter() - started, 2),
            "subjects": export.subjects,
            "events": export.events,
            "codes": export.codes,
        }
    jobs = {}
    for task in PredictionTask.objects.filter(kind=PredictionTask.Kind.FORECAST).order_by("slug"):
        job = TrainingJob.objects.create(task=task, trigger=TrainingJob.Trigger.ADMIN)
        started = time.perf_counter()
        job = training_job_execute(job_id=job.pk)
        entry: dict[str, object] = {
            "status": job.status,
            "seconds": round(time.perf_counter() - started, 1),
            "error": job.error,
            "labels": job.snapshot.get("rows"),
            "class_counts": job.snapshot.get("class_counts"),
        }
        version = getattr(job, "model_version", None)
        if version is not None:
            report = version.report
            entry["selected"] = version.algorithm
            entry["selection"] = report["selected"]["selection"]["reason"]
            entry["models"] = {
                m["name"]: {
                    "roc_auc": m["metrics"]["roc_auc"],
                    "roc_auc_ci": m["metrics"]["roc_auc_ci"],
                }
                for m in report.get("models", [])
            }
            entry["holdout_roc_auc"] = version.holdout_metrics.get("roc_auc")
            entry["holdout_roc_auc_ci"] = version.holdout_metrics.get("roc_auc_ci")
            entry["phenotypes"] = [
                c["size"] for c in (report.get("phenotypes") or {}).get("clusters", [])
            ]
        jobs[task.slug] = entry
    out["training"] = jobs
    patients = list(
        Patient.objects.filter(mrn__startswith="MRN0").order_by("pk").values_list("pk", flat=True)
    )[:30]
    now = timezone.now()
    patient_outlook(patient_id=patients[0], at=now)  # warm: artifacts and index loaded once
    timings = []
    for pk in patients:
        started = time.perf_counter()
        patient_outlook(patient_id=pk, at=now)
        timings.append(time.perf_counter() - started)
    out["panel_ms"] = {
        "median": round(1000 * statistics.median(timings), 1),
        "p95": round(1000 * float(np.percentile(timings, 95)), 1),
        "n": len(timings),
        "what": "patient_outlook for every active forecast task (events query, forecast with "
        "occlusion of visits, similar patients' courses)",
    }
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--longitudinal", type=int, default=300)
    parser.add_argument("--visits", type=int, default=500)
    parser.add_argument("--algorithms", nargs="+", default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="medai-bench-forecast-"))
    os.environ.update(
        {
            "MEDAI_PROFILE": "test",
            "DJANGO_SETTINGS_MODULE": "medai_site.settings",
            "DATABASE_URL": f"{PG}/{BENCH_DB}",
            "MEDAI_MODEL_DIR": str(work / "models"),
            "MEDAI_LOG_LEVEL": "WARNING",
        }
    )
    if args.algorithms:
        os.environ["MEDAI_FORECAST_ALGORITHMS"] = ",".join(args.algorithms)
    _database(create=True)
    try:
        import django

        django.setup()
        results = run(args)
    finally:
        from django.db import connections

        connections.close_all()
        _database(create=False)
    target = REPO / "var" / "bench" / "forecast_app.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(results, indent=2, default=str))
    print(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
