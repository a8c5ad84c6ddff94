"""Liveness (/healthz) and readiness (/readyz) for load balancers and orchestrators.

/readyz answers 503 naming the check that failed: the database, the broker (a short connection
attempt), or a check an app registers in its ``AppConfig.ready`` with
:func:`readiness_check_register` — predictions adds ``models`` (an active model whose artifact
does not load: predictions/health.py), so this base module imports no app. Neither endpoint needs
credentials or returns anything but check names and the failing checks' own wording.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.db import connection
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

logger = logging.getLogger(__name__)
BROKER_TIMEOUT_SECONDS = 2.0  # a readiness probe must answer well inside the prober's timeout
OK = "ok"


def check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return OK


def check_broker() -> str:
    from kombu import Connection

    with Connection(
        settings.CELERY_BROKER_URL,
        connect_timeout=BROKER_TIMEOUT_SECONDS,
        transport_options=dict(getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {})),
    ) as conn:
        conn.ensure_connection(
            max_retries=1, interval_start=0, interval_step=0, timeout=BROKER_TIMEOUT_SECONDS
        )
    return OK


Check = Callable[[], str]


class ReadinessFailure(RuntimeError):
    """A check's own finding, worded without PHI or secrets: /readyz shows its message. Any other
    exception is reported by its type name only (its message may carry a connection string)."""


# name -> check, in the order they run and appear; apps add theirs at ready().
CHECKS: dict[str, Check] = {"database": check_database, "broker": check_broker}


def readiness_check_register(name: str, check: Check) -> None:
    CHECKS[name] = check


class HealthSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["ok", "unavailable"])
    checks = serializers.DictField(
        child=serializers.CharField(), help_text="'ok', or 'failed: <reason>' per check."
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


class ReadinessApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []

    @extend_schema(
        operation_id="readyz",
        tags=["health"],
        summary="Readiness: database, broker and every active model's artifact",
        auth=[],
        responses={200: HealthSerializer, 503: HealthSerializer},
    )
    def get(self, request: Request) -> Response:
        results, ready = {}, True
        for name, check in CHECKS.items():
            try:
                results[name] = check()
            except Exception as exc:
                ready = False
                detail = str(exc) if isinstance(exc, ReadinessFailure) else type(exc).__name__
                results[name] = f"failed: {detail}"
                logger.warning("readiness check %s failed: %s", name, type(exc).__name__)
        body = {"status": "ok" if ready else "unavailable", "checks": results}
        return Response(body, status=200 if ready else 503)
