"""Cross-cutting records: the audit trail of access to PHI."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class AuditEvent(models.Model):
    """One access to (or change of) patient data: who, which patient, what, when, through what.

    Append-only by contract: written only by ``medai_site.audit.audit_record``. Holds ids and
    action names, never PHI.
    """

    class Action(models.TextChoices):
        VIEW = "view"
        SEARCH_HIT = "search_hit"
        CREATE = "create"
        UPDATE = "update"
        EXPORT = "export"
        ADVICE = "advice"
        DENIED = "denied"

    class Interface(models.TextChoices):
        PAGE = "page"
        API = "api"
        ADMIN = "admin"
        WORKER = "worker"
        COMMAND = "command"

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    action = models.CharField(max_length=16, choices=Action.choices)
    interface = models.CharField(max_length=16, choices=Interface.choices)
    patient_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    object_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    request_id = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.action} {self.object_type}:{self.object_id}"
