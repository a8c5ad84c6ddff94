"""A Celery app for integration tests that need a worker slow at one known point.

``celery -A tests.integration.slow_worker worker`` runs the project's own app with delays
injected from here, so production code carries no test hooks:

- ``MEDAI_ITEST_ADVICE_DELAY`` seconds after advice is computed and before it is stored (a
  window in which a test kills the worker between computing and storing);
- ``MEDAI_ITEST_COMPUTE_DELAY`` seconds after the request is claimed, before the models run;
- ``MEDAI_ITEST_STORE_DELAY`` seconds inside the storing transaction (advice written, not
  committed);
- ``MEDAI_ITEST_TRAINING_DELAY`` seconds after a training job's snapshot, before the engine
  trains (the job shows the stage "snapshot taken" meanwhile, and its heartbeat keeps beating).

The wrappers are installed in each pool process (``worker_process_init``), after Django is set up.
"""

from __future__ import annotations

import functools
import os
import time

from celery.signals import worker_process_init

from medai_site.celery import app

__all__ = ["app"]


def _delayed_after(function, seconds: float):
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        result = function(*args, **kwargs)
        time.sleep(seconds)
        return result

    return wrapper


def _delayed_before(function, seconds: float):
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        time.sleep(seconds)
        return function(*args, **kwargs)

    return wrapper


@worker_process_init.connect
def install_delays(**_kwargs) -> None:
    from predictions.services import advice, training

    advice_delay = float(os.environ.get("MEDAI_ITEST_ADVICE_DELAY", "0"))
    if advice_delay:
        # advice_compute builds the payload, then stores it in one transaction.
        advice._payload = _delayed_after(advice._payload, advice_delay)
    compute_delay = float(os.environ.get("MEDAI_ITEST_COMPUTE_DELAY", "0"))
    if compute_delay:
        # The request is claimed; the models and rules have not run yet.
        advice._payload = _delayed_before(advice._payload, compute_delay)
    store_delay = float(os.environ.get("MEDAI_ITEST_STORE_DELAY", "0"))
    if store_delay:
        # Inside the storing transaction: the advice row is written, not committed.
        advice._store = _delayed_after(advice._store, store_delay)
    training_delay = float(os.environ.get("MEDAI_ITEST_TRAINING_DELAY", "0"))
    if training_delay:
        # The engine's train() is the first step after the snapshot ("snapshot taken").
        training.train = _delayed_before(training.train, training_delay)
