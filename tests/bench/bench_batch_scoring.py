"""Batch re-scoring benchmark: the serial path, bare ``predict_proba``, and the Celery group of
chunks with one and two real workers, cold (no cached feature rows) and on cached rows.

Run: ``MEDAI_PROFILE=test python tests/bench/bench_batch_scoring.py [--visits 100000]``
(``make bench``). It builds its own PostgreSQL database (``medai_bench_scoring``, or
``MEDAI_BENCH_BATCH_DB``; dropped afterwards unless ``--keep-db``) and starts its own
redis-server and workers, so nothing shared is touched. Prints a table and writes ``var/bench/batch_scoring.json``. Timings are reported, never asserted.

1. Train the differential task on ``--train-visits`` visits (logistic regression, 2 folds), then
   import visits up to ``--visits`` stored visits.
2. Serial path (what re-scoring was): ``visits_frame`` (decrypts the free text) +
   ``predict_frame`` (clean, featurise, predict), in this process.
3. Bare ``predict_proba`` on the already-built feature matrix (best of 3): the ceiling.
4. One worker (``--queues scoring``, concurrency 1): a warm-up run (loads the model), then a cold
   run with the feature cache emptied, then ``--repeat`` runs on cached rows (median).
5. A second worker joins (warmed by one run); ``--repeat`` runs on cached rows with both.
   Run time is from ``scoring_run_start`` to the run marked done, as this process sees it.
   Each cached run also records the CPU seconds of each component (workers, their PostgreSQL
   backends, redis, this process, the whole machine) from ``/proc``.
6. Encryption of the cache: decrypting every block as stored (AES-GCM, one value per block)
   against one Fernet token per row (measured on ``--fernet-sample`` rows, scaled to all).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import signal
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
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_advice import PG, bench_env, start_redis, start_worker, wait_for  # noqa: E402  # the benches' own helpers

# Its own database: MEDAI_BENCH_BATCH_DB names another (e.g. one per person sharing a server);
# MEDAI_BENCH_SERVING_DB, which it read first, still counts when MEDAI_BENCH_BATCH_DB is unset.
BENCH_DB = os.environ.get(
    "MEDAI_BENCH_BATCH_DB", os.environ.get("MEDAI_BENCH_SERVING_DB", "medai_bench_scoring")
)


def admin_sql(statement: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(statement)


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visits", type=int, default=100_000, help="stored visits re-scored")
    parser.add_argument("--train-visits", type=int, default=600)
    parser.add_argument("--chunk", type=int, default=10_000, help="visits per chunk (task)")
    parser.add_argument("--repeat", type=int, default=3, help="cached runs per worker count")
    parser.add_argument(
        "--warm-runs",
        type=int,
        default=3,
        help="runs before the two workers' timed ones: each worker process keeps only the "
        "feature-row blocks it scored, and the one-worker runs start with all of them kept",
    )
    parser.add_argument("--fernet-sample", type=int, default=10_000)
    parser.add_argument("--keep-db", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--reuse-db",
        action="store_true",
        help="reuse a database kept by --keep-db (trained already; tops it up to --visits; implies "
        "--keep-db)",
    )
    args = parser.parse_args()
    if args.reuse_db:
        args.keep_db = True

    work = Path(tempfile.mkdtemp(prefix="medai-bench-scoring-"))
    redis_process, port = start_redis(work)
    # Models outside the temporary directory when the database outlives the run (its versions
    # name their artifacts).
    models = REPO / "var" / "bench" / f"{BENCH_DB}-models" if args.keep_db else work / "models"
    env = bench_env(work, port, BENCH_DB, MEDAI_MODEL_DIR=str(models))
    os.environ.update(env)
    if not args.reuse_db:
        admin_sql(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        admin_sql(f"CREATE DATABASE {BENCH_DB}")
    workers: list[subprocess.Popen] = []
    try:
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)

        def spawn(name: str) -> None:
            workers.append(
                start_worker(env, work / f"{name}.log", queues="scoring", hostname=f"{name}@%h")
            )

        results = run(args, spawn, lambda: [w.pid for w in workers], redis_process.pid)
    finally:
        for worker in workers:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()
        redis_process.terminate()
        redis_process.wait()
        from django.db import connections

        connections.close_all()
        if not args.keep_db:
            admin_sql(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        shutil.rmtree(work, ignore_errors=True)
    report(results)


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (a prefork worker: the main process and its child)."""
    found = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            found.extend(process_tree(int(child)))
    return found


