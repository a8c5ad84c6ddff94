"""Browser tests: Debian's Chromium driven by Playwright against pytest-django's live server.

Playwright's sync API runs an event loop in the test thread; Django refuses ORM calls from a
thread with a running loop unless told the caller knows what it does (the loop is Playwright's,
idle while the test's own code runs).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Its own Redis database, flushed freely (MEDAI_E2E_REDIS_DB lets parallel runs use another).
E2E_BROKER = f"redis://127.0.0.1:6379/{int(os.environ.get('MEDAI_E2E_REDIS_DB', '14'))}"
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "var" / "screenshots"


@pytest.fixture
def page(live_server) -> Iterator[object]:
    """A fresh Chromium page per test.

    Playwright is started per test, not per session: while its event loop runs, Django's
    connection handler hands this thread a different connection object (asgiref's Local follows
    the running loop), one without the serialized database that ``serialized_rollback`` restores
    between tests. Starting it inside the test and closing its connections before it stops keeps
    the test database's own setup and teardown on the ordinary connection.
    """
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (see README)")
    from django.db import connections
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        context = browser.new_context(viewport={"width": 1366, "height": 900}, locale="en-GB")
        context.set_default_timeout(15_000)
        page = context.new_page()
        page.errors = []
        page.on("pageerror", lambda exc: page.errors.append(str(exc)))
        page.on(
            "console",
            lambda msg: page.errors.append(msg.text) if msg.type == "error" else None,
        )
        yield page
        context.close()
        browser.close()
        connections.close_all()  # the loop-scoped connections opened during the test


@pytest.fixture
def screenshot():
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(page, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


@pytest.fixture
def demo_population(transactional_db, settings, tmp_path):
    """Demo users and care teams (dr.chen, dr.okafor, admin) and a small synthetic population."""
    from django.core.management import call_command

    settings.MODEL_ARTIFACT_DIR = tmp_path / "models"
    call_command("seed_demo", visits=400, seed=7, stdout=open(os.devnull, "w"))  # noqa: SIM115


@pytest.fixture
def broker(settings):
    """Point this process's Celery app at the e2e Redis database, emptied first."""
    import redis

    from medai_site.celery import app

    redis.Redis.from_url(E2E_BROKER).flushdb()
    previous = app.conf.broker_url
    settings.CELERY_BROKER_URL = E2E_BROKER
    app.conf.broker_url = E2E_BROKER
    # Connection and producer pools are cached per app; drop them so the new URL is used.
    app._pool = None
    app.amqp._producer_pool = None
    yield E2E_BROKER
    app.conf.broker_url = previous
    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture
def worker(broker, demo_population, settings):
    """A real Celery worker process on the test database and the e2e broker."""
    from django.db import connection

    name = connection.settings_dict["NAME"]
    env = {
        **os.environ,
        "MEDAI_PROFILE": "test",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{name}",
        "CELERY_BROKER_URL": broker,
        "MEDAI_MODEL_DIR": str(settings.MODEL_ARTIFACT_DIR),
        "MEDAI_TRAINING_ALGORITHMS": "logistic_regression",
        "MEDAI_TRAINING_CV_FOLDS": "2",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    log = open(SCREENSHOTS.parent / "e2e-worker.log", "w")  # noqa: SIM115
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "medai_site",
            "worker",
            "-Q",
            "advice,training,celery",
            "--concurrency",
            "1",
            "-P",
            "solo",
            "-l",
            "info",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if "ready." in (SCREENSHOTS.parent / "e2e-worker.log").read_text():
            break
        if process.poll() is not None:
            pytest.fail("the Celery worker exited; see var/e2e-worker.log")
        time.sleep(0.3)
    yield process
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


def sign_in(page, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill("medai-demo-2026")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base_url}/")
