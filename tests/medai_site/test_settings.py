"""The settings MedAI relies on resolve as intended (a misspelt CELERY_ setting is silently ignored)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from medai_site.celery import app

ROOT = Path(__file__).resolve().parents[2]


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


def test_test_profile_uses_real_postgresql_and_redis():
    assert settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
    assert settings.CELERY_BROKER_URL.startswith("redis://")
    assert settings.DEBUG is False


def _settings_in_subprocess(env: dict[str, str], expression: str) -> subprocess.CompletedProcess:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MEDAI_", "DJANGO_", "FIELD_", "BLIND_", "DATABASE_", "CELERY_"))
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
    env = {
        "MEDAI_PROFILE": "production",
        "DJANGO_SECRET_KEY": "x" * 60,
        "FIELD_ENCRYPTION_KEY": "rYq0O8lYbIEY1mRuHxMkTq4yAhG1Y4Pq0BqvJ1Hnj3c=",
        "BLIND_INDEX_KEY": "ab" * 32,
        "DATABASE_URL": "postgres://u@db/medai",
        "CELERY_BROKER_URL": "redis://redis:6379/0",
    }
    result = _settings_in_subprocess(
        env,
        "settings.DEBUG, settings.ALLOWED_HOSTS, settings.SESSION_COOKIE_SECURE, settings.SECURE_HSTS_SECONDS > 0",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False [] True True"


def test_unknown_profile_is_rejected():
    result = _settings_in_subprocess({"MEDAI_PROFILE": "staging"}, "settings.DEBUG")
    assert result.returncode != 0
    assert "MEDAI_PROFILE" in result.stderr


@pytest.mark.parametrize("profile", ["local"])
def test_local_profile_runs_on_embedded_defaults(tmp_path, profile):
    """make run's profile: SQLite under var/, filesystem broker, DEBUG on, secrets generated once."""
    env = {"MEDAI_PROFILE": profile, "MEDAI_VAR_DIR": str(tmp_path)}
    result = _settings_in_subprocess(
        env, "settings.DATABASES['default']['ENGINE'], settings.CELERY_BROKER_URL, settings.DEBUG"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "django.db.backends.sqlite3 filesystem:// True"
    secrets_file = tmp_path / "local-secrets.json"
    assert secrets_file.exists()
    assert oct(secrets_file.stat().st_mode & 0o777) == "0o600"
    first = secrets_file.read_text()
    _settings_in_subprocess(env, "settings.DEBUG")
    assert secrets_file.read_text() == first  # generated once, reused
