"""The settings MedAI relies on resolve as intended (a misspelt CELERY_ setting is silently ignored)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from medai_site.celery import app

ROOT = Path(__file__).resolve().parents[2]
# Every secret and address production requires, none real: each test removes or overrides one.
PRODUCTION_ENV = {
    "MEDAI_PROFILE": "production",
    "DJANGO_SECRET_KEY": "x" * 60,
    "FIELD_ENCRYPTION_KEY": "rYq0O8lYbIEY1mRuHxMkTq4yAhG1Y4Pq0BqvJ1Hnj3c=",
    "BLIND_INDEX_KEY": "ab" * 32,
    "AUDIT_CHAIN_KEY": "k2026:" + "cd" * 32,
    "MEDAI_AUDIT_ANCHOR_DIR": "/srv/medai-audit",
    "DATABASE_URL": "postgres://u@db/medai",
    "CELERY_BROKER_URL": "redis://redis:6379/0",
}


def test_celery_reliability_settings_reach_the_app():
    """Late ack, reject on worker loss, prefetch 1, JSON only, time limit below visibility timeout."""
    conf = app.conf
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_serializer == "json"
    assert conf.accept_content == ["json"]
    assert conf.task_always_eager is False
    assert conf.task_ignore_result is True
    assert conf.task_time_limit < conf.broker_transport_options["visibility_timeout"]
    assert "watch-training-jobs" in conf.beat_schedule
    assert "nightly-training" in conf.beat_schedule


def test_workers_keep_their_database_connection_between_tasks():
    """Issue 15: without CELERY_DB_REUSE_MAX, Celery's Django fixup closes the connection after
    every task (one new PostgreSQL session per advice)."""
    from celery.fixups.django import DjangoWorkerFixup

    assert DjangoWorkerFixup(app).db_reuse_max >= 100


def test_test_profile_uses_real_postgresql_and_redis():
    assert settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
    assert settings.CELERY_BROKER_URL.startswith("redis://")
    assert settings.DEBUG is False


def _settings_in_subprocess(env: dict[str, str], expression: str) -> subprocess.CompletedProcess:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(
            ("MEDAI_", "DJANGO_", "FIELD_", "BLIND_", "AUDIT_", "DATABASE_", "CELERY_")
        )
    }
    clean.update(env)
    code = f"import django, os; os.environ['DJANGO_SETTINGS_MODULE']='medai_site.settings'; from django.conf import settings; print({expression})"
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_profile_refuses_to_start_without_secrets():
    """No default secret keys outside local/test: a missing key is an error, not a fallback."""
    result = _settings_in_subprocess({"MEDAI_PROFILE": "production"}, "settings.SECRET_KEY")
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_production_profile_defaults_are_safe():
    env = dict(PRODUCTION_ENV)
    result = _settings_in_subprocess(
        env,
        "settings.DEBUG, settings.ALLOWED_HOSTS, settings.SESSION_COOKIE_SECURE, settings.SECURE_HSTS_SECONDS > 0",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False [] True True"


@pytest.mark.parametrize("missing", ["AUDIT_CHAIN_KEY", "MEDAI_AUDIT_ANCHOR_DIR"])
def test_production_requires_an_audit_key_and_an_anchor_directory(missing):
    """The audit chain's HMAC key and the anchor directory have no production default."""
    env = dict(PRODUCTION_ENV)
    del env[missing]
    result = _settings_in_subprocess(env, "settings.AUDIT_CHAIN_KEYS")
    assert result.returncode != 0
    assert missing in result.stderr


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("cd" * 32, "id:hexkey"),
        ("k1:zz", "not hex"),
        ("k1:" + "cd" * 8, "at least 32 bytes"),
        ("k1:" + "cd" * 32 + ",k1:" + "ef" * 32, "each id once"),
    ],
)
def test_malformed_audit_keys_are_refused(value, message):
    env = {"MEDAI_PROFILE": "test", "AUDIT_CHAIN_KEY": value}
    result = _settings_in_subprocess(env, "settings.AUDIT_CHAIN_KEYS")
    assert result.returncode != 0
    assert message in result.stderr


