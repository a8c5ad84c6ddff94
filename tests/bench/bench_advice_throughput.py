"""Advice throughput: visits saved at fixed rates (open loop), one advice worker process, and
whether its backlog grows.

Run: ``MEDAI_PROFILE=test python tests/bench/bench_advice_throughput.py [--rates 20 40 60 80]
[--seconds 10]`` (``make bench``). Like bench_advice.py it builds its own PostgreSQL database
(``medai_bench_throughput``, dropped afterwards) and its own redis-server on a free port, trains
both default tasks (logistic regression) and starts ONE advice worker exactly as the Procfile's
``worker`` line does (``MEDAI_ADVICE_WORKER=1 celery -A medai_site worker --concurrency 1
--queues advice``: prefork, one pool process, late ack, no prefetch, the heartbeat thread).

For each rate, in order, from an empty backlog:

* producers: ``--producers`` forked processes (default: one per 20 visits/s) save visits through
  ``visits.services.visit_create`` (8 observations, complaint, history, plan; the outbox row and
  the after-commit dispatch to Redis) on a fixed schedule for ``--seconds``: open loop, a slot
  that comes late is still saved (never skipped), and the rate actually achieved is reported;
* ``--producer dispatch`` instead saves the visits before the window (advice dispatch held back)
  and, in the window, only hands their request ids to the broker at the rate (what the relay
  does): the worker's capacity without the producers' CPU on the same two cores;
* a sampler counts the backlog (advice requests pending, dispatched or computing) every second;
  backlog growth is the least-squares slope of those samples over the window;
* afterwards the run waits for the backlog to drain (``--drain`` seconds at most) and reports
  save -> advice stored (``AdviceRequest.finished_at`` minus the save's start, one clock) median
  and p95, the advice completed per second within the window, and the worker's CPU time per
  advice (its main and pool processes, from /proc) with the load average.

Timings are reported, never asserted (STYLE.md). Writes ``var/bench/advice_throughput.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
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

from bench_advice import PG, bench_env, start_redis, start_worker, wait_for  # noqa: E402  # the bench's own helpers

# Its own database, by default; several people benchmarking on one server name their own.
BENCH_DB = os.environ.get("MEDAI_BENCH_THROUGHPUT_DB", "medai_bench_throughput")
WORKER_APP = "medai-bench-advice-worker"
PATIENTS = 50
WARM_UP = 20  # visits before the first rate: the worker loads both models and the index
COMPLAINTS = [
    "productive cough, fever and breathlessness for {d} days",
    "chest pain radiating to the left arm since {d} hours, sweating",
    "headache and neck stiffness for {d} days",
    "burning on passing urine for {d} days, no fever",
    "abdominal pain in the right lower quadrant for {d} hours",
]


def observations(i: int) -> list:
    from visits.services import ObservationInput

    return [
        ObservationInput("8310-5", 37.0 + (i % 20) / 10, "Cel"),
        ObservationInput("8867-4", 70 + i % 50, "/min"),
        ObservationInput("9279-1", 14 + i % 12, "/min"),
        ObservationInput("8480-6", 100 + i % 60, "mm[Hg]"),
        ObservationInput("8462-4", 60 + i % 30, "mm[Hg]"),
        ObservationInput("2708-6", 90 + i % 10, "%"),
        ObservationInput("6690-2", 5 + (i % 15), "10*3/uL"),
        ObservationInput("1988-5", 2 + (i % 90), "mg/L"),
    ]


def save_visit(i: int, patient_ids: list[int], doctor_id: int) -> int:
    """One visit through the service, as a page or the API saves it; its advice request id."""
    from django.contrib.auth import get_user_model

    from patients.models import Patient
    from visits.services import visit_create

    doctor = get_user_model().objects.get(pk=doctor_id)
    visit = visit_create(
        patient=Patient.objects.get(pk=patient_ids[i % len(patient_ids)]),
        attending=doctor,
        actor=doctor,
        chief_complaint=COMPLAINTS[i % len(COMPLAINTS)].format(d=i % 7 + 1),
        history_present_illness="worse at night",
        plan="paracetamol 1 g qds; review in 48 hours",
        observations=observations(i),
    )
    return visit.pk


def _producer(
    slot: int,
    every: int,
    rate: float,
    seconds: float,
    start_at: float,
    first: int,
    patient_ids: list[int],
    doctor_id: int,
    queue: Any,
) -> None:
    """A forked producer: saves visits ``slot, slot + every, ...`` of the window on schedule."""
    from django.db import connections

    from predictions.models import AdviceRequest

    connections.close_all()  # never share the parent's socket
    saved = []
    n = int(rate * seconds)
    for j in range(slot, n, every):
        due = start_at + j / rate
        delay = due - time.time()
        if delay > 0:
            time.sleep(delay)
        begin = time.time()
        visit_id = save_visit(first + j, patient_ids, doctor_id)
        end = time.time()
        request_id = (
            AdviceRequest.objects.filter(visit_id=visit_id).values_list("pk", flat=True).first()
        )
        saved.append((due, begin, end, request_id))
    connections.close_all()
    queue.put(saved)


def _dispatcher(rate: float, request_ids: list[int], start_at: float, queue: Any) -> None:
    """The ``--producer dispatch`` mode: hand pre-saved requests to the broker on schedule."""
    from django.db import connections

    from predictions.services.outbox import advice_request_dispatch

    connections.close_all()
    sent = []
    for j, request_id in enumerate(request_ids):
        due = start_at + j / rate
        delay = due - time.time()
        if delay > 0:
            time.sleep(delay)
        begin = time.time()
        advice_request_dispatch(request_id=request_id)
        sent.append((due, begin, time.time(), request_id))
    connections.close_all()
    queue.put(sent)


def backlog_count(*, pending: bool = True) -> int:
    """Requests waiting for advice. ``pending=False`` in ``--producer dispatch`` mode: there the
    visits saved before the window wait as pending until the rate offers them to the worker."""
    from predictions.models import AdviceRequest

    waiting = [AdviceRequest.Status.DISPATCHED, AdviceRequest.Status.COMPUTING]
    if pending:
        waiting.append(AdviceRequest.Status.PENDING)
    return AdviceRequest.objects.filter(status__in=waiting).count()


def done_count() -> int:
    from predictions.models import AdviceRequest

    return AdviceRequest.objects.filter(status=AdviceRequest.Status.DONE).count()


def process_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of ``pid`` and its children still running, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def postgres_cpu_seconds(application_name: str) -> float:
    """CPU time of the PostgreSQL backends serving ``application_name`` (same machine)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s", [application_name]
        )
        pids = [row[0] for row in cursor.fetchall()]
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # PostgreSQL on another machine (or another user's /proc): not counted
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def slope(samples: list[tuple[float, int]]) -> float:
    """Backlog growth per second: least-squares slope of (seconds, backlog)."""
    if len(samples) < 2:
        return 0.0
    t = np.array([s[0] for s in samples])
    y = np.array([s[1] for s in samples], dtype=float)
    return float(np.polyfit(t, y, 1)[0])


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def start_advice_worker(env: dict[str, str], log: Path) -> subprocess.Popen:
    """The advice worker as production runs it, its PostgreSQL sessions named so that the
    database's CPU per advice can be measured."""
    return start_worker(
        {
            **env,
            "MEDAI_ADVICE_WORKER": "1",
            "DATABASE_URL": f"{env['DATABASE_URL']}?application_name={WORKER_APP}",
        },
        log,
        queues="advice",
        hostname="advice@bench",
    )


