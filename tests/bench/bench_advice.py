"""Advice benchmark: save a visit -> advice stored, through Redis and one real Celery worker, with
the engine's own single-visit time beside it; and batch re-scoring throughput.

Run: ``MEDAI_PROFILE=test python tests/bench/bench_advice.py [--visits 100000] [--latency 200]``
(``make bench``). It builds its own PostgreSQL database (``medai_bench``, dropped afterwards) and
starts its own redis-server on a free port, so nothing shared is touched. Prints a table and
writes ``var/bench/advice.json``. Timings are reported, never asserted (STYLE.md).

1. Train both default tasks on a small population (logistic regression, 2 folds: serving speed is
   measured here, not training).
2. End to end: save ``--latency`` visits one at a time through ``visit_create`` (the outbox row
   and the after-commit dispatch) and take ``AdviceRequest.finished_at - save start``: the moment
   the worker has stored the advice and marked the request done. The wait loop polls, but the
   figure comes from the timestamps, so the polling interval does not enter it.
3. Engine: ``predict_one`` on the same visits' records, per model, in this process (warm).
4. Batch: import up to ``--visits`` visits, then re-score all of them: ``visits_frame`` (three
   queries; decrypts only the two free-text columns the features use) + ``predict_frame``,
   against bare vectorised ``predict_proba`` on the already-built feature matrix.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
BENCH_DB = "medai_bench"
PG = "postgres://postgres@127.0.0.1:5432"


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def summary(samples_s: list[float]) -> dict[str, float]:
    return {
        "median_ms": ms(statistics.median(samples_s)),
        "p95_ms": ms(float(np.percentile(samples_s, 95))),
        "min_ms": ms(min(samples_s)),
        "max_ms": ms(max(samples_s)),
        "n": len(samples_s),
    }


def wait_for(condition, what: str, timeout: float = 120.0, interval: float = 0.005) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def recreate_database() -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {BENCH_DB}")


def drop_database() -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")


def start_redis(directory: Path) -> tuple[subprocess.Popen, int]:
    import redis

    port = free_port()
    process = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(directory),
            "--appendonly",
            "yes",
            "--save",
            "",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )

    def up() -> bool:
        try:
            return bool(redis.Redis(port=port).ping())
        except redis.RedisError:
            return False

    wait_for(up, "redis-server", interval=0.05)
    return process, port


def bench_env(work: Path, broker_port: int, database: str, **extra: str) -> dict[str, str]:
    """The environment every process of a benchmark runs with: the test profile on its own
    database and broker, models under ``work``, quick training."""
    return {
        **os.environ,
        "MEDAI_PROFILE": "test",
        "DJANGO_SETTINGS_MODULE": "medai_site.settings",
        "DATABASE_URL": f"{PG}/{database}",
        "CELERY_BROKER_URL": f"redis://127.0.0.1:{broker_port}/0",
        "MEDAI_MODEL_DIR": str(work / "models"),
        "MEDAI_TRAINING_ALGORITHMS": "logistic_regression",
        "MEDAI_TRAINING_CV_FOLDS": "2",
        "MEDAI_LOG_LEVEL": "WARNING",
        **extra,
    }


def start_worker(
    env: dict[str, str],
    log: Path,
    *,
    queues: str = "advice,training,celery",
    hostname: str | None = None,
) -> subprocess.Popen:
    """One Celery worker process (concurrency 1) on ``queues``, returned once it is ready."""
    named = ["--hostname", hostname] if hostname else []
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "medai_site",
            "worker",
            "--loglevel",
            "INFO",
            "--concurrency",
            "1",
            "--queues",
            queues,
            *named,
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=REPO,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    what = f"worker {hostname or queues}"
    wait_for(lambda: " ready." in log.read_text(errors="replace"), what, interval=0.1)
    return process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visits", type=int, default=100_000, help="visits re-scored in batch")
    parser.add_argument("--train-visits", type=int, default=2_000)
    parser.add_argument("--latency", type=int, default=200, help="visits saved one at a time")
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="medai-bench-"))
    redis_process, port = start_redis(work)
    env = bench_env(work, port, BENCH_DB)
    os.environ.update(env)
    recreate_database()
    worker = None
    try:
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        worker_log = work / "worker.log"
        results = run(args, env, worker_log, lambda: start_worker(env, worker_log))
        worker = results.pop("_worker")
    finally:
        if worker is not None and worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
        redis_process.terminate()
        redis_process.wait()
        from django.db import connections

        connections.close_all()
        if not args.keep_db:
            drop_database()
        shutil.rmtree(work, ignore_errors=True)
    report(results)


def run(args: argparse.Namespace, env: dict[str, str], worker_log: Path, spawn) -> dict[str, Any]:
    from django.db import connection
    from django.utils import timezone

    from predictions.ml.artifacts import load_model
    from predictions.ml.dataset import apply_plans
    from predictions.models import Advice, AdviceRequest, PredictionTask, TrainingJob
    from predictions.services.training import training_job_execute
    from predictions.visit_records import visit_record, visits_frame
    from tests.factories import CareTeamFactory, DoctorFactory, PatientFactory
    from visits.demo import generate_population
    from visits.demo_import import population_import
    from visits.models import Visit
    from visits.services import ObservationInput, visit_create

    doctor = DoctorFactory()
    team = CareTeamFactory(members=[doctor])
    started = time.perf_counter()
    population_import(
        population=generate_population(n_visits=args.train_visits, seed=11),
        teams=[team],
        attendings=[doctor],
    )
    versions = {}
    for slug in ("differential", "cad-risk"):
        job = TrainingJob.objects.create(task=PredictionTask.objects.get(slug=slug))
        job = training_job_execute(job_id=job.pk)
        if job.status != TrainingJob.Status.SUCCEEDED:
            raise SystemExit(f"training {slug} failed: {job.error}")
        versions[slug] = job.model_version
    print(f"trained on {args.train_visits} visits in {time.perf_counter() - started:.1f} s")

    worker = spawn()
    observations = [
        ObservationInput("8310-5", 38.4, "Cel"),
        ObservationInput("8867-4", 104, "/min"),
        ObservationInput("9279-1", 22, "/min"),
        ObservationInput("8480-6", 118, "mm[Hg]"),
        ObservationInput("8462-4", 74, "mm[Hg]"),
        ObservationInput("2708-6", 93, "%"),
        ObservationInput("6690-2", 14.2, "10*3/uL"),
        ObservationInput("1988-5", 85, "mg/L"),
    ]
    patients = [PatientFactory(care_teams=[team]) for _ in range(20)]

    def save_and_wait(i: int) -> tuple[float, float, AdviceRequest]:
        begin = timezone.now()
        t0 = time.perf_counter()
        visit = visit_create(
            patient=patients[i % len(patients)],
            attending=doctor,
            actor=doctor,
            chief_complaint=f"productive cough, fever and breathlessness for {i % 7 + 1} days",
            history_present_illness="worse at night; no chest pain",
            observations=observations,
        )
        saved = time.perf_counter() - t0
        request = visit.advice_requests.get()
        wait_for(
            lambda: AdviceRequest.objects.filter(pk=request.pk, status="done").exists(),
            f"advice for request {request.pk}",
        )
        request.refresh_from_db()
        return (request.finished_at - begin).total_seconds(), saved, request

    for i in range(5):  # warm-up: the worker loads both models and the similar-case index once
        save_and_wait(i)
    end_to_end, save_only, compute_ms, requests = [], [], [], []
    for i in range(args.latency):
        total, saved, request = save_and_wait(i)
        end_to_end.append(total)
        save_only.append(saved)
        requests.append(request)
    compute_ms = list(
        Advice.objects.filter(pk__in=[r.advice_id for r in requests]).values_list(
            "compute_ms", flat=True
        )
    )
    # Where the time goes, from the rows' own timestamps (one clock: same machine).
    stored_at = dict(
        Advice.objects.filter(pk__in=[r.advice_id for r in requests]).values_list(
            "pk", "created_at"
        )
    )
    # On a loaded machine a worker may finish a request before the dispatch that sent it records
    # its time (the mark skips finished requests): no dispatch time then, no figure for it.
    to_worker = [
        (stored_at[r.advice_id] - r.dispatched_at).total_seconds()
        for r in requests
        if r.dispatched_at is not None
    ]
    to_done = [(r.finished_at - stored_at[r.advice_id]).total_seconds() for r in requests]

    models = {slug: load_model(v.artifact_path, v.artifact_sha256) for slug, v in versions.items()}
    engine: dict[str, list[float]] = {slug: [] for slug in models}
    engine["both"] = []
    visits = (
        Visit.objects.filter(pk__in=[r.visit_id for r in requests])
        .select_related("patient")
        .prefetch_related("observations__definition")
    )
    records = [visit_record(v) for v in visits]
    for model in models.values():  # warm the explainers
        model.predict_one(records[0])
    for record in records:
        both = 0.0
        for slug, model in models.items():
            t0 = time.perf_counter()
            model.predict_one(record)
            elapsed = time.perf_counter() - t0
            engine[slug].append(elapsed)
            both += elapsed
        engine["both"].append(both)

    # --- batch re-scoring -------------------------------------------------------------------
    have = Visit.objects.count()
    if args.visits > have:
        t0 = time.perf_counter()
        population_import(
            population=generate_population(n_visits=args.visits - have, seed=12),
            teams=[team],
            attendings=[doctor],
        )
        print(f"imported {args.visits - have} visits in {time.perf_counter() - t0:.1f} s")
    model = models["differential"]
    connection.close()
    t0 = time.perf_counter()
    frame = visits_frame(Visit.objects.all())
    t_frame = time.perf_counter() - t0
    t0 = time.perf_counter()
    batch_proba = model.predict_frame(frame)
    t_predict_frame = time.perf_counter() - t0
    t0 = time.perf_counter()
    matrix = model.featurizer.transform(apply_plans(frame, model.plans))
    t_features = time.perf_counter() - t0
    bare_runs = []
    for _ in range(3):
        t0 = time.perf_counter()
        bare_proba = model.model.predict_proba(matrix)
        bare_runs.append(time.perf_counter() - t0)
    t_bare = min(bare_runs)
    if not np.allclose(batch_proba, bare_proba):
        raise SystemExit("batch and bare probabilities differ: the two paths must agree")
    n = len(frame)
    batch_total = t_frame + t_predict_frame
    return {
        "_worker": worker,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "setup": {
            "train_visits": args.train_visits,
            "algorithm": versions["differential"].algorithm,
            "models": [str(v) for v in versions.values()],
            "worker": "1 Celery worker, prefork, concurrency 1; private redis-server (AOF)",
        },
        "end_to_end": summary(end_to_end),
        "save_only": summary(save_only),
        "worker_compute": summary([c / 1000 for c in compute_ms]),
        "dispatched_to_advice_row": summary(to_worker),
        "advice_row_to_request_done": summary(to_done),
        "engine_single_visit": {slug: summary(v) for slug, v in engine.items()},
        "batch": {
            "visits": n,
            "frame_s": round(t_frame, 3),
            "predict_frame_s": round(t_predict_frame, 3),
            "features_s": round(t_features, 3),
            "bare_predict_proba_s": round(t_bare, 4),
            "batch_visits_per_s": round(n / batch_total),
            "predict_frame_visits_per_s": round(n / t_predict_frame),
            "bare_visits_per_s": round(n / t_bare),
            "batch_over_bare": round((n / batch_total) / (n / t_bare), 4),
        },
    }


def report(results: dict[str, Any]) -> None:
    rows = [
        ("save visit -> advice stored (Redis + 1 worker)", results["end_to_end"]),
        ("  of which: visit_create + commit + dispatch", results["save_only"]),
        ("  dispatched -> advice row inserted by the worker", results["dispatched_to_advice_row"]),
        ("    of which: compute advice (Advice.compute_ms)", results["worker_compute"]),
        ("  advice row -> request marked done", results["advice_row_to_request_done"]),
    ]
    rows += [
        (f"engine predict_one: {slug}", s) for slug, s in results["engine_single_visit"].items()
    ]
    print(f"\n{'single visit':<52}{'median ms':>12}{'p95 ms':>10}{'n':>6}")
    for name, s in rows:
        print(f"{name:<52}{s['median_ms']:>12.2f}{s['p95_ms']:>10.2f}{s['n']:>6}")
    b = results["batch"]
    print(f"\nbatch re-scoring of {b['visits']:,} visits (differential model)")
    print(f"  visits_frame (3 queries, decrypt 2 text columns): {b['frame_s']:.2f} s")
    print(f"  predict_frame (clean + features + predict_proba):  {b['predict_frame_s']:.2f} s")
    print(f"  bare predict_proba on the built matrix:          {b['bare_predict_proba_s']:.3f} s")
    print(
        f"  throughput: batch {b['batch_visits_per_s']:,}/s, predict_frame only "
        f"{b['predict_frame_visits_per_s']:,}/s, bare {b['bare_visits_per_s']:,}/s "
        f"(batch/bare = {b['batch_over_bare']:.3f})"
    )
    out = REPO / "var" / "bench" / "advice.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"\nwritten: {out}")


if __name__ == "__main__":
    main()
