"""Real processes for the reliability tests: a private Redis and real Celery workers.

* ``redis_server`` (session): a redis-server of our own on a free port, with its own data
  directory and AOF persistence like production, so a test may stop and start it without
  touching the machine's shared Redis. The test process's Celery app publishes to it.
* ``workers``: starts ``celery -A medai_site worker`` subprocesses against the pytest test
  database (committed data: tests use ``transactional_db``) and that Redis; every worker is
  killed (its whole process group) in teardown, before the database is flushed. ``relay`` and
  ``web`` (gunicorn) likewise.
* ``private_postgres`` (module): a PostgreSQL cluster of our own holding a copy of the test
  database, which the module's tests and every process they start use instead of the shared
  server, so they may crash it (tests/integration/postgres_cluster.py).

Everything waits by polling with generous timeouts; nothing sleeps a fixed time to "let it
settle", so a slow, noisy machine makes the tests slower, not flaky.
"""

from __future__ import annotations

import getpass
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from .postgres_cluster import PostgresCluster

ROOT = Path(__file__).resolve().parents[2]


TIMEOUT = 90.0  # seconds any awaited condition may take on a loaded 2-core machine


def wait_for(condition: Callable[[], Any], what: str, timeout: float = TIMEOUT) -> Any:
    """Poll ``condition`` until it returns something truthy; fail naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RedisServer:
    port: int
    directory: Path
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_connect_timeout=1, socket_timeout=5)

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--appendonly",
                "yes",
                "--save",
                "",
            ],
            stdout=(self.directory / "redis.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(self.ping, f"redis-server on port {self.port}")

    def ping(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False

    def kill(self) -> None:
        """``kill -9``: a crash, not a shutdown (what the AOF holds is what survives)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


def _use_broker(url: str) -> str:
    """Point this process's Celery app at ``url``; returns the previous URL."""
    from medai_site.celery import app

    previous = app.conf.broker_url
    if app._pool is not None:
        app._pool.force_close_all()
    app.conf.broker_url = url
    app._pool = None
    app.amqp._producer_pool = None
    return previous


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory) -> Iterator[RedisServer]:
    server = RedisServer(port=_free_port(), directory=tmp_path_factory.mktemp("redis"))
    server.start()
    previous = _use_broker(server.url)
    try:
        yield server
    finally:
        _use_broker(previous)
        server.stop()


@pytest.fixture
def broker(redis_server) -> RedisServer:
    """The private Redis, running and empty at the start of each test."""
    if not redis_server.ping():
        redis_server.start()
    redis_server.client().flushall()
    return redis_server


