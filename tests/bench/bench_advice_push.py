"""Save -> advice visible, in Chromium, on the real stack: gunicorn (gthread), one Celery worker,
the advice pushed by server-sent events; with polling forced beside it for comparison.

Run: ``python tests/bench/bench_advice_push.py [--saves 15] [--modes embedded redis]``.
Each mode runs in a throw-away directory with its own processes, so nothing shared is touched:

- ``embedded``: ``make run``'s defaults (MEDAI_PROFILE=local): SQLite, kombu's filesystem
  broker, live events through a watched file.
- ``redis``: the test/production path: PostgreSQL (its own database ``medai_bench_push``, dropped
  afterwards), its own ``redis-server`` on a free port as broker and for pub/sub.

For each mode: a small demo population (``seed_demo --visits N``), a differential model trained
in process (logistic regression, 2 folds), ``collectstatic``, then gunicorn and a worker. Dr Chen
signs in and records ``--saves`` visits through the form; the figure is the time from the click on
"Save visit and get advice" to the first ranked suggestion on screen (form POST, redirect, page,
worker, push, panel fetch). Then the same with ``EventSource`` removed from the page, so the panel
falls back to its 2-second poll. Prints medians, writes ``var/bench/advice_push.json``. Timings
are reported, never asserted (STYLE.md).
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

REPO = Path(__file__).resolve().parents[2]
PG = "postgres://postgres@127.0.0.1:5432"
BENCH_DB = "medai_bench_push"
CHROMIUM = "/usr/bin/chromium"
GUNICORN_CONFIG = ("--config", "python:medai_site.gunicorn_conf")
SUGGESTION = "#advice-panel .suggestion:has(button[value=accept])"


# Marks the visit page records (epoch ms) for the breakdown: its response arrived, its scripts
# ran, the event stream opened, the advice event came, the panel was swapped in.
PHASE_MARKS = ("response", "loaded", "stream_open", "event", "panel")
PHASES_SCRIPT = """
window.__medaiPhases = {};
(function () {
  var mark = function (name) { if (!(name in window.__medaiPhases)) { window.__medaiPhases[name] = Date.now(); } };
  document.addEventListener("DOMContentLoaded", function () {
    var nav = performance.getEntriesByType("navigation")[0];
    if (nav) { window.__medaiPhases.response = performance.timeOrigin + nav.responseEnd; }
    mark("loaded");
  });
  document.addEventListener("htmx:sseOpen", function () { mark("stream_open"); });
  document.addEventListener("htmx:sseMessage", function () { mark("event"); });
  document.addEventListener("htmx:afterSettle", function (e) {
    if (e.target && e.target.id === "advice-panel") { mark("panel"); }
  });
})();
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, what: str, timeout: float = 120.0, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(interval)


