"""Fixtures of the medai_site tests."""

from __future__ import annotations

import uuid

import pytest
from django.core.cache import caches
from django.test import override_settings

LIVE_REDIS = "redis://127.0.0.1:6379/6"


@pytest.fixture
def live_cache():
    """The default cache as production has it (medai_site.shared_cache on the real Redis), in a
    database of its own under a key prefix no other test shares; its keys are deleted after."""
    prefix = f"cache-test-{uuid.uuid4().hex}"
    live = {
        "default": {
            "BACKEND": "medai_site.shared_cache.RedisCache",
            "LOCATION": LIVE_REDIS,
            "KEY_PREFIX": prefix,
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
    with override_settings(CACHES=live):
        cache = caches["default"]
        yield cache
        client = cache._cache.get_client(write=True)
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)