def test_audit_settings_resolve():
    """Test profile: a fixed key first; beat anchors the head at the configured interval."""
    assert list(settings.AUDIT_CHAIN_KEYS) == ["t1"]
    assert len(settings.AUDIT_CHAIN_KEYS["t1"]) == 32
    schedule = app.conf.beat_schedule["audit-anchor"]
    assert schedule["task"] == "medai_site.tasks.audit_anchor_write"
    assert schedule["schedule"] == settings.MEDAI_AUDIT_ANCHOR_SECONDS == 300
    from medai_site import tasks  # the module Celery's autodiscovery imports per app

    assert tasks.audit_anchor_write.name == schedule["task"]
    assert settings.MEDAI_AUDIT_LANES == 16  # independent audit chains (medai_site/audit.py)


def test_unknown_profile_is_rejected():
    result = _settings_in_subprocess({"MEDAI_PROFILE": "staging"}, "settings.DEBUG")
    assert result.returncode != 0
    assert "MEDAI_PROFILE" in result.stderr


@pytest.mark.parametrize("profile", ["local"])
def test_local_profile_runs_on_embedded_defaults(tmp_path, profile):
    """make run's profile: SQLite under var/, filesystem broker, DEBUG off, secrets generated once."""
    env = {"MEDAI_PROFILE": profile, "MEDAI_VAR_DIR": str(tmp_path)}
    result = _settings_in_subprocess(
        env, "settings.DATABASES['default']['ENGINE'], settings.CELERY_BROKER_URL, settings.DEBUG"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "django.db.backends.sqlite3 filesystem:// False"
    secrets_file = tmp_path / "local-secrets.json"
    assert secrets_file.exists()
    assert oct(secrets_file.stat().st_mode & 0o777) == "0o600"
    first = secrets_file.read_text()
    _settings_in_subprocess(env, "settings.DEBUG")
    assert secrets_file.read_text() == first  # generated once, reused
    assert json.loads(first)["AUDIT_CHAIN_KEY"].startswith("local1:")
    # The embedded broker is checked every 0.1 s (kombu's 1 s would delay every advice).
    polling = _settings_in_subprocess(
        env, "settings.CELERY_BROKER_TRANSPORT_OPTIONS['polling_interval']"
    )
    assert polling.stdout.strip() == "0.1", polling.stderr
    sqlite = _settings_in_subprocess(env, "settings.DATABASES['default']['OPTIONS']")
    assert "'transaction_mode': 'IMMEDIATE'" in sqlite.stdout, sqlite.stderr
    assert "journal_mode=WAL" in sqlite.stdout


def test_local_profile_adds_an_audit_key_to_an_older_secrets_file(tmp_path):
    """A machine set up before the audit key existed gets one, keeping its other keys."""
    older = {"DJANGO_SECRET_KEY": "s" * 50, "FIELD_ENCRYPTION_KEY": "k", "BLIND_INDEX_KEY": "ab"}
    (tmp_path / "local-secrets.json").write_text(json.dumps(older))
    env = {"MEDAI_PROFILE": "local", "MEDAI_VAR_DIR": str(tmp_path)}
    result = _settings_in_subprocess(env, "list(settings.AUDIT_CHAIN_KEYS)")
    assert result.stdout.strip() == "['local1']", result.stderr
    stored = json.loads((tmp_path / "local-secrets.json").read_text())
    assert {k: stored[k] for k in older} == older


def test_the_cache_is_shared_by_every_process_outside_tests():
    """A CDS Hooks JWT is good once and rate limits count across workers only if every process
    shares the cache: Redis in production (the broker's unless MEDAI_CACHE_URL names another),
    files for the local profile; never process memory."""
    production = PRODUCTION_ENV
    expression = "settings.CACHES['default']['BACKEND'], settings.CACHES['default'].get('LOCATION')"
    result = _settings_in_subprocess(production, expression)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ("medai_site.shared_cache.RedisCache redis://redis:6379/0")
    result = _settings_in_subprocess(
        {**production, "MEDAI_CACHE_URL": "redis://cache:6379/3"}, expression
    )
    assert result.stdout.strip().endswith("RedisCache redis://cache:6379/3")
    result = _settings_in_subprocess({"MEDAI_PROFILE": "local"}, expression)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("django.core.cache.backends.filebased.FileBasedCache")
