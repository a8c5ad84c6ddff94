"""The shared cache's Redis backend (medai_site.shared_cache): Django's, one client per pool.

Against the real Redis (the ``live_cache`` fixture, tests/medai_site/conftest.py), as production's.
"""

from __future__ import annotations

import threading

import pytest
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.test import override_settings


def test_one_redis_client_serves_every_call_and_thread(live_cache):
    """Django's client built a redis.Redis per call; this one keeps one per pool."""
    first = live_cache._cache.get_client(write=True)
    assert live_cache._cache.get_client("any-key") is first
    seen = []
    threads = [
        threading.Thread(target=lambda: seen.append(live_cache._cache.get_client(write=True)))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(client is first for client in seen)


def test_the_cache_answers_as_djangos_redis_cache(live_cache):
    """What the app relies on: add() is good once (a CDS Hooks jti), values round-trip with
    their timeout, and it is still Django's RedisCache (the rate limits' Redis path)."""
    assert isinstance(live_cache, DjangoRedisCache)
    assert live_cache.add("jti:abc", 1, timeout=30) is True
    assert live_cache.add("jti:abc", 1, timeout=30) is False
    live_cache.set("value", {"a": [1, 2]}, timeout=30)
    assert live_cache.get("value") == {"a": [1, 2]}
    client = live_cache._cache.get_client(write=True)
    assert 0 < client.ttl(live_cache.make_and_validate_key("jti:abc")) <= 30
    live_cache.delete("value")
    assert live_cache.get("value") is None


def test_a_redis_that_does_not_answer_still_raises(socket_free_port):
    """Failing open (rate limits) or closed (CDS Hooks) is the callers' choice: the backend
    raises as Django's does."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    dead = {
        "default": {
            "BACKEND": "medai_site.shared_cache.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{socket_free_port}/0",
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
    with override_settings(CACHES=dead), pytest.raises(RedisConnectionError):
        caches["default"].add("jti:x", 1, timeout=30)


@pytest.fixture
def socket_free_port():
    import socket

    with socket.socket() as probe:  # a port nothing listens on: connections are refused
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
