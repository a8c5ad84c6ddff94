"""Serving benchmark: MedAI's prediction API (gunicorn, production profile) beside MLflow's
``models serve`` on the same logistic regression and inputs, plus the PHI read, the visit create
and CDS Hooks patient-view, from one load generator in one run.

Run: ``MEDAI_PROFILE=test python tests/bench/bench_serving.py [--seconds 5] [--mlflow-python
/tmp/mlflow-venv/bin/python]`` (nice it on a shared machine). It builds its own PostgreSQL
database (``medai_bench_serving``, dropped afterwards) and uses Redis DB ``--redis-db`` (default
9) as the broker (no worker runs: advice requests just queue). Timings are reported, never
asserted (STYLE.md); ``var/bench/serving.json`` keeps them.

* MedAI: ``gunicorn -c medai_site/gunicorn_conf.py`` with 2 workers, ``MEDAI_PROFILE=production``
  (test keys from the environment, no TLS redirect since the generator speaks plain HTTP),
  PostgreSQL, token auth, the ModelUse row written for each prediction, audit rows for the PHI
  read and the visit create.
* MLflow (if ``--mlflow-python`` names a Python with mlflow; never a project dependency): the
  fitted logistic regression of MedAI's differential model (its scikit-learn estimator) behind
  the featurised numeric inputs is NOT what MLflow serves: MLflow gets a scikit-learn pipeline
  (median imputer, scaler, logistic regression) fitted on the same training visits' numeric
  columns, the usual way a model reaches ``mlflow models serve``; both answer one row.
* The floor (``tests/bench/serving_floor.py``): the same gunicorn settings serving a bare WSGI
  application that makes only a prediction's three round trips (the token's budget in Redis,
  the token from PostgreSQL, the durable model-use row) and answers a fixed body: what any
  implementation with those guarantees pays on this machine before framework and model.
* Load: closed loop, a new TCP connection per request, 1 and 8 concurrent clients (threads),
  one warm-up second excluded; median, p95, p99 and requests/s per scenario, and for MedAI the
  share of time some request waited for one of the audit chain's advisory locks (a lane's;
  sampled from ``pg_locks``).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
# Overridable so two builders' runs on one server do not drop each other's database.
BENCH_DB = os.environ.get("MEDAI_BENCH_SERVING_DB", "medai_bench_serving")
PG = "postgres://postgres@127.0.0.1:5432"
TEST_KEYS = {
    "DJANGO_SECRET_KEY": "bench-only-secret-key-not-for-any-real-deployment-0123456789",
    "FIELD_ENCRYPTION_KEY": "rYq0O8lYbIEY1mRuHxMkTq4yAhG1Y4Pq0BqvJ1Hnj3c=",
    "BLIND_INDEX_KEY": "7465737420626c696e6420696e646578206b6579206e6f7420666f7220757365",
    "AUDIT_CHAIN_KEY": "t1:7465737420617564697420636861696e206b6579206e6f7420666f7220757365",
}
OBSERVATIONS = [
    ("8310-5", 38.4),
    ("8867-4", 104),
    ("9279-1", 22),
    ("8480-6", 118),
    ("8462-4", 74),
    ("2708-6", 93),
    ("6690-2", 14.2),
    ("1988-5", 85),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(port: int, path: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            conn.getresponse().read()
            conn.close()
            return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"nothing answers on port {port}")


def recreate_database() -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {BENCH_DB}")


def drop_database() -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")


# --- load generator ------------------------------------------------------------------------------
def load(
    port: int,
    method: str,
    path: str,
    make_request,
    *,
    clients: int,
    seconds: float,
    warmup: float = 1.0,
    expect: int = 200,
) -> dict[str, Any]:
    """Closed loop: each client sends, waits for the answer, sends again; new connection each.

    ``make_request() -> (body, headers)`` is called per request (outside the timed span).
    """
    latencies: list[float] = []
    errors = [0]
    completed = [0]  # every answered request, warm-up included (for CPU per request)
    lock = threading.Lock()
    start = time.perf_counter()
    measure_from = start + warmup
    stop = measure_from + seconds

    def client() -> None:
        mine: list[float] = []
        bad = 0
        done = 0
        while True:
            now = time.perf_counter()
            if now >= stop:
                break
            body, headers = make_request()
            t0 = time.perf_counter()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            conn.close()
            t1 = time.perf_counter()
            done += 1
            if t0 >= measure_from and t1 <= stop:
                if response.status != expect:
                    bad += 1
                mine.append(t1 - t0)
        with lock:
            latencies.extend(mine)
            errors[0] += bad
            completed[0] += done

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if not latencies:
        return {"n": 0}
    arr = np.array(latencies) * 1000
    return {
        "clients": clients,
        "n": len(latencies),
        "errors": errors[0],
        "median_ms": round(float(np.median(arr)), 2),
        "p95_ms": round(float(np.percentile(arr, 95)), 2),
        "p99_ms": round(float(np.percentile(arr, 99)), 2),
        "rps": round(len(latencies) / seconds, 1),
        "completed": completed[0],
    }


# The audit chain's locks as pg_locks shows them: a lane's two-int4 key (class, lane) has
# objsubid 2; the single bigint key used before lanes (AUDIT_LOCK_KEY = 0x4D45444149) has
# objsubid 1, its high half as classid and its low half as objid.
AUDIT_LOCK_SAMPLE = (
    "SELECT count(*) FILTER (WHERE NOT granted), count(*) FILTER (WHERE granted) FROM pg_locks "
    "WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = "
    "current_database()) AND ((objsubid = 2 AND classid = 1296385089) "
    "OR (objsubid = 1 AND classid = 77 AND objid = 1162101065))"
)


class LockSampler:
    """Samples, every few milliseconds during a scenario, how many PostgreSQL sessions wait for
    one of the audit chain's advisory locks (a lane's, or the single lock of before lanes) and
    how many such locks are held: whether the locks that serialise audit writers are what limits
    throughput, measured rather than assumed."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.samples: list[int] = []
        self.held: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psycopg

        with psycopg.connect(f"{PG}/{BENCH_DB}", autocommit=True) as conn:
            while not self._stop.is_set():
                row = conn.execute(AUDIT_LOCK_SAMPLE).fetchone()
                self.samples.append(int(row[0]) if row else 0)
                self.held.append(int(row[1]) if row else 0)
                time.sleep(self.interval)

    def __enter__(self) -> LockSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict[str, float]:
        if not self.samples:
            return {}
        arr = np.array(self.samples)
        return {
            "lock_waiters_mean": round(float(arr.mean()), 2),
            "lock_waiting_share": round(float((arr > 0).mean()), 3),
            "audit_locks_held_mean": round(float(np.mean(self.held)), 2),
        }


