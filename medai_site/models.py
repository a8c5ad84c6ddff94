"""Cross-cutting records: the audit trail of access to PHI."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class AuditEvent(models.Model):
    """One access to (or change of) patient data: who, which patient, what, when, through what.

    Append-only: written only by ``medai_site.audit.audit_record``; a database trigger refuses
    UPDATE and DELETE (migration 0004). Each record carries the SHA-256 of its content chained to
    the previous record's hash, so ``manage.py audit_verify`` detects an altered or missing one.
    Holds ids and action names, never PHI.
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

    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    action = models.CharField(max_length=16, choices=Action.choices)
    interface = models.CharField(max_length=16, choices=Interface.choices)
    patient_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    object_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    prev_hash = models.CharField(max_length=64, editable=False)
    hash = models.CharField(max_length=64, editable=False, unique=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.action} {self.object_type}:{self.object_id}"


class ApiToken(models.Model):
    """A per-client credential for the REST API: stored hashed, scoped, expiring, revocable.

    The secret is shown once, when the token is created (``create_api_token`` or the admin);
    only its sha256 is stored. The token's user is the viewer in every selector, so an
    integration client sees exactly what its user's care teams allow, narrowed by its scopes.
    """

    class Scope(models.TextChoices):
        PATIENTS_READ = "patients:read", "Read patients, visits and advice"
        PATIENTS_WRITE = "patients:write", "Register and update patients"
        VISITS_WRITE = "visits:write", "Record visits, observations and diagnoses"
        ADVICE_REQUEST = "advice:request", "Request advice and give feedback on it"
        MODELS_MANAGE = "models:manage", "Train models (and, for admins, promote or roll back)"

    name = models.CharField(max_length=100, help_text="The client system, e.g. 'lab gateway'.")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    # The first characters of the secret, kept to tell tokens apart in lists and logs.
    prefix = models.CharField(max_length=16, db_index=True)
    token_hash = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"API token {self.prefix}… ({self.name})"


class IdempotencyRecord(models.Model):
    """The outcome of one creating POST sent with an ``Idempotency-Key`` header.

    Holds no PHI: the client, the key, the sha256 of the request, the status code and the id of
    the object created. A retry rebuilds its response from the object itself.
    """

    client = models.CharField(max_length=40)  # "token:<id>" or "user:<id>"
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField()
    object_id = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["client", "key"], name="idempotency_once_per_client")
        ]

    def __str__(self) -> str:
        return f"Idempotency key for {self.client} ({self.status_code})"
