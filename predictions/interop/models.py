"""What the import doors remember: which source record became which MedAI row (idempotency),
conditions kept in their source coding, and import runs started from the admin.

Written only by ``predictions/interop/services.py``.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from medai_site.encrypted_fields import EncryptedQuerySet, EncryptedTextField
from patients.models import Patient
from visits.models import Visit


class SourceRecord(models.Model):
    """One imported source record (a FHIR resource, an HL7 message) and the row it became.

    ``key`` is an HMAC of (source system, resource type, source id) under the blind-index key:
    re-importing the same record finds it, while the source's own ids (which some systems build
    from MRNs or names) are never stored in clear. ``content_hash`` tells an unchanged record from
    an updated one.
    """

    key = models.CharField(max_length=64, unique=True)
    resource_type = models.CharField(max_length=40)
    content_hash = models.CharField(max_length=64)
    target_type = models.CharField(max_length=40, blank=True)  # e.g. "visits.observation"
    target_id = models.BigIntegerField(null=True, blank=True)
    patient_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    imported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.resource_type} -> {self.target_type} {self.target_id}"


class SourceCondition(models.Model):
    """A condition coded in a system other than ICD-10 (e.g. SNOMED CT), kept as it came.

    MedAI's diagnoses are ICD-10; a source coding is mapped to one only where the bundle carries
    an ICD-10 coding too or a maintained map (``import_fhir --code-map``) names it, never by
    guessing. Until then it is shown as the source said it (FHIR API, chart).
    """

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="+")
    visit = models.ForeignKey(
        Visit, null=True, blank=True, on_delete=models.CASCADE, related_name="source_conditions"
    )
    system = models.CharField(max_length=255)
    code = models.CharField(max_length=64)
    display = models.CharField(max_length=255, blank=True)
    clinical_status = models.CharField(max_length=20, blank=True)
    verification_status = models.CharField(max_length=20, blank=True)
    onset = models.DateTimeField(null=True, blank=True)
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-recorded_at", "-id"]

    def __str__(self) -> str:
        return f"Source condition {self.pk} ({self.code})"


class ImportRun(models.Model):
    """An import started in the admin and run by a worker, with its progress and report."""

    class Kind(models.TextChoices):
        FHIR = "fhir", "FHIR R4"
        HL7 = "hl7", "HL7 v2"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.FHIR)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    dry_run = models.BooleanField(default=True)
    # The uploaded file, kept on the server's own disk (never on the broker) until the run ends.
    path = models.CharField(max_length=500)
    file_name = models.CharField(max_length=255, blank=True)
    source = models.CharField(max_length=100, default="default")
    care_team_name = models.CharField(max_length=120, blank=True)
    progress = models.FloatField(default=0.0)  # 0..1 of the file read
    report = models.JSONField(default=dict, blank=True)
    error = models.CharField(max_length=500, blank=True)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Import {self.pk} ({self.kind}, {self.status})"


class Hl7Message(models.Model):
    """An HL7 v2 message received (file or MLLP): idempotent by control id (MSH-10), with its
    outcome; unmatched ones wait in quarantine, visible to admins. The raw message is PHI."""

    class Outcome(models.TextChoices):
        ACCEPTED = "AA", "Accepted"
        ERROR = "AE", "Error"
        REJECTED = "AR", "Rejected"

    key = models.CharField(max_length=64, unique=True)  # HMAC of sending facility + control id
    outcome = models.CharField(max_length=2, choices=Outcome.choices)
    quarantined = models.BooleanField(default=False, db_index=True)
    reason = models.CharField(max_length=500, blank=True)
    raw = EncryptedTextField()
    patient_id = models.BigIntegerField(null=True, blank=True)
    visit_id = models.BigIntegerField(null=True, blank=True)
    observations = models.PositiveIntegerField(default=0)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    received_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects = EncryptedQuerySet.as_manager()

    class Meta:
        ordering = ["-received_at", "-id"]
        verbose_name = "HL7 v2 message"

    def __str__(self) -> str:
        return f"HL7 message {self.pk} ({self.outcome})"


class PatientRow(Patient):
    """The admin's CSV/Excel import of patients (a proxy: the rows are patients')."""

    class Meta:
        proxy = True
        verbose_name = "patient import (CSV/Excel)"
        verbose_name_plural = "patient imports (CSV/Excel)"


class VisitRow(Visit):
    """The admin's CSV/Excel import of visits with their observations (a proxy of visits)."""

    class Meta:
        proxy = True
        verbose_name = "visit import (CSV/Excel)"
        verbose_name_plural = "visit imports (CSV/Excel)"