def machine_busy_s() -> float:
    """CPU seconds all processes of the machine spent busy (every agent's, not only ours)."""
    values = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return (sum(values[:8]) - idle) / CLOCK_TICKS


class CpuAccount:
    """CPU seconds per component over one run: the workers (process trees), the PostgreSQL
    backends of the bench database split into the workers' and this process's, redis-server,
    this process, and the whole machine. Backends that start or end within the run are missed
    (connections are kept, so the workers' are there throughout)."""

    def __init__(self, worker_pids, redis_pid: int) -> None:
        self.worker_pids, self.redis_pid = worker_pids, redis_pid

    def snapshot(self) -> dict[str, Any]:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pid, pid = pg_backend_pid() FROM pg_stat_activity "
                "WHERE datname = current_database()"
            )
            backends = cursor.fetchall()
        own = os.times()
        return {
            "workers": [process_tree(p) for p in self.worker_pids()],
            "backends": backends,
            "bench": own.user + own.system,
            "machine": machine_busy_s(),
        }

    def spent(self, before: dict[str, Any], after: dict[str, Any]) -> dict[str, float]:
        def total(pids: list[int]) -> float:
            return sum(process_cpu_s(p) for p in pids)

        worker_pids = sorted({p for tree in after["workers"] for p in tree})
        pg_workers = [p for p, own in before["backends"] if not own]
        pg_bench = [p for p, own in before["backends"] if own]
        return {
            "workers": total(worker_pids) - before["workers_cpu"],
            "pg_worker_backends": total(pg_workers) - before["pg_workers_cpu"],
            "pg_bench_backend": total(pg_bench) - before["pg_bench_cpu"],
            "redis": process_cpu_s(self.redis_pid) - before["redis_cpu"],
            "bench": after["bench"] - before["bench"],
            "machine": after["machine"] - before["machine"],
        }

    def start(self) -> dict[str, Any]:
        snap = self.snapshot()
        snap["workers_cpu"] = sum(process_cpu_s(p) for tree in snap["workers"] for p in tree)
        snap["pg_workers_cpu"] = sum(process_cpu_s(p) for p, own in snap["backends"] if not own)
        snap["pg_bench_cpu"] = sum(process_cpu_s(p) for p, own in snap["backends"] if own)
        snap["redis_cpu"] = process_cpu_s(self.redis_pid)
        return snap


