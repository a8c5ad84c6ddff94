"""Cross-cutting records: the audit trail of access to PHI."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class AuditEvent(models.Model):
    """One access to (or change of) patient data: who, which patient, what, when, through what.

    Append-only: written only by ``medai_site.audit``; database triggers refuse UPDATE, DELETE
    (migration 0004) and TRUNCATE (0005), and the application's database role may only INSERT
    and SELECT here (``manage.py db_grant_app_role``). Each record carries a hash of its content
    chained to the previous record's in its lane (one of ``MEDAI_AUDIT_LANES`` independent
    chains): HMAC-SHA256 under ``AUDIT_CHAIN_KEYS[key_id]`` (chain versions 2 to 4), or the
    unkeyed SHA-256 of records written before keys existed (version 1). Each lane's head is
    anchored outside the database (``medai_site.audit_anchor``), so
    ``manage.py audit_verify`` detects an altered, missing or removed record, a shortened tail
    and an emptied table. Holds ids and action names, never PHI.
    """

    class Action(models.TextChoices):
        VIEW = "view"
        SEARCH_HIT = "search_hit"
        CREATE = "create"
        UPDATE = "update"
        EXPORT = "export"
        ADVICE = "advice"
        DENIED = "denied"
        DELETE = "delete"
        # One list or search-suggestion view showing several patients' records: their ids are
        # in ``patient_ids`` (one record per page shown, reported per patient).
        LIST = "list"

    class Interface(models.TextChoices):
        PAGE = "page"
        API = "api"
        ADMIN = "admin"
        WORKER = "worker"
        COMMAND = "command"
        IMPORT = "import"  # a record written by an import door (FHIR, HL7 v2, CSV)

    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    action = models.CharField(max_length=16, choices=Action.choices)
    interface = models.CharField(max_length=16, choices=Interface.choices)
    patient_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    # A LIST record: the ids of every patient whose data the list showed (part of the keyed
    # hash since chain version 3, so no id can be added or removed unnoticed).
    patient_ids = models.JSONField(default=list, blank=True, editable=False)
    object_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    # The API token the request authenticated with (None for pages, admin, workers, commands):
    # a token acts as its user, and this tells the token's actions from the person's own.
    api_token = models.ForeignKey(
        "ApiToken", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # 1 = unkeyed SHA-256 (records written before migration 0005), 2 = HMAC-SHA256 under key_id,
    # 3 = version 2 with ``patient_ids`` in the hashed content (since migration 0007), 4 = version
    # 3 with ``lane`` in the hashed content (since migration 0008).
    chain_version = models.PositiveSmallIntegerField(default=4, editable=False)
    key_id = models.CharField(max_length=16, blank=True, editable=False)
    # The chain this record belongs to (``MEDAI_AUDIT_LANES`` independent keyed chains, each
    # with its own genesis; records from before lanes existed are all lane 0). Hashed from
    # chain version 4 on, so a record cannot be moved to another lane unnoticed.
    lane = models.PositiveSmallIntegerField(default=0, editable=False)
    prev_hash = models.CharField(max_length=64, editable=False)
    hash = models.CharField(max_length=64, editable=False, unique=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            # A writer reads its lane's head (the newest id in the lane) under the lane's lock.
            models.Index(fields=["lane", "id"], name="medai_audit_lane_id"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.action} {self.object_type}:{self.object_id}"


class ApiToken(models.Model):
    """A per-client credential for the REST API: stored hashed, scoped, expiring, revocable.

    The secret is shown once, when the token is created; only its sha256 is stored. A person
    creates their own tokens (Account → API tokens); an integration-client account's tokens are
    created by a hospital admin (the admin) or an operator (``create_api_token``), so nobody can
    mint a token that acts as somebody else. The token's user is the viewer in every selector,
    so a client sees exactly what its user's care teams allow, narrowed by its scopes; every
    audit record made through it names it (``AuditEvent.api_token``).
    """

    class Scope(models.TextChoices):
        PATIENTS_READ = "patients:read", "Read patients, visits and advice"
        PATIENTS_WRITE = "patients:write", "Register and update patients"
        VISITS_WRITE = "visits:write", "Record visits, observations and diagnoses"
        ADVICE_REQUEST = "advice:request", "Request advice and give feedback on it"
        MODELS_MANAGE = "models:manage", "Train models (and, for admins, promote or roll back)"
        MODELS_PREDICT = "models:predict", "Ask a model for a prediction on inputs sent inline"

    name = models.CharField(max_length=100, help_text="The client system, e.g. 'lab gateway'.")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    # The first characters of the secret, kept to tell tokens apart in lists and logs.
    prefix = models.CharField(max_length=16, db_index=True)
    token_hash = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    # Who issued it: the user themselves, or the admin who issued an integration client's token;
    # None = an operator at the command line (``create_api_token``).
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
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