@dataclass
class Worker:
    process: subprocess.Popen
    log: Path
    env: dict[str, str] = field(repr=False)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and pool children): a crash, not a shutdown."""
        if self.alive():
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def pool_children(self) -> list[int]:
        result = subprocess.run(
            ["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True, check=False
        )
        return [int(pid) for pid in result.stdout.split()]


def wait_ready(worker: Worker) -> None:
    wait_for(
        lambda: " ready." in worker.output() or not worker.alive(),
        "the Celery worker to be ready",
    )
    assert worker.alive(), worker.output()[-3000:]


def worker_env(broker_url: str, model_dir: Path, **overrides: str) -> dict[str, str]:
    from django.db import connection

    db = connection.settings_dict
    env = {
        **os.environ,
        "MEDAI_PROFILE": "test",
        "DJANGO_SETTINGS_MODULE": "medai_site.settings",
        "DATABASE_URL": (
            f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
        ),
        "CELERY_BROKER_URL": broker_url,
        "MEDAI_MODEL_DIR": str(model_dir),
        "MEDAI_TRAINING_ALGORITHMS": "logistic_regression",
        "MEDAI_TRAINING_CV_FOLDS": "2",
        "MEDAI_LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
    }
    env.update(overrides)
    return env


@pytest.fixture
def workers(broker, tmp_path) -> Iterator[Callable[..., Worker]]:
    """``start(queues=..., **env)`` starts a real worker and waits until it consumes (``wait=False``:
    call ``wait_ready`` later, to start several at once); all die in teardown. ``start(queues="advice", MEDAI_ADVICE_WORKER="1")`` is production's advice worker.

    ``MEDAI_ITEST_ADVICE_DELAY`` / ``MEDAI_ITEST_TRAINING_DELAY`` in ``env`` make it slow at a
    known point (tests/integration/slow_worker.py).
    """
    started: list[Worker] = []

    def start(
        queues: str = "advice,training,celery",
        wait: bool = True,
        concurrency: int = 1,
        **env_overrides: str,
    ) -> Worker:
        log = tmp_path / f"worker-{len(started)}.log"
        env = worker_env(broker.url, tmp_path / "models", **env_overrides)
        # A worker asked to be slow at a known point runs the test app that injects the delay
        # (tests/integration/slow_worker.py); production code has no test hooks.
        slow = any(k.startswith("MEDAI_ITEST_") for k in env_overrides)
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "tests.integration.slow_worker" if slow else "medai_site",
                "worker",
                "--loglevel",
                "INFO",
                "--concurrency",
                str(concurrency),
                "--queues",
                queues,
                "--hostname",
                f"itest-{uuid.uuid4().hex[:8]}@%h",
                "--without-gossip",
                "--without-mingle",
            ],
            cwd=ROOT,
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: kill() takes the pool children too
        )
        worker = Worker(process=process, log=log, env=env)
        started.append(worker)
        if wait:
            wait_ready(worker)
        return worker

    yield start
    for worker in started:
        worker.kill()


@dataclass
class Process:
    """A long-running project process (relay, gunicorn) in its own process group."""

    process: subprocess.Popen
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)


@pytest.fixture
def relay(broker, tmp_path) -> Iterator[Callable[..., Process]]:
    """``start()`` runs ``manage.py relay_outbox`` as production does (every 0.5 s here)."""
    started: list[Process] = []

    def start(**env_overrides: str) -> Process:
        log = tmp_path / f"relay-{len(started)}.log"
        process = subprocess.Popen(
            [sys.executable, "manage.py", "relay_outbox", "--interval", "0.5"],
            cwd=ROOT,
            env=worker_env(broker.url, Path("/nonexistent"), **env_overrides),
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        started.append(Process(process=process, log=log))
        return started[-1]

    yield start
    for process in started:
        process.kill()


def relay_once(broker_url: str) -> subprocess.CompletedProcess:
    """One round of the relay command, as its own process (as in production)."""
    env = worker_env(broker_url, Path("/nonexistent"), MEDAI_ADVICE_REDISPATCH_SECONDS="2")
    return subprocess.run(
        [sys.executable, "manage.py", "relay_outbox", "--once"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


@pytest.fixture(scope="module")
def private_postgres(django_db_setup, django_db_blocker) -> Iterator[PostgresCluster]:
    """The module's tests run on a private PostgreSQL cluster that they may crash.

    The test database (migrated by pytest-django on the shared server) is copied into a cluster
    of our own on a free port, and this process's connection — hence ``worker_env``'s
    ``DATABASE_URL`` for every web, worker and relay process — points there until the module
    ends. The shared server is never touched.
    """
    from django.db import connection

    db = connection.settings_dict
    with django_db_blocker.unblock():
        major = connection.pg_version // 10000
    shared = (db["HOST"], db["PORT"])
    user = db["USER"] or getpass.getuser()
    cluster = PostgresCluster.create(major=major, port=_free_port(), superuser=user)
    try:
        cluster.start()
        cluster.copy_database(
            name=db["NAME"],
            host=db["HOST"] or "127.0.0.1",
            port=int(db["PORT"] or 5432),
            user=user,
            password=db.get("PASSWORD") or "",
        )
        connection.close()
        db["HOST"], db["PORT"] = "127.0.0.1", str(cluster.port)
        try:
            yield cluster
        finally:
            connection.close()
            db["HOST"], db["PORT"] = shared
    finally:
        cluster.destroy()


@dataclass
class Web:
    process: Process
    url: str

    def workers(self) -> list[int]:
        result = subprocess.run(
            ["pgrep", "-P", str(self.process.process.pid)],
            capture_output=True,
            text=True,
            check=False,
        )
        return [int(pid) for pid in result.stdout.split()]


@pytest.fixture
def web(broker, tmp_path) -> Iterator[Callable[..., Web]]:
    """``start(**env)``: gunicorn with 2 sync workers (production's web) on a free port."""
    started: list[Process] = []

    def start(**env_overrides: str) -> Web:
        port = _free_port()
        log = tmp_path / f"gunicorn-{len(started)}.log"
        env = worker_env(broker.url, tmp_path / "models", **env_overrides)
        env |= {"MEDAI_BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "2"}
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "tests.integration.slow_wsgi",
                "--config",
                "python:medai_site.gunicorn_conf",
                "--timeout",
                "60",
            ],
            cwd=ROOT,
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        started.append(Process(process=process, log=log))
        web = Web(process=started[-1], url=f"http://127.0.0.1:{port}")

        def answers() -> bool:
            try:
                return requests.get(f"{web.url}/healthz", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_for(lambda: answers() or process.poll() is not None, "gunicorn to answer")
        assert process.poll() is None, started[-1].output()[-3000:]
        return web

    yield start
    for process in started:
        process.kill()