def run(args: argparse.Namespace, spawn, worker_pids, redis_pid: int) -> dict[str, Any]:
    from django.db import connection

    from predictions.ml.artifacts import load_model
    from predictions.ml.dataset import apply_plans
    from predictions.models import FeatureRowBlock, ScoringRun
    from predictions.services.batch_scoring import scoring_run_start
    from predictions.visit_records import visits_frame
    from visits.models import Visit

    task, version = build(args)
    call_command_analyze(connection)

    # --- serial path and bare predict_proba ------------------------------------------------------
    model = load_model(version.artifact_path, version.artifact_sha256)
    t0 = time.perf_counter()
    frame = visits_frame(Visit.objects.all())
    t_frame = time.perf_counter() - t0
    t0 = time.perf_counter()
    serial_proba = model.predict_frame(frame)
    t_predict_frame = time.perf_counter() - t0
    t0 = time.perf_counter()
    matrix = model.featurizer.transform(apply_plans(frame, model.plans))
    t_features = time.perf_counter() - t0
    bare_runs = []
    for _ in range(3):
        t0 = time.perf_counter()
        model.model.predict_proba(matrix)
        bare_runs.append(time.perf_counter() - t0)
    t_bare = min(bare_runs)
    n = len(frame)
    nnz_per_row = float(matrix.nnz / n) if hasattr(matrix, "nnz") else float(matrix.shape[1])
    print(f"serial path and bare predict_proba measured (load {load_average()})", flush=True)

    # --- the group of chunks ----------------------------------------------------------------------
    account = CpuAccount(worker_pids, redis_pid)

    def one_run() -> dict[str, Any]:
        cpu_before = account.start()
        started = time.perf_counter()
        scoring = scoring_run_start(task=task, actor=None, chunk_visits=args.chunk)
        wait_for(
            lambda: ScoringRun.objects.filter(pk=scoring.pk, status="done").exists(),
            f"scoring run {scoring.pk}",
            timeout=1800.0,
            # Polling is a query: every 20 ms, not wait_for's 5, so the polling takes little
            # of the CPU the workers and PostgreSQL share with this process.
            interval=0.02,
        )
        seconds = time.perf_counter() - started
        cpu = account.spent(cpu_before, account.snapshot())
        chunks = list(scoring.chunks.values_list("visits", "cache_hits", "compute_ms"))
        return {
            "run": scoring.pk,
            "seconds": seconds,
            "visits": sum(c[0] for c in chunks),
            "cache_hits": sum(c[1] for c in chunks),
            "worker_ms": sum(c[2] for c in chunks),
            "chunks": len(chunks),
            "cpu_s": {k: round(v, 3) for k, v in cpu.items()},
            "load": load_average(),
        }

    def median_of(runs: list[dict[str, float]]) -> dict[str, Any]:
        seconds = statistics.median(r["seconds"] for r in runs)
        return {
            "median_s": round(seconds, 3),
            "runs_s": [round(r["seconds"], 3) for r in runs],
            "visits_per_s": round(n / seconds),
            "cache_hits": [r["cache_hits"] for r in runs],
            "worker_ms_median": round(statistics.median(r["worker_ms"] for r in runs), 1),
            "chunks": runs[0]["chunks"],
            # Load average and CPU seconds per component at the end of the median run.
            "load": sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]["load"],
            "cpu_s": sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]["cpu_s"],
        }

    spawn("scorer1")
    one_run()  # warm-up: the worker loads the model (and fills the cache)
    FeatureRowBlock.objects.all().delete()
    cold = one_run()
    if cold["cache_hits"] != 0 or cold["visits"] != n:
        raise SystemExit(f"cold run: {cold}")
    print(f"one worker, cold: {cold['seconds']:.2f} s (load {load_average()})", flush=True)
    one = [one_run() for _ in range(args.repeat)]
    if any(r["cache_hits"] != n for r in one):
        raise SystemExit("cached runs missed the cache")
    print(f"one worker, cached: {[round(r['seconds'], 2) for r in one]} s", flush=True)
    spawn("scorer2")
    # Warm-up of the second worker: a chunk goes to whichever worker is free, so each sees about
    # half the blocks per run; like the one worker, both are timed once they have kept them
    # (what long-lived workers re-scoring nightly reach). The warm-up runs are reported too.
    warm = [one_run() for _ in range(max(args.warm_runs, 1))]
    print(f"two workers, warming: {[round(r['seconds'], 2) for r in warm]} s", flush=True)
    two = [one_run() for _ in range(args.repeat)]
    print(f"two workers, cached: {[round(r['seconds'], 2) for r in two]} s", flush=True)

    from predictions.selectors import SYSTEM, scoring_run_scores

    grouped = scoring_run_scores(viewer=SYSTEM, run_id=two[-1]["run"])
    identical = bool(
        np.array_equal(grouped.index.to_numpy(), frame.index.to_numpy())
        and np.array_equal(grouped.to_numpy(), serial_proba)
    )

    encryption = measure_encryption(args.fernet_sample, n)
    stages = chunk_stages(task, version, model, args.chunk)
    cold_summary = {
        "seconds": round(cold["seconds"], 3),
        "visits_per_s": round(n / cold["seconds"]),
        "worker_ms": round(cold["worker_ms"], 1),
        "chunks": cold["chunks"],
    }
    one_summary, two_summary = median_of(one), median_of(two)
    bare_rate = n / t_bare
    return {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "setup": {
            "visits": n,
            "train_visits": args.train_visits,
            "chunk_visits": args.chunk,
            "algorithm": version.algorithm,
            "representation": model.featurizer.representation,
            "n_features": model.featurizer.n_features,
            "stored_values_per_row": round(nnz_per_row, 1),
            "workers": "Celery prefork, concurrency 1 each, queue 'scoring'; private redis-server",
        },
        "serial": {
            "frame_s": round(t_frame, 3),
            "predict_frame_s": round(t_predict_frame, 3),
            "features_s": round(t_features, 3),
            "visits_per_s": round(n / (t_frame + t_predict_frame)),
        },
        "bare": {"predict_proba_s": round(t_bare, 4), "visits_per_s": round(bare_rate)},
        "one_worker_cold": cold_summary,
        "one_worker_cached": one_summary,
        "two_workers_cached": two_summary,
        "two_workers_warming_s": [round(r["seconds"], 3) for r in warm],
        "ratios": {
            "one_cached_over_bare": round(one_summary["visits_per_s"] / bare_rate, 4),
            "two_over_one_cached": round(one_summary["median_s"] / two_summary["median_s"], 3),
            "one_cached_over_serial": round(
                one_summary["visits_per_s"] / (n / (t_frame + t_predict_frame)), 2
            ),
        },
        "group_scores_identical_to_serial": identical,
        "encryption": encryption,
        "chunk_stages_ms": stages,
    }


