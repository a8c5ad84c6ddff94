"""Encounters and what was measured and concluded on them (FHIR Encounter/Observation/Condition)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from medai_site.encrypted_fields import EncryptedQuerySet, EncryptedTextField
from patients.models import Patient


class Visit(models.Model):
    class Type(models.TextChoices):
        OUTPATIENT = "outpatient", "Outpatient"
        INPATIENT = "inpatient", "Inpatient"
        EMERGENCY = "emergency", "Emergency"
        TELEMEDICINE = "telemedicine", "Telemedicine"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="visits")
    attending = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="attended_visits"
    )
    start = models.DateTimeField(db_index=True)
    end = models.DateTimeField(null=True, blank=True)
    visit_type = models.CharField(max_length=16, choices=Type.choices, default=Type.OUTPATIENT)
    status = models.CharField(
        max_length=8, choices=Status.choices, default=Status.OPEN, db_index=True
    )
    # Age in whole years at the visit, capped at 90 (HIPAA Safe Harbor groups ages over 89):
    # lets models and reports use age without decrypting the date of birth.
    age_years = models.PositiveSmallIntegerField()
    # --- free text: PHI, encrypted at rest ---
    chief_complaint = EncryptedTextField(blank=True, default="")
    history_present_illness = EncryptedTextField(blank=True, default="")
    past_history = EncryptedTextField(blank=True, default="")
    allergy_history = EncryptedTextField(blank=True, default="")
    physical_exam = EncryptedTextField(blank=True, default="")
    plan = EncryptedTextField(blank=True, default="")
    # The medicines prescribed at this visit, one per line (name, dose, how often): checked
    # against the allergies on save like the plan (predictions/medication_safety.py).
    medications = EncryptedTextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = EncryptedQuerySet.as_manager()

    class Meta:
        ordering = ["-start", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(end__isnull=True) | Q(end__gte=models.F("start")),
                name="visit_end_after_start",
            ),
            models.CheckConstraint(condition=Q(age_years__lte=90), name="visit_age_capped"),
        ]

    def __str__(self) -> str:
        return f"Visit {self.pk} ({self.visit_type}, {self.start:%Y-%m-%d})"


class ObservationDefinition(models.Model):
    """What a code means, its canonical unit, and the ranges that reject or flag a value."""

    class Category(models.TextChoices):
        VITAL = "vital", "Vital sign"
        LAB = "lab", "Laboratory"
        FINDING = "finding", "Finding"

    code = models.CharField(max_length=20, unique=True)
    display = models.CharField(max_length=120)
    category = models.CharField(max_length=8, choices=Category.choices)
    unit = models.CharField(max_length=20)
    alternative_units = models.JSONField(default=list, blank=True)
    decimals = models.PositiveSmallIntegerField(default=1)
    plausible_low = models.FloatField(null=True, blank=True)
    plausible_high = models.FloatField(null=True, blank=True)
    normal_low = models.FloatField(null=True, blank=True)
    normal_high = models.FloatField(null=True, blank=True)
    critical_low = models.FloatField(null=True, blank=True)
    critical_high = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["category", "code"]

    def __str__(self) -> str:
        return f"{self.code} {self.display} ({self.unit})"


class Observation(models.Model):
    class Interpretation(models.TextChoices):
        NORMAL = "N", "Normal"
        LOW = "L", "Low"
        HIGH = "H", "High"
        CRITICAL_LOW = "LL", "Critically low"
        CRITICAL_HIGH = "HH", "Critically high"
        UNKNOWN = "", "No reference range"

    visit = models.ForeignKey(Visit, on_delete=models.CASCADE, related_name="observations")
    definition = models.ForeignKey(
        ObservationDefinition, on_delete=models.PROTECT, related_name="+"
    )
    value = models.FloatField(help_text="In the definition's canonical unit.")
    entered_value = models.FloatField()
    entered_unit = models.CharField(max_length=20)
    interpretation = models.CharField(max_length=2, choices=Interpretation.choices, blank=True)
    recorded_at = models.DateTimeField()

    class Meta:
        ordering = ["definition__code"]
        constraints = [
            # One current value per code and visit; re-entering a vital replaces it.
            models.UniqueConstraint(fields=["visit", "definition"], name="observation_one_per_code")
        ]

    def __str__(self) -> str:
        return f"{self.definition_id}={self.value}"

    @property
    def is_abnormal(self) -> bool:
        return self.interpretation not in ("", self.Interpretation.NORMAL)

    @property
    def is_critical(self) -> bool:
        return self.interpretation in (
            self.Interpretation.CRITICAL_LOW,
            self.Interpretation.CRITICAL_HIGH,
        )


class Diagnosis(models.Model):
    class Rank(models.TextChoices):
        PRIMARY = "primary", "Primary"
        SECONDARY = "secondary", "Secondary"

    class Status(models.TextChoices):
        PROVISIONAL = "provisional", "Provisional"
        CONFIRMED = "confirmed", "Confirmed"
        REFUTED = "refuted", "Refuted"

    class Source(models.TextChoices):
        DOCTOR = "doctor", "Doctor"
        ADVICE = "advice", "Accepted advice"

    visit = models.ForeignKey(Visit, on_delete=models.CASCADE, related_name="diagnoses")
    code = models.CharField("ICD-10 code", max_length=8, db_index=True)
    display = models.CharField(max_length=255)
    rank = models.CharField(max_length=10, choices=Rank.choices, default=Rank.PRIMARY)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PROVISIONAL)
    source = models.CharField(max_length=8, choices=Source.choices, default=Source.DOCTOR)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Provenance of a diagnosis that came from advice: the model version that suggested it
    # ("Differential diagnosis v3"); ``recorded_by`` is the doctor who accepted it. Accepting is
    # agreement, not confirmation: such a diagnosis starts provisional.
    suggested_by = models.CharField(max_length=120, blank=True, default="")
    # Who confirmed it, and when: an explicit act (Confirm, or closing the visit with it as a
    # final diagnosis). Only confirmed diagnoses are training labels.
    confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    confirmed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["rank", "code"]
        constraints = [
            models.UniqueConstraint(
                fields=["visit", "code"], name="diagnosis_unique_code_per_visit"
            ),
            # At most one primary diagnosis that still stands per visit.
            models.UniqueConstraint(
                fields=["visit"],
                condition=Q(rank="primary") & ~Q(status="refuted"),
                name="diagnosis_one_primary_per_visit",
            ),
        ]
        verbose_name_plural = "diagnoses"

    def __str__(self) -> str:
        return f"{self.code} {self.display} ({self.status})"

    @property
    def category(self) -> str:
        return self.code[:3]


class VisitEvent(models.Model):
    """A domain event on a visit (recorded, changed, closed): the outbox visits owns.

    Written by the visit services in the visit's own transaction (visits/events.py), so an event
    exists exactly when the change it reports was committed. Other apps consume events without
    visits knowing them (predictions turns each into an advice request). Ids and a kind only:
    no PHI.
    """

    class Kind(models.TextChoices):
        RECORDED = "recorded", "Recorded"
        CHANGED = "changed", "Changed"
        CLOSED = "closed", "Closed"

    visit = models.ForeignKey(Visit, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # The page/API request that changed the visit, so the consumers' logs join up with it.
    request_id = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"Visit {self.visit_id} {self.kind} (event {self.pk})"
