"""An advice worker's process set up once, when it starts: one BLAS thread, models loaded.

Connected to Celery's ``worker_init`` (the main process, before the pool forks) and
``worker_process_init`` (each pool process) by ``PredictionsConfig.ready``; it acts only in the
advice worker (``MEDAI_ADVICE_WORKER``, set by the Procfile's and docker-compose's ``worker``).

* **One BLAS thread.** Advice scores one visit at a time: a 1 x n row against the model's
  coefficients. NumPy's and SciPy's OpenBLAS start a thread per core for that product and, on a
  machine shared with the web tier and PostgreSQL, spend more time waking and spinning those
  threads than multiplying (measured: 2.5x the CPU per advice, tests/bench/
  bench_advice_throughput.py). The trainer worker keeps every thread: training is matrix work.
* **Memory shared with the pool** (``predictions/advice_messages.py``): the requests its
  batches completed, whose messages the main process then acknowledges without the pool.
* **Models loaded before the first visit.** Each enabled task's active artifact (sha256 and
  library versions checked, as always) and its similar-case index are read into the process's
  caches (``predictions.ml.artifacts.load_model``, ``predictions.similar_cases.similar_index``),
  so the first advice after a deploy or a restart does not pay for unpickling. A version that
  cannot be loaded is left to the advice path, which fails the request with the reason.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings

logger = logging.getLogger(__name__)
BLAS_THREADS = 1


def one_blas_thread() -> None:
    from threadpoolctl import threadpool_limits

    # Not a context manager: the limit stays for the life of the process.
    threadpool_limits(limits=BLAS_THREADS, user_api="blas")


def load_active_models() -> int:
    """Load every enabled task's active artifact and similar-case index; how many loaded."""
    from .ml.artifacts import load_model
    from .models import PredictionTask
    from .similar_cases import similar_index

    loaded = 0
    tasks = (
        PredictionTask.objects.filter(enabled=True, active_version__isnull=False)
        .exclude(kind=PredictionTask.Kind.FORECAST)
        .select_related("active_version")
    )
    for task in tasks:
        version = task.active_version
        if version is None:  # filtered out above; for the type checker
            continue
        try:
            load_model(version.artifact_path, version.artifact_sha256)
            meta = version.report.get("similar_cases_index")
            if meta:
                similar_index(meta["path"], meta["sha256"])
        except Exception as exc:  # any failure: the advice path fails the request with the reason
            logger.warning("advice model %s not preloaded (%s)", task.slug, type(exc).__name__)
            continue
        loaded += 1
    return loaded


def on_worker_init(**_kwargs: Any) -> None:
    if settings.MEDAI_ADVICE_WORKER:
        one_blas_thread()
        # Before the pool forks: its processes note what their batches completed there, and
        # this main process acknowledges those requests' messages itself (advice_messages.py).
        from .advice_messages import share

        share()


def on_worker_process_init(**_kwargs: Any) -> None:
    if not settings.MEDAI_ADVICE_WORKER:
        return
    one_blas_thread()
    try:
        loaded = load_active_models()
    except Exception as exc:  # the database away at start: the first advice loads them
        logger.warning("advice models not preloaded (%s)", type(exc).__name__)
        return
    logger.info("advice worker process: %d model(s) loaded, %d BLAS thread", loaded, BLAS_THREADS)


def connect() -> None:
    from celery.signals import worker_init, worker_process_init

    worker_init.connect(on_worker_init, dispatch_uid="medai-advice-worker-init")
    worker_process_init.connect(on_worker_process_init, dispatch_uid="medai-advice-process-init")