def build(args: argparse.Namespace) -> tuple[Any, Any]:
    """Train the differential task (unless a kept database has it) and store visits up to
    ``--visits``."""
    from patients.models import CareTeam
    from predictions.models import PredictionTask, TrainingJob
    from predictions.services.training import training_job_execute
    from tests.factories import CareTeamFactory, DoctorFactory
    from visits.demo import generate_population
    from visits.demo_import import population_import
    from visits.models import Visit

    team = CareTeam.objects.order_by("pk").first()  # a kept database's (factories' names repeat)
    doctor = team.members.order_by("pk").first() if team is not None else None
    if team is None or doctor is None:
        doctor = DoctorFactory()
        team = CareTeamFactory(members=[doctor])
    task = PredictionTask.objects.get(slug="differential")
    version = task.active_version
    if version is None:
        t0 = time.perf_counter()
        population_import(
            population=generate_population(n_visits=args.train_visits, seed=11),
            teams=[team],
            attendings=[doctor],
        )
        job = training_job_execute(job_id=TrainingJob.objects.create(task=task).pk)
        if job.status != TrainingJob.Status.SUCCEEDED:
            raise SystemExit(f"training failed: {job.error}")
        version = job.model_version
        task.refresh_from_db()  # training activated the version
        print(f"trained on {args.train_visits} visits in {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    have = Visit.objects.count()
    # The next unused seed when a kept database is topped up (slices of 20,000 after training).
    seed = 12 + max(0, have - args.train_visits + 19_999) // 20_000
    while have < args.visits:  # in slices: the generator holds a slice's population in memory
        n = min(20_000, args.visits - have)
        population = generate_population(n_visits=n, seed=seed)
        # The generator draws MRNs at random from 9 x 10^7 numbers: slices of 12,000 patients
        # meet (and the import refuses the slice) once tens of thousands are stored. Each slice's
        # patients get MRNs of their own instead.
        population = dataclasses.replace(
            population,
            patients=tuple(
                dataclasses.replace(p, mrn=f"BENCH-{seed}-{i}")
                for i, p in enumerate(population.patients)
            ),
        )
        population_import(population=population, teams=[team], attendings=[doctor])
        seed += 1
        have = Visit.objects.count()
        print(f"  {have:,} visits stored", flush=True)
    print(f"{have:,} visits stored ({time.perf_counter() - t0:.1f} s importing)", flush=True)
    return task, version


def call_command_analyze(connection) -> None:
    """Fresh planner statistics and visibility maps after the bulk import (as autovacuum would,
    later): the cache's whole-block check reads the visits' ids by an index-only scan, which
    visits every heap page again until the table is vacuumed."""
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE)")


