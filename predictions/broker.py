"""What the relay and the pipeline health read from the broker's Redis (never written here).

``CELERY_BROKER_URL`` is the one broker; the embedded filesystem broker of ``make run`` has no
instance id or queue lengths (None). Short timeouts: a caller must answer while Redis is away.
"""

from __future__ import annotations

import logging

from django.conf import settings

logger = logging.getLogger(__name__)
TIMEOUT_SECONDS = 2.0


def _client():  # type: ignore[no-untyped-def]
    import redis

    url = settings.CELERY_BROKER_URL
    if not url.startswith(("redis://", "rediss://")):
        return None
    return redis.Redis.from_url(
        url, socket_timeout=TIMEOUT_SECONDS, socket_connect_timeout=TIMEOUT_SECONDS
    )


def broker_instance_id() -> str | None:
    """Redis's ``run_id``: it changes when the server restarts (and may have lost messages).

    None when the broker is not Redis or does not answer.
    """
    import redis

    client = _client()
    if client is None:
        return None
    try:
        return str(client.info("server").get("run_id") or "") or None
    except redis.RedisError:
        return None
    finally:
        client.close()


def queue_lengths(queues: tuple[str, ...]) -> dict[str, int] | None:
    """Messages waiting per queue; None when the broker is not Redis or does not answer."""
    import redis

    client = _client()
    if client is None:
        return None
    try:
        return {queue: int(client.llen(queue)) for queue in queues}
    except redis.RedisError as exc:
        logger.warning("broker unreachable (%s)", type(exc).__name__)
        return None
    finally:
        client.close()
