"""Liveness (/healthz) and readiness (/readyz) for load balancers and orchestrators.

/readyz answers 503 naming the check that failed: the database, the broker (a short connection
attempt), or an active model whose artifact does not load (missing file, failed sha256 or
library-version check). Neither endpoint needs credentials or returns anything but check names.
"""

from __future__ import annotations

import logging

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


def check_models() -> str:
    from predictions.ml.artifacts import load_model
    from predictions.models import PredictionTask

    failed = []
    tasks = PredictionTask.objects.filter(enabled=True, active_version__isnull=False)
    for task in tasks.select_related("active_version").order_by("slug"):
        version = task.active_version
        try:
            load_model(version.artifact_path, version.artifact_sha256)
        except Exception as exc:  # any reason the worker could not use it counts
            failed.append(f"{task.slug} v{version.number} ({type(exc).__name__})")
    if failed:
        raise RuntimeError("artifact does not load: " + ", ".join(failed))
    return OK


CHECKS = {"database": check_database, "broker": check_broker, "models": check_models}


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
                detail = str(exc) if name == "models" else type(exc).__name__
                results[name] = f"failed: {detail}"
                logger.warning("readiness check %s failed: %s", name, type(exc).__name__)
        body = {"status": "ok" if ready else "unavailable", "checks": results}
        return Response(body, status=200 if ready else 503)