def _pg(sql: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(sql)


PREPARE = """
import django
django.setup()
from django.core.management import call_command
from django.test import override_settings
call_command("migrate", verbosity=0)
call_command("seed_demo", visits={visits}, seed=7, verbosity=0)
call_command("collectstatic", interactive=False, verbosity=0)
from predictions.models import PredictionTask
from predictions.services.training import training_job_execute
from predictions.models import TrainingJob
job = TrainingJob.objects.create(task=PredictionTask.objects.get(slug="differential"))
with override_settings(MEDAI_TRAINING_ALGORITHMS=["logistic_regression"], MEDAI_TRAINING_CV_FOLDS=2):
    job = training_job_execute(job_id=job.pk)
assert job.status == "succeeded", job.error
from patients.models import CareTeam
team = CareTeam.objects.get(name="Internal Medicine")
print("PATIENT", team.patients.order_by("mrn").first().pk)
"""


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        cmd,
        cwd=REPO,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def measure(base: str, patient_id: int, saves: int, *, push: bool) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    timings, paths, phases = [], [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
        page.set_default_timeout(30_000)
        if not push:
            page.add_init_script("delete window.EventSource;")
        page.add_init_script(PHASES_SCRIPT)
        page.goto(f"{base}/login/")
        page.get_by_label("Username").fill("dr.chen")
        page.get_by_label("Password").fill("medai-demo-2026")
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{base}/")
        for i in range(saves + 1):  # the first one warms the worker's model cache: not counted
            page.goto(f"{base}/patients/{patient_id}/visits/new/")
            page.get_by_label("Chief complaint").fill(
                f"productive cough and fever for {i % 6 + 1} days"
            )
            page.get_by_label("Heart rate").fill(str(96 + i % 20))
            page.get_by_label("Body temperature", exact=True).fill("38.6")
            page.get_by_label("Oxygen saturation").fill("93")
            started, clicked = time.monotonic(), time.time()
            page.get_by_role("button", name="Save visit and get advice").click()
            page.locator(SUGGESTION).first.wait_for()
            elapsed = time.monotonic() - started
            path = page.evaluate("() => document.body.getAttribute('data-advice-delivery')")
            marks = page.evaluate("() => window.__medaiPhases || {}")
            if i:
                timings.append(elapsed)
                paths.append(path or "rendered")
                phases.append({k: v / 1000 - clicked for k, v in marks.items()})
        browser.close()
    pushed = [t for t, p in zip(timings, paths, strict=True) if p != "rendered"]
    return {
        # Runs whose advice arrived after the page was on screen (by push, or by poll); the
        # others ("rendered") were done before the page loaded, so they time the page.
        "median_pushed_ms": round(statistics.median(pushed) * 1000) if pushed else None,
        "median_ms": round(statistics.median(timings) * 1000),
        "min_ms": round(min(timings) * 1000),
        "max_ms": round(max(timings) * 1000),
        "n": len(timings),
        "paths": {p: paths.count(p) for p in sorted(set(paths))},
        # Where the time goes: median ms from the click to each mark on the visit page.
        "phases_ms": {
            mark: round(statistics.median(p[mark] for p in phases if mark in p) * 1000)
            for mark in PHASE_MARKS
            if any(mark in p for p in phases)
        },
    }


def run_mode(mode: str, args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix=f"medai-push-{mode}-"))
    env = {
        **os.environ,
        "MEDAI_VAR_DIR": str(work),
        "MEDAI_MODEL_DIR": str(work / "models"),
        "MEDAI_LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "medai_site.settings",
    }
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "MEDAI_LIVE_EVENTS_URL"):
        env.pop(name, None)
    processes: list[subprocess.Popen] = []
    try:
        if mode == "embedded":
            env["MEDAI_PROFILE"] = "local"
        else:
            port = free_port()
            processes.append(
                start(
                    ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""],
                    env,
                    work / "redis.log",
                )
            )
            _pg(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
            _pg(f"CREATE DATABASE {BENCH_DB}")
            env |= {
                "MEDAI_PROFILE": "test",
                "DATABASE_URL": f"{PG}/{BENCH_DB}",
                "CELERY_BROKER_URL": f"redis://127.0.0.1:{port}/0",
            }
        started = time.monotonic()
        prepared = subprocess.run(
            [sys.executable, "-c", PREPARE.format(visits=args.visits)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if prepared.returncode:
            raise SystemExit(f"{mode}: preparing failed\n{prepared.stderr[-3000:]}")
        patient_id = int(prepared.stdout.split("PATIENT")[-1].split()[0])
        print(f"{mode}: population and model ready in {time.monotonic() - started:.0f} s")
        web_port = free_port()
        web_env = env | {"MEDAI_BIND": f"127.0.0.1:{web_port}", "WEB_CONCURRENCY": "1"}
        processes.append(
            start(
                [sys.executable, "-m", "gunicorn", "medai_site.wsgi", *GUNICORN_CONFIG],
                web_env,
                work / "web.log",
            )
        )
        worker_log = work / "worker.log"
        processes.append(
            start(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "medai_site",
                    "worker",
                    "-Q",
                    "advice",
                    "-P",
                    "solo",
                    "--without-gossip",
                    "--without-mingle",
                    "-l",
                    "INFO",
                ],
                env | {"MEDAI_ADVICE_WORKER": "1"},
                worker_log,
            )
        )
        wait_for(lambda: " ready." in worker_log.read_text(errors="replace"), "the worker")
        base = f"http://127.0.0.1:{web_port}"

        def web_up() -> bool:
            import urllib.request

            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=2) as response:  # noqa: S310
                    return response.status == 200
            except OSError:
                return False

        wait_for(web_up, "gunicorn")
        try:
            return {
                "push": measure(base, patient_id, args.saves, push=True),
                "poll": measure(base, patient_id, args.saves, push=False),
            }
        except Exception:
            for log in ("web.log", "worker.log"):
                text = (work / log).read_text(errors="replace") if (work / log).exists() else ""
                print(f"--- {mode} {log} (last lines)\n{text[-12000:]}")
            raise
    finally:
        for process in reversed(processes):
            stop(process)
        if mode == "redis":
            _pg(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        if args.logs:  # the web access log and the worker log, to see where the time goes
            Path(args.logs).mkdir(parents=True, exist_ok=True)
            for log in ("web.log", "worker.log"):
                if (work / log).exists():
                    shutil.copy(work / log, Path(args.logs) / f"{mode}-{log}")
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--saves", type=int, default=15, help="visits saved per mode and path")
    parser.add_argument("--visits", type=int, default=400, help="demo visits to train on")
    parser.add_argument("--modes", nargs="+", default=["embedded", "redis"])
    parser.add_argument("--logs", help="keep each mode's web and worker logs in this directory")
    args = parser.parse_args()
    results = {mode: run_mode(mode, args) for mode in args.modes}
    out = REPO / "var" / "bench" / "advice_push.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"python": platform.python_version(), "cpus": os.cpu_count(), "saves": args.saves}
    out.write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    print(f"\nsave -> advice visible (Chromium, median of {args.saves}):")
    print(
        f"{'mode':<10} {'push (SSE)':>12} {'poll (2 s)':>12} {'arrived late':>12} {'arrived late':>12}"
    )
    for mode, r in results.items():
        print(
            f"{mode:<10} {r['push']['median_ms']:>9} ms {r['poll']['median_ms']:>9} ms "
            f"{r['push']['median_pushed_ms']!s:>9} ms {r['poll']['median_pushed_ms']!s:>9} ms  "
            f"{r['push']['paths']} / {r['poll']['paths']}"
        )
        print(f"{'':<10} push, ms after the click: {r['push']['phases_ms']}")
    print(f"written to {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