def run_rate(
    rate: float,
    args: argparse.Namespace,
    worker: subprocess.Popen,
    patient_ids: list[int],
    doctor_id: int,
    first: int,
) -> dict[str, Any]:
    from django.db import connections

    from predictions.models import AdviceRequest

    n = int(rate * args.seconds)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    pre_saved: list[int] = []
    if args.producer == "dispatch":
        from predictions.services import outbox

        real_dispatch = outbox.advice_request_dispatch
        outbox.advice_request_dispatch = lambda *, request_id: True  # held back: stays pending
        try:
            for j in range(n):  # saved before the window
                save_visit(first + j, patient_ids, doctor_id)
        finally:
            outbox.advice_request_dispatch = real_dispatch
        pre_saved = list(
            AdviceRequest.objects.filter(status=AdviceRequest.Status.PENDING)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        if len(pre_saved) != n:
            raise SystemExit(f"expected {n} pending requests, found {len(pre_saved)}")
    producers = 1 if args.producer == "dispatch" else args.producers or math.ceil(rate / 20)
    connections.close_all()  # the children must not inherit this process's connection
    start_at = time.time() + 1.0
    if args.producer == "dispatch":
        procs = [ctx.Process(target=_dispatcher, args=(rate, pre_saved, start_at, queue))]
    else:
        procs = [
            ctx.Process(
                target=_producer,
                args=(
                    k,
                    producers,
                    rate,
                    args.seconds,
                    start_at,
                    first,
                    patient_ids,
                    doctor_id,
                    queue,
                ),
            )
            for k in range(producers)
        ]
    for p in procs:
        p.start()
    while time.time() < start_at:
        time.sleep(0.01)
    cpu0, done0, load0 = process_cpu_seconds(worker.pid), done_count(), os.getloadavg()[0]
    pg0 = postgres_cpu_seconds(WORKER_APP)
    counted = args.producer != "dispatch"  # pending requests count as backlog

    def backlog() -> int:
        return backlog_count(pending=counted)

    samples: list[tuple[float, int]] = []
    window_end = start_at + args.seconds
    tick = start_at
    while time.time() < window_end:
        samples.append((time.time() - start_at, backlog()))
        tick += 1.0
        time.sleep(max(0.0, tick - time.time()))
    samples.append((time.time() - start_at, backlog()))
    cpu1, done1 = process_cpu_seconds(worker.pid), done_count()
    pg1 = postgres_cpu_seconds(WORKER_APP)
    load1 = os.getloadavg()[0]
    saved: list[tuple[float, float, float, int]] = []
    for _ in procs:
        saved += queue.get(timeout=args.seconds + 300)
    for p in procs:
        p.join()
    last_saved = max(s[2] for s in saved)
    # Drain: the rate's backlog must be gone before the next rate starts.
    drain_deadline = time.time() + args.drain
    while backlog_count() and time.time() < drain_deadline:
        samples.append((time.time() - start_at, backlog_count()))
        time.sleep(0.5)
    left = backlog_count()
    finished = dict(
        AdviceRequest.objects.filter(
            pk__in=[s[3] for s in saved], status=AdviceRequest.Status.DONE
        ).values_list("pk", "finished_at")
    )
    latency = [
        finished[rid].timestamp() - begin for _due, begin, _end, rid in saved if rid in finished
    ]
    late_start = [begin - due for due, begin, _end, _rid in saved]
    window_samples = [s for s in samples if s[0] <= args.seconds + 0.5]
    return {
        "offered_per_s": rate,
        "producer": args.producer,
        "producers": producers,
        "saved": len(saved),
        "achieved_per_s": round(len(saved) / max(last_saved - start_at, args.seconds), 1),
        "save_median_ms": ms(statistics.median([e - b for _d, b, e, _r in saved])),
        "producer_late_p95_ms": ms(float(np.percentile(late_start, 95))),
        "advice_done_in_window_per_s": round((done1 - done0) / args.seconds, 1),
        "backlog_growth_per_s": round(slope(window_samples), 2),
        "backlog_at_window_end": window_samples[-1][1],
        "backlog_left_after_drain": left,
        "save_to_advice_median_ms": ms(statistics.median(latency)) if latency else None,
        "save_to_advice_p95_ms": ms(float(np.percentile(latency, 95))) if latency else None,
        "advice_done": len(latency),
        "worker_cpu_ms_per_advice": round((cpu1 - cpu0) * 1000 / max(done1 - done0, 1), 2),
        "postgres_cpu_ms_per_advice": round((pg1 - pg0) * 1000 / max(done1 - done0, 1), 2),
        "load_average": [round(load0, 2), round(load1, 2)],
        "backlog_samples": window_samples,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[20, 40, 60, 80])
    parser.add_argument("--seconds", type=float, default=10.0, help="window per rate")
    parser.add_argument("--drain", type=float, default=120.0, help="max wait for the backlog")
    parser.add_argument("--train-visits", type=int, default=600)
    parser.add_argument("--producer", choices=["service", "dispatch"], default="service")
    parser.add_argument("--producers", type=int, default=0, help="0: one per 20 visits/s")
    parser.add_argument(
        "--out", type=Path, default=REPO / "var" / "bench" / "advice_throughput.json"
    )
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="medai-bench-throughput-"))
    redis_process, port = start_redis(work)
    env = bench_env(work, port, BENCH_DB, MEDAI_LIVE_EVENTS_URL=f"redis://127.0.0.1:{port}/1")
    os.environ.update(env)
    _database("recreate")
    worker = None
    results: dict[str, Any] = {}
    try:
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        worker_log = work / "worker.log"
        patient_ids, doctor_id = train(args)
        worker = start_advice_worker(env, worker_log)
        for i in range(WARM_UP):
            save_visit(i, patient_ids, doctor_id)
        wait_for(lambda: backlog_count() == 0, "the warm-up advice", timeout=300, interval=0.2)
        rows = []
        first = WARM_UP
        for rate in args.rates:
            row = run_rate(rate, args, worker, patient_ids, doctor_id, first)
            first += row["saved"]
            rows.append(row)
            print_row(row)
        results = {
            "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
            "setup": {
                "train_visits": args.train_visits,
                "worker": "1 Celery worker (Procfile 'worker'): prefork, concurrency 1; "
                "private redis-server (AOF); PostgreSQL",
                "seconds_per_rate": args.seconds,
                "producer": args.producer,
            },
            "rates": rows,
        }
    finally:
        if worker is not None and worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
        redis_process.terminate()
        redis_process.wait()
        from django.db import connections

        connections.close_all()
        if not args.keep_db:
            _database("drop")
        shutil.rmtree(work, ignore_errors=True)
    if results:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2))
        print(f"\nwritten: {args.out}")


