"""Celery tasks of the platform: thin wrappers around one service each."""

from __future__ import annotations

import logging

from celery import shared_task

from .models import AuditEvent
from .request_context import current_interface

logger = logging.getLogger(__name__)


@shared_task(name="medai_site.tasks.audit_anchor_write", ignore_result=True)
def audit_anchor_write() -> None:
    """Beat, every MEDAI_AUDIT_ANCHOR_SECONDS: anchor the audit chain's head outside the database."""
    from .audit_anchor import audit_anchor_write as write

    current_interface.set(AuditEvent.Interface.WORKER)
    anchor, problems = write()
    if problems:  # logged as ids and counts only; audit_verify names the records
        logger.error(
            "audit anchor not written: %d problem(s); run manage.py audit_verify", len(problems)
        )
    elif anchor is not None:
        logger.info("audit head anchored at record %s (%s records)", anchor.last_id, anchor.count)