# --- MedAI -----------------------------------------------------------------------------------------
def prepare_medai(work: Path, train_visits: int) -> dict[str, Any]:
    """Population, trained models, a token with every scope, a patient; the training frame."""
    from medai_site import roles
    from medai_site.api_auth import Scope, api_token_create
    from predictions.models import PredictionTask, TrainingJob
    from predictions.services.training import training_job_execute
    from predictions.visit_records import visits_frame
    from tests.factories import CareTeamFactory, DoctorFactory, PatientFactory, UserFactory
    from visits.demo import generate_population
    from visits.demo_import import population_import
    from visits.models import Visit

    doctor = DoctorFactory(username="bench-doctor")
    team = CareTeamFactory(members=[doctor])
    population_import(
        population=generate_population(n_visits=train_visits, seed=11),
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
    token = api_token_create(
        user=doctor,
        name="bench",
        scopes=[s for s in Scope.values if s != Scope.MODELS_MANAGE],
        days=1,
        actor=doctor,
    )[1]
    patient = PatientFactory(care_teams=[team])
    ehr = UserFactory(username="bench-ehr", role=roles.INTEGRATION)
    frame = visits_frame(Visit.objects.all())
    return {
        "token": token,
        "patient_id": patient.pk,
        "versions": versions,
        "frame": frame,
        "ehr_user": ehr.username,
    }


def start_gunicorn(
    env: dict[str, str], port: int, log: Path, app: str = "medai_site.wsgi", ready: str = "/healthz"
) -> subprocess.Popen:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "medai_site/gunicorn_conf.py",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            app,
        ],
        cwd=REPO,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    wait_http(port, ready)
    return process


