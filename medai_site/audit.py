"""Writing the audit trail. Every service that reads or writes PHI records one event here."""

from __future__ import annotations

from django.db import models

from .models import AuditEvent
from .request_context import current_interface, current_request_id

__all__ = ["audit_record", "current_interface", "current_request_id"]


def audit_record(
    *,
    actor: object | None,
    action: str,
    obj: models.Model | None = None,
    patient_id: int | None = None,
    interface: str | None = None,
) -> AuditEvent:
    user = actor if getattr(actor, "is_authenticated", False) else None
    return AuditEvent.objects.create(
        actor=user,
        action=action,
        interface=interface or current_interface.get(),
        patient_id=patient_id,
        object_type=obj._meta.label_lower if obj is not None else "",
        object_id=str(obj.pk) if obj is not None else "",
        request_id=current_request_id.get(),
    )
