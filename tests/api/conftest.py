"""Fixtures for the REST API: token-authenticated clients per doctor, and no broker needed.

Advice and training are queued through the outbox/on_commit as in production; here nothing is
handed to a broker (tests compute advice in-process with ``advice_compute`` where they need it).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from rest_framework.test import APIClient

from medai_site.api_auth import Scope, api_token_create
from medai_site.roles import may_train_models

ALL_SCOPES = tuple(Scope.values)


@pytest.fixture(autouse=True)
def no_broker(monkeypatch):
    """Dispatch to the broker is outside these tests: the outbox row is what they check."""
    monkeypatch.setattr("predictions.services.outbox.advice_request_dispatch", lambda **kw: True)
    monkeypatch.setattr("predictions.services.training._enqueue", lambda job_id: None)


@pytest.fixture(autouse=True)
def fresh_throttle_cache():
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def token_for(db) -> Callable[..., str]:
    def make(user, scopes=None, days=30) -> str:
        if scopes is None:  # every scope the user's role allows
            scopes = [s for s in ALL_SCOPES if s != Scope.MODELS_MANAGE or may_train_models(user)]
        return api_token_create(
            user=user, name="test client", scopes=scopes, days=days, actor=user
        )[1]

    return make


@pytest.fixture
def client_for(token_for) -> Callable[..., APIClient]:
    def make(user, scopes=None) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(user, scopes)}")
        return client

    return make


@pytest.fixture
def api_a(client_for, doctor_a) -> APIClient:
    return client_for(doctor_a)


@pytest.fixture
def api_b(client_for, doctor_b) -> APIClient:
    return client_for(doctor_b)


def vitals(**overrides) -> list[dict]:
    values = {
        "8310-5": 38.4,
        "8867-4": 104,
        "9279-1": 22,
        "8480-6": 128,
        "8462-4": 82,
        "2708-6": 95,
    }
    values.update(overrides)
    return [{"code": code, "value": value} for code, value in values.items()]
