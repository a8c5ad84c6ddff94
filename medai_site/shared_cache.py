"""The shared cache's Redis backend: Django's, with one Redis client per connection pool.

Django's ``RedisCacheClient`` builds a new ``redis.Redis`` on every cache call; building one
fills its table of about two hundred response callbacks, some 50 µs, as much as the command's own
round trip on a local Redis, and a CDS Hooks call makes two (its JWT's jti, its rate budget). A
``redis.Redis`` is safe to share between threads (each command borrows a connection from the
pool, and the pool starts afresh in a forked process), so one per pool serves the process.
Everything else, the key prefix, timeouts, serialisation and the server chosen, is Django's.
"""

from __future__ import annotations

from typing import Any

from django.core.cache.backends import redis as django_redis


class RedisCacheClient(django_redis.RedisCacheClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        index = self._get_connection_pool_index(write)
        client = self._clients.get(index)
        if client is None:
            # A race here builds a client twice; either serves, the last one is kept.
            client = self._clients[index] = self._client(
                connection_pool=self._get_connection_pool(write)
            )
        return client


class RedisCache(django_redis.RedisCache):
    """``django.core.cache.backends.redis.RedisCache`` with :class:`RedisCacheClient`."""

    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = RedisCacheClient
