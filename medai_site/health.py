"""Liveness (/healthz) and readiness (/readyz) for load balancers and orchestrators.

Readiness means "this web process can serve requests": the database answers and every migration
this code expects is applied. Nothing else: the broker, the workers and the models' artifacts are
the advice pipeline's health (predictions/pipeline_health.py, on /metrics and the operations
page), because visits are recorded while they are away (the outbox) and a load balancer that
took this web process out of rotation for them would stop visit recording too.

Anonymous callers get the status and each check's name with ``ok``/``failed``; why a check failed
(driver text can name the database host, port and server state) goes to the log, and to a signed-in
staff user in ``details``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.migrations.executor import MigrationExecutor
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

logger = logging.getLogger(__name__)
OK = "ok"
FAILED = "failed"


class ReadinessFailure(RuntimeError):
    """A check's own finding, worded without PHI or secrets (shown to staff, logged)."""


def check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return OK


_migrated = False  # once every migration is applied it stays so for this process's code


def check_migrations() -> str:
    global _migrated
    if _migrated:
        return OK
    executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if plan:
        names = ", ".join(f"{m.app_label}.{m.name}" for m, _backwards in plan[:5])
        raise ReadinessFailure(f"{len(plan)} migration(s) not applied: {names}")
    _migrated = True
    return OK


Check = Callable[[], str]

# name -> check, in the order they run and appear.
CHECKS: dict[str, Check] = {"database": check_database, "migrations": check_migrations}


class HealthSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["ok", "unavailable"])
    checks = serializers.DictField(child=serializers.CharField(), help_text="'ok' or 'failed'.")
    details = serializers.DictField(
        child=serializers.CharField(),
        required=False,
        help_text="Why each failed check failed: signed-in staff only.",
    )

    class Meta:
        ref_name = "Health"


class LivenessApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []

    @extend_schema(
        operation_id="healthz",
        tags=["health"],
        summary="Liveness: the process answers",
        auth=[],
        responses={200: HealthSerializer},
    )
    def get(self, request: Request) -> Response:
        return Response({"status": "ok", "checks": {}})


def _is_staff(request: Request) -> bool:
    """A staff session. The probe authenticates nobody through DRF (whose anonymous user replaces
    the request's), so the session's user is read here."""
    from django.contrib.auth import get_user

    try:
        user = get_user(request._request)
        return bool(user.is_authenticated and user.is_staff)
    except Exception:  # the session store is the database, which may be what failed
        return False


def readiness() -> tuple[bool, dict[str, str], dict[str, str]]:
    """(ready, check -> ok/failed, check -> why it failed) for this web process."""
    results, details, ready = {}, {}, True
    for name, check in CHECKS.items():
        try:
            results[name] = check()
        except Exception as exc:
            ready = False
            results[name] = FAILED
            reason = str(exc) if isinstance(exc, ReadinessFailure) else type(exc).__name__
            details[name] = reason
            # The driver's own text (host, port, server state) for the operator, in the log.
            logger.warning("readiness check %s failed: %s: %s", name, type(exc).__name__, exc)
            if name == "database":
                break  # the other checks need the database: they would fail the same way
    return ready, results, details


class ReadinessApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []

    @extend_schema(
        operation_id="readyz",
        tags=["health"],
        summary="Readiness: the database answers and every migration is applied",
        auth=[],
        responses={200: HealthSerializer, 503: HealthSerializer},
    )
    def get(self, request: Request) -> Response:
        ready, results, details = readiness()
        body: dict[str, object] = {"status": "ok" if ready else "unavailable", "checks": results}
        if details and _is_staff(request):
            body["details"] = details
        return Response(body, status=200 if ready else 503)
