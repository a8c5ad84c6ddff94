"""The Celery application: configuration comes from Django settings (``CELERY_*``)."""

import os
from typing import Any

from celery import Celery
from celery.signals import task_prerun

from .broker_filesystem import register as use_whole_message_filesystem_broker

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "medai_site.settings")
# make run's embedded broker: never hand a worker a half-written message (broker_filesystem.py).
use_whole_message_filesystem_broker()

app = Celery("medai")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
def drop_broken_database_connections(**_kwargs: Any) -> None:
    """A connection that failed (PostgreSQL restarted, the network dropped) is not reused.

    With ``CELERY_DB_REUSE_MAX`` Celery's Django fixup keeps a worker's connection across tasks
    without checking it, so after an outage every task — each retry included — failed on the dead
    connection ("the connection is closed") until the reuse count ran out. Django's own rule
    (what it does around every web request) closes it when an error occurred and it is unusable.
    """
    from django.db import connections

    for connection in connections.all(initialized_only=True):
        if connection.errors_occurred:
            connection.close_if_unusable_or_obsolete()