def measure_encryption(sample: int, n: int) -> dict[str, Any]:
    from cryptography.fernet import Fernet

    from medai_site.blob_encryption import decrypt_blob
    from predictions.ml import feature_rows
    from predictions.models import FeatureRowBlock
    from predictions.services.feature_cache import _context

    blocks = list(
        FeatureRowBlock.objects.values_list("featuriser_key", "first_visit_id", "payload")
    )
    t0 = time.perf_counter()
    plain = [decrypt_blob(p, context=_context(k, f)) for k, f, p in blocks]
    t_blocks = time.perf_counter() - t0
    stored = sum(len(p) for _, _, p in blocks)
    rows = feature_rows.unpack(plain[0]).rows
    sample = min(sample, rows.shape[0])
    fernet = Fernet(Fernet.generate_key())
    tokens = [
        fernet.encrypt(
            rows.data[rows.indptr[i] : rows.indptr[i + 1]].tobytes()
            + rows.indices[rows.indptr[i] : rows.indptr[i + 1]].tobytes()
        )
        for i in range(sample)
    ]
    t0 = time.perf_counter()
    for token in tokens:
        fernet.decrypt(token)
    t_fernet = (time.perf_counter() - t0) / sample * n
    return {
        "blocks": len(blocks),
        "stored_mb": round(stored / 1e6, 1),
        "decrypt_all_blocks_s": round(t_blocks, 3),
        "fernet_per_row_all_visits_s": round(t_fernet, 3),
        "fernet_sample_rows": sample,
    }


def chunk_stages(task: Any, version: Any, model: Any, chunk: int) -> dict[str, float]:
    """Milliseconds of each stage of one cached chunk (the first), computed in this process
    (median of 5), as a worker computes it: where a chunk's time goes."""
    from django.db import transaction

    from medai_site.blob_encryption import encrypt_blob
    from predictions.models import ScoringRun
    from predictions.services import batch_scoring, feature_cache

    first, last = batch_scoring.chunk_ranges(chunk)[0]
    key = feature_cache.featuriser_key(version)
    rows = feature_cache.feature_rows_for_range(
        version=version, model=model, first_visit_id=first, last_visit_id=last
    )  # the block is now kept by this process
    proba = model.model.predict_proba(rows.matrix)
    steps = {
        "fingerprint query (count, digest)": lambda: feature_cache.range_fingerprint(
            first, last, key
        ),
        "block read from the table": lambda: feature_cache._stored_payload(key, first),
        "decrypt + unpack": lambda: feature_cache._unpacked(
            key, first, feature_cache.RECENT_BLOCKS._blocks[(key, first)][2]
        ),
        "feature rows, kept block (all of it)": lambda: feature_cache.feature_rows_for_range(
            version=version, model=model, first_visit_id=first, last_visit_id=last
        ),
        "predict_proba": lambda: model.model.predict_proba(rows.matrix),
        "pack + encrypt scores": lambda: encrypt_blob(
            batch_scoring.pack_scores(rows.ids, proba), context=b"bench"
        ),
    }
    out: dict[str, float] = {}
    for name, step in steps.items():
        samples = []
        for _ in range(5):
            t0 = time.perf_counter()
            step()
            samples.append((time.perf_counter() - t0) * 1000)
        out[name] = round(statistics.median(samples), 2)
    samples = []
    for _ in range(5):
        # A run of its own each time (never done: a million chunks expected), deleted after.
        run = ScoringRun.objects.create(
            task=task,
            version=version,
            chunk_visits=chunk,
            chunks_total=1_000_000,
            visits_total=0,
        )
        t0 = time.perf_counter()
        batch_scoring.scoring_chunk_compute(run_id=run.pk, first_visit_id=first, last_visit_id=last)
        samples.append((time.perf_counter() - t0) * 1000)
        with transaction.atomic():
            run.delete()
    out["whole chunk (scoring_chunk_compute)"] = round(statistics.median(samples), 2)
    return out