# --- MLflow ---------------------------------------------------------------------------------------
MLFLOW_FIT = r"""
import sys, json
import numpy as np, pandas as pd
import mlflow.sklearn
from sklearn.pipeline import make_pipeline
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import StandardScaler
from sklearn.linear_model import LogisticRegression
data = pd.read_csv(sys.argv[1])
y = data.pop("label")
model = make_pipeline(SimpleImputer(strategy="median"), StandardScaler(),
                      LogisticRegression(max_iter=2000))
model.fit(data, y)
mlflow.sklearn.save_model(model, sys.argv[2], serialization_format="cloudpickle")
print(json.dumps({"columns": list(data.columns), "classes": [str(c) for c in model.classes_]}))
"""


def start_mlflow(
    python: str, work: Path, frame, labels, port: int
) -> tuple[subprocess.Popen, list[str]]:
    numeric = ["age", *sorted(c for c in frame.columns if c.startswith("obs_"))]
    data = frame[numeric].copy()
    data["label"] = labels
    csv = work / "train.csv"
    data.to_csv(csv, index=False)
    model_dir = work / "mlflow-model"
    fitted = subprocess.run(
        [python, "-c", MLFLOW_FIT, str(csv), str(model_dir)],
        capture_output=True,
        text=True,
        check=False,
    )
    if fitted.returncode != 0:
        raise SystemExit(f"fitting the MLflow model failed:\n{fitted.stderr[-2000:]}")
    columns = json.loads(fitted.stdout.strip().splitlines()[-1])["columns"]
    log = work / "mlflow.log"
    process = subprocess.Popen(
        [
            str(Path(python).parent / "mlflow"),
            "models",
            "serve",
            "-m",
            str(model_dir),
            "--env-manager",
            "local",
            "--host",
            "127.0.0.1",
            "-p",
            str(port),
            "-w",
            "2",
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        # MLflow starts uvicorn by name: its virtualenv's bin must come first on the PATH.
        env={**os.environ, "PATH": f"{Path(python).parent}{os.pathsep}{os.environ['PATH']}"},
    )
    try:
        wait_http(port, "/ping")
    except TimeoutError:
        raise SystemExit(f"mlflow models serve did not start:\n{log.read_text()[-2000:]}") from None
    return process, columns


# --- CDS Hooks -------------------------------------------------------------------------------------
def cds_setup(work: Path, ehr_user: str) -> tuple[Any, str]:
    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP384R1())
    public = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    public["kid"] = "bench"
    clients = work / "cds-clients.json"
    clients.write_text(
        json.dumps({"https://bench.example": {"jwks": {"keys": [public]}, "user": ehr_user}})
    )
    return key, str(clients)


def cds_body() -> bytes:
    def observation(code: str, value: float) -> dict[str, Any]:
        return {
            "resource": {
                "resourceType": "Observation",
                "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
                "valueQuantity": {"value": value},
            }
        }

    return json.dumps(
        {
            "hookInstance": str(uuid.uuid4()),
            "hook": "patient-view",
            "context": {"userId": "Practitioner/1", "patientId": "p1"},
            "prefetch": {
                "patient": {"resourceType": "Patient", "gender": "male", "birthDate": "1958-01-06"},
                "observations": {
                    "resourceType": "Bundle",
                    "type": "searchset",
                    "entry": [observation(c, v) for c, v in OBSERVATIONS],
                },
                "conditions": {
                    "resourceType": "Bundle",
                    "type": "searchset",
                    "entry": [
                        {
                            "resource": {
                                "resourceType": "Condition",
                                "subject": {"reference": "Patient/p1"},
                                "code": {"text": "productive cough and fever"},
                            }
                        }
                    ],
                },
                "allergies": {"resourceType": "Bundle", "type": "searchset", "entry": []},
            },
        }
    ).encode()


