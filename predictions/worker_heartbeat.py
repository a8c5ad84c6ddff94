"""The advice worker's heartbeat: a thread of the Celery worker's main process.

Connected to Celery's ``worker_ready``/``worker_shutdown`` signals by ``PredictionsConfig.ready``
(the signals only fire in a worker). Only a worker that consumes the ``advice`` queue beats. The
row's name is the Celery node name plus a random instance id, so a worker restarted under the same
node name (or as pid 1 in a new container) never inherits the beat of the one that died: the dead
one's row goes silent and the relay re-sends what it held. The beat runs in the main process, so
it stops when the whole worker dies; a pool process that dies alone is Celery's to handle
(``task_reject_on_worker_lost`` hands its message back at once).
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection

logger = logging.getLogger(__name__)
ADVICE_QUEUE = "advice"

# Drawn when Django sets up in the worker's main process, before the pool forks: its pool
# processes inherit it and so name their claims after the row their main process beats.
INSTANCE = uuid.uuid4().hex[:8]
_state: dict[str, Any] = {"name": None, "thread": None, "stop": threading.Event()}


def worker_name(hostname: str) -> str:
    """The AdviceWorker name of the worker ``hostname`` (Celery's node name) this process is in."""
    return f"{hostname}#{INSTANCE}"


def claimant(hostname: str) -> str:
    """Who claims a request from this pool process: its worker's row name and its own pid."""
    return f"{worker_name(hostname)}:{os.getpid()}"


def _consumes_advice(consumer: Any) -> bool:
    queues = getattr(getattr(consumer, "task_consumer", None), "queues", None) or []
    names = {getattr(q, "name", q) for q in queues}
    if not names:  # not consuming yet: the queues the worker was told to consume
        names = set(consumer.app.amqp.queues.consume_from or {})
    return ADVICE_QUEUE in names


def _beat_forever(name: str, stop: threading.Event) -> None:
    from .services.advice_workers import advice_worker_beat

    interval = settings.MEDAI_ADVICE_WORKER_BEAT_SECONDS
    pid = os.getpid()
    failing = False
    while True:
        try:
            close_old_connections()
            advice_worker_beat(name=name, pid=pid)
            if failing:
                logger.info("advice worker heartbeat restored")
            failing = False
        except Exception as exc:  # the database away: keep trying, say so once
            if not failing:
                logger.warning("advice worker heartbeat failed (%s); retrying", type(exc).__name__)
            failing = True
            connection.close()
        if stop.wait(interval):
            return


def on_worker_ready(sender: Any = None, **_kwargs: Any) -> None:
    if _state["thread"] is not None or sender is None or not _consumes_advice(sender):
        return
    name = worker_name(sender.hostname)
    _state["name"] = name
    thread = threading.Thread(
        target=_beat_forever, args=(name, _state["stop"]), name="advice-heartbeat", daemon=True
    )
    _state["thread"] = thread
    thread.start()
    logger.info(
        "advice worker %s beating every %s s", name, settings.MEDAI_ADVICE_WORKER_BEAT_SECONDS
    )


def on_worker_shutdown(**_kwargs: Any) -> None:
    name, thread = _state["name"], _state["thread"]
    if thread is None:
        return
    _state["stop"].set()
    thread.join(timeout=5)
    from .services.advice_workers import advice_worker_stop

    try:
        close_old_connections()
        advice_worker_stop(name=name)
    except Exception as exc:  # the relay forgets the row once it goes silent
        logger.warning("advice worker row not removed (%s)", type(exc).__name__)


def connect() -> None:
    from celery.signals import worker_ready, worker_shutdown

    worker_ready.connect(on_worker_ready, dispatch_uid="medai-advice-heartbeat-ready")
    worker_shutdown.connect(on_worker_shutdown, dispatch_uid="medai-advice-heartbeat-shutdown")