def _database(action: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        if action == "recreate":
            conn.execute(f"CREATE DATABASE {BENCH_DB}")


def train(args: argparse.Namespace) -> tuple[list[int], int]:
    from predictions.models import PredictionTask, TrainingJob
    from predictions.services.training import training_job_execute
    from tests.factories import CareTeamFactory, DoctorFactory, PatientFactory
    from visits.demo import generate_population
    from visits.demo_import import population_import

    doctor = DoctorFactory()
    team = CareTeamFactory(members=[doctor])
    started = time.perf_counter()
    population_import(
        population=generate_population(n_visits=args.train_visits, seed=11),
        teams=[team],
        attendings=[doctor],
    )
    for slug in ("differential", "cad-risk"):
        job = TrainingJob.objects.create(task=PredictionTask.objects.get(slug=slug))
        job = training_job_execute(job_id=job.pk)
        if job.status != TrainingJob.Status.SUCCEEDED:
            raise SystemExit(f"training {slug} failed: {job.error}")
    print(f"trained on {args.train_visits} visits in {time.perf_counter() - started:.1f} s")
    patients = [PatientFactory(care_teams=[team]).pk for _ in range(PATIENTS)]
    return patients, doctor.pk


HEADER = (
    f"{'offered/s':>9} {'saved/s':>8} {'advice/s':>9} {'backlog +/s':>12} {'end':>5} "
    f"{'median ms':>10} {'p95 ms':>9} {'cpu ms/adv':>11} {'pg ms/adv':>10} {'load':>6}"
)


def print_row(row: dict[str, Any]) -> None:
    if not getattr(print_row, "header", False):
        print(HEADER)
        print_row.header = True  # type: ignore[attr-defined]
    print(
        f"{row['offered_per_s']:>9.0f} {row['achieved_per_s']:>8.1f} "
        f"{row['advice_done_in_window_per_s']:>9.1f} {row['backlog_growth_per_s']:>12.2f} "
        f"{row['backlog_at_window_end']:>5} {row['save_to_advice_median_ms'] or 0:>10.1f} "
        f"{row['save_to_advice_p95_ms'] or 0:>9.1f} {row['worker_cpu_ms_per_advice']:>11.2f} "
        f"{row['postgres_cpu_ms_per_advice']:>10.2f} {row['load_average'][1]:>6.2f}",
        flush=True,
    )


if __name__ == "__main__":
    main()
