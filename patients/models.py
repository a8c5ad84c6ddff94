"""Patients, their allergies and the care teams allowed to see them.

PHI (name, date of birth, contact data, national id, emergency contact, allergy reactions) is
encrypted at rest; name, phone and national id are searchable through blind indexes only.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from medai_site.blind_index import BlindIndexField
from medai_site.encrypted_fields import (
    EncryptedCharField,
    EncryptedDateField,
    EncryptedEmailField,
    EncryptedQuerySet,
    EncryptedTextField,
)


def normalise_mrn(mrn: str | None) -> str:
    """MRNs are stored trimmed and in capitals; every look-up normalises the same way."""
    return (mrn or "").strip().upper()


# The one MRN pattern: 4-32 letters, digits or hyphens, not starting with a hyphen. Stored in
# capitals; typed in any case (forms, API and search normalise with normalise_mrn).
_MRN_SHAPE = "^[{0}][{0}-]{{3,31}}$"
MRN_PATTERN = _MRN_SHAPE.format("A-Z0-9")
MRN_INPUT_PATTERN = _MRN_SHAPE.format("A-Za-z0-9")
MRN_VALIDATOR = RegexValidator(MRN_PATTERN, "MRN must be 4–32 capital letters, digits or hyphens.")


class CareTeam(models.Model):
    """A group of clinicians who share a panel of patients (ward, clinic, practice)."""

    name = models.CharField(max_length=120, unique=True)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, related_name="care_teams", blank=True
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Patient(models.Model):
    class Sex(models.TextChoices):
        FEMALE = "female", "Female"
        MALE = "male", "Male"
        OTHER = "other", "Other"
        UNKNOWN = "unknown", "Unknown"

    mrn = models.CharField("MRN", max_length=32, unique=True, validators=[MRN_VALIDATOR])
    sex = models.CharField(max_length=8, choices=Sex.choices)
    # --- PHI, encrypted at rest ---
    given_name = EncryptedCharField(max_length=100)
    family_name = EncryptedCharField(max_length=100)
    birth_date = EncryptedDateField()
    phone = EncryptedCharField(max_length=40, blank=True, default="")
    email = EncryptedEmailField(blank=True, default="")
    address = EncryptedTextField(blank=True, default="")
    national_id = EncryptedCharField(max_length=40, blank=True, default="")
    emergency_contact = EncryptedTextField(blank=True, default="")
    # --- blind indexes (HMAC digests, see medai_site/blind_index.py) ---
    name_bidx = BlindIndexField(sources=("given_name", "family_name"), kind="name")
    given_name_bidx = BlindIndexField(sources=("given_name",), kind="name")
    family_name_bidx = BlindIndexField(sources=("family_name",), kind="name")
    phone_bidx = BlindIndexField(sources=("phone",), kind="phone")
    national_id_bidx = BlindIndexField(sources=("national_id",), kind="national_id")

    care_teams = models.ManyToManyField(CareTeam, related_name="patients", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects = EncryptedQuerySet.as_manager()

    class Meta:
        ordering = ["mrn"]

    def __str__(self) -> str:
        # MRN only: __str__ ends up in logs, admin change messages and error reports.
        return f"Patient {self.mrn}"

    @property
    def full_name(self) -> str:
        return f"{self.given_name} {self.family_name}".strip()

    def age_on(self, day: dt.date) -> int:
        born = self.birth_date
        return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


class Allergy(models.Model):
    class Severity(models.TextChoices):
        MILD = "mild", "Mild"
        MODERATE = "moderate", "Moderate"
        SEVERE = "severe", "Severe"

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="allergies")
    # A substance name, matched by the allergy-conflict rule; the reaction is free text (PHI).
    substance = models.CharField(max_length=100)
    reaction = EncryptedTextField(blank=True, default="")
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.MODERATE)
    recorded_at = models.DateTimeField(auto_now_add=True)

    objects = EncryptedQuerySet.as_manager()

    class Meta:
        ordering = ["substance"]
        verbose_name_plural = "allergies"  # not Django's default "allergys"
        constraints = [
            models.UniqueConstraint(
                fields=["patient", "substance"], name="allergy_unique_substance"
            )
        ]

    def __str__(self) -> str:
        return f"Allergy {self.substance} ({self.severity})"


class BreakGlassGrant(models.Model):
    """Emergency access to a patient outside the doctor's care teams ("break the glass").

    Time-limited, with a reason from a short list plus the doctor's own words; shown on every
    page of the chart while active and listed for review until an admin signs it off. A grant
    made while the same doctor's previous grant for the patient is still active *extends* it
    (``extends``) and is flagged on the review list.
    """

    class Category(models.TextChoices):
        EMERGENCY_TREATMENT = "emergency_treatment", _("Emergency treatment")
        UNCONSCIOUS_PATIENT = "unconscious_patient", _("Patient unconscious or cannot communicate")
        URGENT_CONSULT = "urgent_consult", _("Urgent consultation requested")
        CRITICAL_RESULT = "critical_result", _("Critical result needs action")
        CARE_TEAM_UNREACHABLE = "care_team_unreachable", _("Patient's care team unreachable")

    patient = models.ForeignKey(
        Patient, on_delete=models.PROTECT, related_name="break_glass_grants"
    )
    grantee = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="break_glass_grants"
    )
    category = models.CharField(max_length=32, choices=Category.choices, blank=True)
    reason = EncryptedTextField()  # free text about a patient's emergency: PHI
    # The still-active grant this one prolongs (same doctor, same patient): an extension.
    extends = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="extensions"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_note = models.TextField(blank=True)

    objects = EncryptedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Emergency access {self.pk} to patient {self.patient_id}"

    @property
    def is_active(self) -> bool:
        from django.utils import timezone

        return self.expires_at > timezone.now()