def group_cpu_seconds(pgid: int) -> float:
    """CPU time (user + system) of every live process in the process group ``pgid``: a server
    started with ``start_new_session`` and its workers. Read from /proc (Linux)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended meanwhile
        if int(fields[2]) == pgid:  # fields after the name: state, ppid, pgrp, ...
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def py_spy_start(out: Path, scenario: str, master_pid: int) -> list[subprocess.Popen]:
    """py-spy on each gunicorn worker (the master's children) for one scenario; stopped by the
    caller with SIGINT. py-spy is found next to this Python or on the PATH."""
    spy = shutil.which(
        "py-spy", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    )
    if spy is None:
        raise SystemExit("--py-spy: install py-spy apart (pip install py-spy), not in the project")
    out.mkdir(parents=True, exist_ok=True)
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    slug = "".join(ch if ch.isalnum() else "-" for ch in scenario)
    return [
        subprocess.Popen(
            [
                spy,
                "record",
                "--pid",
                pid,
                "--rate",
                "250",
                "--format",
                "raw",
                "--output",
                str(out / f"{slug}-{pid}.txt"),
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for pid in children
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per scenario")
    parser.add_argument("--train-visits", type=int, default=1_000)
    parser.add_argument("--mlflow-python", default="", help="a Python with mlflow installed")
    parser.add_argument("--redis-db", type=int, default=9)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--warmup", type=float, default=3.0, help="warm-up seconds per endpoint")
    parser.add_argument(
        "--only",
        nargs="+",
        default=[],
        metavar="SUBSTRING",
        help="run only the scenarios whose name contains one of these (e.g. 'predict' 'cds')",
    )
    parser.add_argument(
        "--py-spy",
        default="",
        metavar="DIR",
        help="record each MedAI scenario's gunicorn workers with py-spy (a tool installed apart, "
        "never a project dependency) into DIR as collapsed stacks (flamegraph input), one file per worker",
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="medai-bench-serving-"))
    database_url = f"{PG}/{BENCH_DB}"
    broker = f"redis://127.0.0.1:6379/{args.redis_db}"
    os.environ.update(
        {
            "MEDAI_PROFILE": "test",
            "DJANGO_SETTINGS_MODULE": "medai_site.settings",
            "DATABASE_URL": database_url,
            "CELERY_BROKER_URL": broker,
            "MEDAI_MODEL_DIR": str(work / "models"),
            "MEDAI_TRAINING_ALGORITHMS": "logistic_regression",
            "MEDAI_TRAINING_CV_FOLDS": "2",
            "MEDAI_LOG_LEVEL": "WARNING",
        }
    )
    recreate_database()
    processes: list[subprocess.Popen] = []
    results: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "seconds_per_scenario": args.seconds,
        "scenarios": {},
    }
    try:
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        prepared = prepare_medai(work, args.train_visits)
        from django.db import connections

        connections.close_all()
        key, clients_file = cds_setup(work, prepared["ehr_user"])
        web_port = free_port()
        production = {
            **os.environ,
            **TEST_KEYS,
            "MEDAI_PROFILE": "production",
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DJANGO_SECURE_SSL_REDIRECT": "false",
            "MEDAI_AUDIT_ANCHOR_DIR": str(work / "anchors"),
            "MEDAI_API_RATE": "10000000/min",
            "MEDAI_PREDICT_RATE": "10000000/min",
            "MEDAI_CDS_HOOKS_CLIENTS_FILE": clients_file,
            "MEDAI_CDS_HOOKS_BASE_URL": "http://127.0.0.1",
            "WEB_CONCURRENCY": "2",
        }
        processes.append(start_gunicorn(production, web_port, work / "gunicorn.log"))
        # The floor (tests/bench/serving_floor.py): the same gunicorn settings serving only the
        # three round trips of a prediction (budget, token, model-use row), no framework.
        from medai_site.api_auth import token_hash

        floor_port = free_port()
        floor_env = {
            **production,
            "FLOOR_DATABASE_URL": f"{PG}/{BENCH_DB}",
            "FLOOR_REDIS_URL": broker,
            "FLOOR_TOKEN_HASH": token_hash(prepared["token"]),
            "FLOOR_VERSION_ID": str(prepared["versions"]["differential"].pk),
        }
        processes.append(
            start_gunicorn(
                floor_env, floor_port, work / "floor.log", "tests.bench.serving_floor", "/"
            )
        )
        mlflow_port = None
        columns: list[str] = []
        if args.mlflow_python:
            from predictions.visit_records import differential_labels

            frame = prepared["frame"]
            labels = differential_labels(frame.index, min_class_visits=30, max_classes=12)
            mlflow_port = free_port()
            process, columns = start_mlflow(
                args.mlflow_python,
                work,
                frame,
                labels.reindex(frame.index).fillna("other"),
                mlflow_port,
            )
            processes.append(process)
        else:
            results["mlflow"] = "not run: pass --mlflow-python (mlflow in its own virtualenv)"

        auth = {"Authorization": f"Bearer {prepared['token']}", "Content-Type": "application/json"}
        predict_body = json.dumps(
            {
                "age": 67,
                "sex": "male",
                "visit_type": "emergency",
                "chief_complaint": "productive cough and fever",
                "observations": [{"code": c, "value": v} for c, v in OBSERVATIONS],
            }
        ).encode()
        numeric_body = b""
        if columns:
            values = {"age": 67.0, **{f"obs_{c}": float(v) for c, v in OBSERVATIONS}}
            numeric_body = json.dumps(
                {
                    "dataframe_split": {
                        "columns": columns,
                        "data": [[values.get(c) for c in columns]],
                    }
                }
            ).encode()
        visit_body = json.dumps(
            {
                "chief_complaint": "productive cough and fever",
                "observations": [{"code": c, "value": v} for c, v in OBSERVATIONS],
            }
        ).encode()

        import jwt

        def cds_request_token() -> str:
            now = int(time.time())
            return jwt.encode(
                {
                    "iss": "https://bench.example",
                    "sub": "bench",
                    "aud": "http://127.0.0.1/cds-services/medai-patient-view",
                    "exp": now + 300,
                    "iat": now,
                    "jti": uuid.uuid4().hex,
                },
                key,
                algorithm="ES384",
                headers={"kid": "bench"},
            )

        def fixed(body: bytes | None, headers: dict[str, str]):
            return lambda: (body, headers)

        def cds_request() -> tuple[bytes, dict[str, str]]:
            # Each call carries a fresh JWT: a jti is good once.
            return cds_body(), {
                "Content-Type": "application/json",
                "Authorization": f"Bearer {cds_request_token()}",
            }

        json_only = {"Content-Type": "application/json"}
        patient_url = f"/api/v1/patients/{prepared['patient_id']}"
        scenarios = []
        for n in args.clients:
            if mlflow_port:
                scenarios.append(
                    (
                        f"mlflow predict (1 row) x{n}",
                        mlflow_port,
                        "POST",
                        "/invocations",
                        fixed(numeric_body, json_only),
                        n,
                        200,
                    )
                )
            scenarios += [
                (
                    f"floor: budget+token+record x{n}",
                    floor_port,
                    "POST",
                    "/",
                    fixed(predict_body, auth),
                    n,
                    200,
                ),
                (
                    f"medai predict (1 row) x{n}",
                    web_port,
                    "POST",
                    "/api/v1/models/differential/predict",
                    fixed(predict_body, auth),
                    n,
                    200,
                ),
                (
                    f"medai GET patient x{n}",
                    web_port,
                    "GET",
                    patient_url,
                    fixed(None, auth),
                    n,
                    200,
                ),
                (
                    f"medai POST visit x{n}",
                    web_port,
                    "POST",
                    f"{patient_url}/visits",
                    fixed(visit_body, auth),
                    n,
                    201,
                ),
                (
                    f"cds patient-view x{n}",
                    web_port,
                    "POST",
                    "/cds-services/medai-patient-view",
                    cds_request,
                    n,
                    200,
                ),
            ]
        if args.only:
            scenarios = [s for s in scenarios if any(o in s[0] for o in args.only)]
        # Warm every endpoint in every worker first (each gunicorn worker loads the artifacts,
        # the explainers and the catalogue on its first prediction; that is start-up, not speed).
        for name, port, method, path, make, _n, _expect in scenarios:
            if name.endswith("x1"):
                load(port, method, path, make, clients=2, seconds=args.warmup, warmup=0)
        for name, port, method, path, make, n, expect in scenarios:
            spies = (
                py_spy_start(Path(args.py_spy), name, processes[0].pid)
                if args.py_spy and port == web_port
                else []
            )
            server = {web_port: processes[0], floor_port: processes[1]}.get(port, processes[-1])
            cpu_before = group_cpu_seconds(server.pid)
            with LockSampler() as sampler:
                results["scenarios"][name] = load(
                    port, method, path, make, clients=n, seconds=args.seconds, expect=expect
                )
            served = results["scenarios"][name].get("completed") or 0
            if served:  # every request answered in the span, warm-up second included
                results["scenarios"][name]["server_cpu_ms"] = round(
                    (group_cpu_seconds(server.pid) - cpu_before) * 1000 / served, 2
                )
            for spy in spies:
                spy.send_signal(signal.SIGINT)  # py-spy writes its profile on SIGINT
                spy.wait(timeout=60)
            if port == web_port:
                results["scenarios"][name].update(sampler.summary())
            print(name, results["scenarios"][name], flush=True)
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
        from django.db import connections

        connections.close_all()
        drop_database()
        try:
            import redis

            redis.Redis.from_url(broker).flushdb()
        except Exception:  # noqa: S110 - best effort: the queued advice of the visits
            pass
        shutil.rmtree(work, ignore_errors=True)
    report(results)


def report(results: dict[str, Any]) -> None:
    print(
        f"\n{'scenario':<34}{'median ms':>10}{'p95 ms':>9}{'p99 ms':>9}{'req/s':>9}{'n':>7}{'err':>5}"
        f"{'lock wait':>10}{'cpu ms':>8}"
    )
    for name, s in results["scenarios"].items():
        if not s.get("n"):
            print(f"{name:<34}{'no data':>10}")
            continue
        print(
            f"{name:<34}{s['median_ms']:>10.2f}{s['p95_ms']:>9.2f}{s['p99_ms']:>9.2f}"
            f"{s['rps']:>9.1f}{s['n']:>7}{s['errors']:>5}"
            + (f"{s['lock_waiting_share']:>10.1%}" if "lock_waiting_share" in s else " " * 10)
            + (f"{s['server_cpu_ms']:>8.2f}" if "server_cpu_ms" in s else "")
        )
    print(
        "lock wait: share of 5 ms samples in which a request waited for one of the audit chain's "
        "advisory locks (a lane's, or the single lock of before lanes); cpu ms: the server's "
        "processes' CPU time per request answered"
    )
    if "mlflow" in results:
        print(results["mlflow"])
    out = REPO / "var" / "bench" / "serving.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"\nwritten: {out}")


if __name__ == "__main__":
    main()
