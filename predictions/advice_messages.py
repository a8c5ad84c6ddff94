"""The advice worker's messages: which ones its main process acknowledges without its pool.

An advice batch (predictions/services/advice.py) completes requests whose own messages are still
queued. Handed to the pool process, such a message only finds its request done, yet it costs a
trip through the pool (two pipe writes, the task's trace, the result) and the wake-ups that go
with it: ~6 ms of wall time each on the busy 2-core machine, a third of the time of a batch of 8
(tests/bench/bench_advice_throughput.py).

So the pool processes note the requests their batches completed in memory shared with the
worker's main process (a ring of ids, created before the pool forks: :func:`share`), and the
advice task's strategy (Celery's ``Task.Strategy``: it runs in the main process as each message
arrives) acknowledges a message whose request is noted there and hands every other one to
Celery's default strategy. A noted request is done for good (nothing reopens a done request),
so the message skipped is exactly the no-op its task would have been. A request not noted (its
note overwritten by 4,096 later ones, or completed by another worker) takes the usual way, where
the claim finds it done. Nothing else changes: acknowledged late as every advice message, and a
message the strategy cannot read is left to Celery.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)
SLOTS = 4096  # ids noted; 32 KB shared, searched in microseconds

# (ids, next slot), shared with the processes forked after share(); None elsewhere (the web,
# tests, the trainer): nothing is noted and every message takes the usual way.
_ring: tuple[Any, Any] | None = None


def share() -> None:
    """Create the shared ring (the advice worker's main process, before its pool forks)."""
    global _ring
    from multiprocessing.sharedctypes import RawArray, RawValue

    _ring = (RawArray("q", SLOTS), RawValue("q", 0))


def unshare() -> None:
    global _ring
    _ring = None


def note(request_ids: Iterable[int]) -> bool:
    """Requests completed (committed) by this process's batch: their messages are no-ops.
    False where nothing is shared (not an advice worker).

    Several pool processes may note at once and overwrite one another's slot: a lost note only
    sends that message the usual way."""
    if _ring is None:
        return False
    ids, head = _ring
    for request_id in request_ids:
        slot = head.value
        ids[slot % SLOTS] = request_id
        head.value = slot + 1
    return True


def noted(request_id: int) -> bool:
    if _ring is None or request_id <= 0:  # 0: an empty slot
        return False
    return bool((np.frombuffer(_ring[0], dtype=np.int64) == request_id).any())


def _request_id(message: Any) -> int | None:
    """The request id of an advice message (protocol 2: ``[args, kwargs, embed]``)."""
    try:
        args = message.payload[0]
        return int(args[0]) if len(args) == 1 else None
    except Exception:  # not ours to judge: Celery's strategy reports a malformed message
        return None


def strategy(task: Any, app: Any, consumer: Any, **kwargs: Any) -> Callable[..., Any]:
    """The advice task's Celery strategy: Celery's default, after the check above."""
    from celery.worker.strategy import default

    handle = default(task, app, consumer, **kwargs)
    errors = consumer.connection_errors

    def on_message(
        message: Any, body: Any, ack: Any, reject: Any, callbacks: Any, **more: Any
    ) -> Any:
        if _ring is not None and body is None:  # body: protocol 1 only
            request_id = _request_id(message)
            if request_id is not None and noted(request_id):
                logger.debug("advice request %s done by a batch: message acknowledged", request_id)
                ack(logger, errors)
                return None
        return handle(message, body, ack, reject, callbacks, **more)

    return on_message
