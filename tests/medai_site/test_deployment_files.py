"""docker-compose.yml cannot run here (no Docker engine): check it parses and matches the Procfile."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


ENV_ASSIGNMENT = re.compile(r"^[A-Z][A-Z0-9_]*=")


def _procfile_lines() -> dict[str, list[str]]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return {name: command.split() for name, command in (ln.split(": ", 1) for ln in lines if ln)}


def procfile() -> dict[str, str]:
    """name -> command, after its leading ``VAR=value`` assignments (procfile_env)."""
    return {
        name: " ".join(words[len(procfile_env(name)) :])
        for name, words in _procfile_lines().items()
    }


def procfile_env(name: str) -> dict[str, str]:
    """The ``VAR=value`` assignments a Procfile line starts with (docker-compose's environment)."""
    env = {}
    for word in _procfile_lines()[name]:
        if not ENV_ASSIGNMENT.match(word):
            break
        key, value = word.split("=", 1)
        env[key] = value
    return env


def test_compose_names_every_service():
    services = compose()["services"]
    assert set(services) == {
        "db",
        "redis",
        "migrate",
        "grants",
        "web",
        "worker",
        "trainer",
        "beat",
        "relay",
        "hl7",
    }
    assert services["db"]["image"].startswith("postgres:16")
    assert services["redis"]["image"].startswith("redis:7")
    assert "--appendonly" in services["redis"]["command"]
    assert services["migrate"]["command"][-3:] == ["manage.py", "migrate", "--no-input"]


def test_compose_commands_match_the_procfile():
    """Same programs in both: what `make run` starts is what production runs."""
    services = compose()["services"]
    processes = procfile()
    for name in ("web", "worker", "trainer", "beat", "relay", "hl7"):
        program = processes[name].split()[:3]
        command = services[name]["command"]
        assert command[: len(program)][0] == program[0], name
    assert services["worker"]["command"][:4] == ["celery", "-A", "medai_site", "worker"]
    # Advice and training on separate workers, in both: advice never queues behind training.
    assert (
        services["worker"]["command"][services["worker"]["command"].index("--queues") + 1]
        == "advice"
    )
    assert "--queues advice " in processes["worker"]
    # The trainer also takes batch re-scoring (the 'scoring' queue), in both.
    assert "training,scoring,celery" in services["trainer"]["command"]
    assert "--queues training,scoring,celery" in processes["trainer"]
    # The advice worker's concurrency is one setting in both (defaults differ: docker-compose.yml).
    command = services["worker"]["command"]
    assert command[command.index("--concurrency") + 1].startswith("${CELERY_CONCURRENCY:-")
    assert "--concurrency ${CELERY_CONCURRENCY:-" in processes["worker"]
    # The advice worker's broker options (visibility timeout fitting advice) in both.
    assert procfile_env("worker") == {"MEDAI_ADVICE_WORKER": "1"}
    assert services["worker"]["environment"]["MEDAI_ADVICE_WORKER"] == "1"
    assert "MEDAI_ADVICE_WORKER" not in services["trainer"]["environment"]


def test_two_database_roles_owner_migrates_app_role_runs():
    """migrate and grants connect as the owner; every long-running service as medai_app, whose
    grants are applied after each migrate, before any of them starts."""
    services = compose()["services"]
    for name in ("migrate", "grants"):
        assert services[name]["environment"]["DATABASE_URL"].startswith("postgres://medai:")
    assert services["grants"]["command"][2:4] == ["db_grant_app_role", "medai_app"]
    assert services["grants"]["depends_on"]["migrate"]["condition"] == (
        "service_completed_successfully"
    )
    for name in ("web", "worker", "trainer", "beat", "relay", "hl7"):
        env = services[name]["environment"]
        assert env["DATABASE_URL"].startswith("postgres://medai_app:"), name
        assert services[name]["depends_on"]["grants"]["condition"] == (
            "service_completed_successfully"
        )
        assert env["MEDAI_AUDIT_ANCHOR_DIR"] == "/var/lib/medai-audit"
        assert "medai-audit-anchors:/var/lib/medai-audit" in services[name]["volumes"]


def test_app_containers_never_hold_the_owner_password():
    """Compose substitutes .env (database passwords) into the file; containers load medai.env."""
    services = compose()["services"]
    for name in ("web", "worker", "trainer", "beat", "relay"):
        assert services[name]["env_file"] == "medai.env", name
        env = services[name]["environment"]
        assert "POSTGRES_PASSWORD" not in env
        assert "POSTGRES_PASSWORD" not in env["DATABASE_URL"], name


def test_production_services_get_production_profile():
    for name in ("web", "worker", "trainer", "beat", "relay", "migrate", "grants"):
        env = compose()["services"][name]["environment"]
        assert env["MEDAI_PROFILE"] == "production"
        assert env["CELERY_BROKER_URL"].startswith("redis://redis")
