"""Request budgets as fixed-window counters in the shared cache: one Redis round trip each.

DRF's ``SimpleRateThrottle`` keeps a sliding log: every request reads the client's whole list of
timestamps from the cache, unpickles it, appends, pickles and writes it back — two round trips
and, at the prediction API's 3,000/min, thousands of floats each way on every request (a tenth
of a prediction's time under load). A counter per client and window costs one pipelined
``SET NX EX`` / ``INCR`` / ``TTL`` instead, whatever the rate.

The window opens with the client's first request and lasts the rate's period; a client may
therefore send up to twice its budget across the end of one window and the start of the next,
the usual trade of fixed windows (a budget guards the service, it is not a billing meter).
Counters live in the shared cache so every web worker on every machine counts against the same
budget; other cache backends (the local profile's files, the tests' memory) take a generic,
slower path with the same semantics.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.core.cache import caches
from django.core.cache.backends.base import BaseCache
from django.core.cache.backends.redis import RedisCache

PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class Budget:
    requests: int
    seconds: int

    @classmethod
    def parse(cls, rate: str) -> Budget:
        """``"3000/min"`` → 3,000 requests per 60 s (DRF's notation: s, m, h, d prefixes)."""
        count, _, period = rate.partition("/")
        try:
            budget = cls(requests=int(count), seconds=PERIODS[period.strip()[:1].lower()])
        except (KeyError, ValueError):
            budget = None
        if budget is None or budget.requests < 1:  # 0 or less would refuse every request
            raise ValueError(f"Invalid rate {rate!r}: write requests/period, e.g. '600/min'.")
        return budget


@dataclass(frozen=True)
class Spend:
    allowed: bool
    retry_after: float  # seconds until the window ends (what a refused client should wait)


def budget_spend(key: str, budget: Budget) -> Spend:
    """Count one request against ``key``'s budget; refused once the window's count exceeds it.

    Raises the cache's own error (``redis.RedisError``, ``OSError``) when the cache is down: the
    caller decides whether to fail open or closed.
    """
    cache = caches["default"]  # the backend itself (``django.core.cache.cache`` is a proxy)
    if isinstance(cache, RedisCache):
        count, ttl = _redis_count(cache, key, budget.seconds)
    else:
        count, ttl = _generic_count(cache, key, budget.seconds)
    return Spend(allowed=count <= budget.requests, retry_after=max(ttl, 1.0))


def _redis_count(cache: RedisCache, key: str, seconds: int) -> tuple[int, float]:
    full_key = cache.make_and_validate_key(key)
    # Django's RedisCache exposes no increment-with-expiry; its client (redis-py) does. The
    # pipeline is MULTI/EXEC: the three commands run together, in one round trip.
    client = cache._cache.get_client(full_key, write=True)
    pipe = client.pipeline(transaction=True)
    pipe.set(full_key, 0, ex=seconds, nx=True)
    pipe.incr(full_key)
    pipe.ttl(full_key)
    _, count, ttl = pipe.execute()
    if ttl < 0:  # the key expired between SET NX and INCR: give the new count its window
        client.expire(full_key, seconds)
        ttl = seconds
    return int(count), float(ttl)


def _generic_count(cache: BaseCache, key: str, seconds: int) -> tuple[int, float]:
    opened = f"{key}:opened"
    now = time.time()
    if cache.add(opened, now, timeout=seconds):
        cache.set(key, 0, timeout=seconds)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between the two calls: this request opens the next window
        cache.set(opened, now, timeout=seconds)
        cache.set(key, 1, timeout=seconds)
        count = 1
    started = cache.get(opened, now)
    return count, started + seconds - now