def report(r: dict[str, Any]) -> None:
    s, n = r["setup"], r["setup"]["visits"]
    print(
        f"\nbatch re-scoring of {n:,} stored visits ({s['algorithm']}, {s['representation']} "
        f"text, {s['n_features']:,} features, {s['stored_values_per_row']} stored values/row; "
        f"chunks of {s['chunk_visits']:,})"
    )
    rows = [
        (
            "bare predict_proba on the built matrix",
            r["bare"]["predict_proba_s"],
            r["bare"]["visits_per_s"],
        ),
        (
            "serial: visits_frame + predict_frame (before)",
            r["serial"]["frame_s"] + r["serial"]["predict_frame_s"],
            r["serial"]["visits_per_s"],
        ),
        (
            "group, 1 worker, cold (no cached rows)",
            r["one_worker_cold"]["seconds"],
            r["one_worker_cold"]["visits_per_s"],
        ),
        (
            "group, 1 worker, cached rows (median)",
            r["one_worker_cached"]["median_s"],
            r["one_worker_cached"]["visits_per_s"],
        ),
        (
            "group, 2 workers, cached rows (median)",
            r["two_workers_cached"]["median_s"],
            r["two_workers_cached"]["visits_per_s"],
        ),
    ]
    print(f"{'':<48}{'seconds':>10}{'visits/s':>12}")
    for name, seconds, rate in rows:
        print(f"{name:<48}{seconds:>10.3f}{rate:>12,}")
    ratios = r["ratios"]
    print(f"1 worker cached / bare predict_proba: {ratios['one_cached_over_bare']:.1%} (goal 25 %)")
    print(f"2 workers / 1 worker, cached:         {ratios['two_over_one_cached']:.2f}x (goal 1.7x)")
    print(f"1 worker cached / serial path:        {ratios['one_cached_over_serial']:.1f}x")
    print(f"group scores identical to the serial path: {r['group_scores_identical_to_serial']}")
    e = r["encryption"]
    print(
        f"cache at rest: {e['blocks']} blocks, {e['stored_mb']} MB; decrypting all: "
        f"{e['decrypt_all_blocks_s']:.3f} s (AES-GCM per block) vs "
        f"{e['fernet_per_row_all_visits_s']:.2f} s (one Fernet token per row, scaled from "
        f"{e['fernet_sample_rows']:,} rows)"
    )
    print("one cached chunk in this process, by stage (ms, median of 5):")
    for name, ms in r["chunk_stages_ms"].items():
        print(f"  {name:<44}{ms:>8.1f}")
    print("CPU seconds in the median cached run (cores busy = CPU s / wall s):")
    print(f"{'':<28}{'1 worker':>12}{'2 workers':>12}")
    one, two = r["one_worker_cached"], r["two_workers_cached"]
    for key in ("workers", "pg_worker_backends", "pg_bench_backend", "redis", "bench", "machine"):
        print(f"{key:<28}{one['cpu_s'][key]:>12.2f}{two['cpu_s'][key]:>12.2f}")
    print(
        f"{'cores busy, whole machine':<28}{one['cpu_s']['machine'] / one['median_s']:>12.2f}"
        f"{two['cpu_s']['machine'] / two['median_s']:>12.2f}  (of {r['machine']['cpus']})"
    )
    print(
        f"load average during the runs: 1 worker {r['one_worker_cached']['load']}, "
        f"2 workers {r['two_workers_cached']['load']}"
    )
    out = REPO / "var" / "bench" / "batch_scoring.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(r, indent=2))
    print(f"\nwritten: {out}")


if __name__ == "__main__":
    main()
