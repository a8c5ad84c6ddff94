"""Live events: one process tells the pages open in another that something they wait for happened.

The advice worker publishes "advice for visit 42 is stored"; the web process, holding the visit
page's server-sent-events stream open, wakes up and tells the browser, which fetches the panel.
Only a topic name made of ids travels (``advice-visit-42``), never PHI, and an event carries no
data: a listener re-reads the database (scoped to its viewer) to see what changed.

Two transports, chosen by ``MEDAI_LIVE_EVENTS_URL`` (settings):

- ``redis://host:port/db``: Redis pub/sub (test and production profiles): ``PUBLISH`` on the
  channel ``medai:<topic>``; a listener ``SUBSCRIBE``s and blocks on its socket.
- ``file:///path``: the embedded transport of the local profile (no Redis): publishing touches
  ``<path>/<topic>``, a listener checks that file's change time every ``FILE_POLL_SECONDS``. It
  works between the processes of one machine (web, worker), which is what ``make run`` is.

A lost event costs only speed: the page falls back to polling, and a stream re-reads the database
whenever it (re)connects. Publishing never raises: a notification must not fail the work done.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

from django.conf import settings

logger = logging.getLogger(__name__)

FILE_POLL_SECONDS = 0.05  # 50 ms: the embedded transport's added latency, at most
_TOPIC = re.compile(r"^[a-z0-9-]{1,64}$")  # ids and words only: no PHI can fit a topic


class Listener(Protocol):
    def wait(self, timeout: float) -> bool:
        """Block up to ``timeout`` seconds; True when the topic was published meanwhile."""

    def close(self) -> None: ...


def _checked(topic: str) -> str:
    if not _TOPIC.match(topic):
        raise ValueError(f"live event topics are lower-case words and ids, not {topic!r}")
    return topic


def _url() -> str:
    return str(settings.MEDAI_LIVE_EVENTS_URL)


def transport() -> str:
    """``redis`` or ``file``: which transport the settings chose (shown by the benchmark)."""
    return "redis" if _url().startswith(("redis://", "rediss://")) else "file"


def _file_dir() -> Path:
    return Path(urlparse(_url()).path)


_redis_clients: dict[str, object] = {}


def _redis():  # -> redis.Redis, cached per URL (a connection pool shared by the threads)
    import redis

    url = _url()
    client = _redis_clients.get(url)
    if client is None:
        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
        _redis_clients[url] = client
    return client


def publish(topic: str) -> None:
    """Tell every listener of ``topic``; failures are logged, never raised."""
    publish_many([topic])


def publish_many(topics: list[str]) -> None:
    """:func:`publish` for several topics: one round trip to Redis (a pipeline) for all."""
    topics = [_checked(topic) for topic in topics]
    if not topics:
        return
    try:
        if transport() == "redis":
            if len(topics) == 1:
                _redis().publish(f"medai:{topics[0]}", "1")
                return
            pipe = _redis().pipeline(transaction=False)
            for topic in topics:
                pipe.publish(f"medai:{topic}", "1")
            pipe.execute()
        else:
            folder = _file_dir()
            folder.mkdir(parents=True, exist_ok=True)
            for topic in topics:
                (folder / topic).write_text(str(time.time_ns()))
    except Exception:  # the notification is best effort; pages fall back to polling
        logger.warning("live events %s not published", ", ".join(topics), exc_info=True)


class _RedisListener:
    def __init__(self, topic: str) -> None:
        self._pubsub = _redis().pubsub(ignore_subscribe_messages=True)
        self._pubsub.subscribe(f"medai:{topic}")

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            message = self._pubsub.get_message(timeout=left)
            if message is not None and message.get("type") == "message":
                return True
        return False

    def close(self) -> None:
        self._pubsub.close()


class _FileListener:
    def __init__(self, topic: str) -> None:
        self._path = _file_dir() / topic
        self._seen = self._stamp()

    def _stamp(self) -> int:
        try:
            return self._path.stat().st_mtime_ns
        except FileNotFoundError:
            return 0

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            stamp = self._stamp()
            if stamp != self._seen:
                self._seen = stamp
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(FILE_POLL_SECONDS)

    def close(self) -> None:
        return None


def listen(topic: str) -> Listener:
    """Start listening *before* checking the state you wait for, so no event falls in between."""
    topic = _checked(topic)
    if transport() == "redis":
        return _RedisListener(topic)
    return _FileListener(topic)
