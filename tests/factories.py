"""factory_boy factories for every model of patients, visits and medai_site.

Writes in tests go through these factories or the services. Rows with an invariant that only a
service keeps (the audit hash chain, a token's hashed secret, an emergency grant's expiry and
audit record) are created through that service.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import factory
from django.contrib.auth.models import Group, User
from django.utils import timezone

from medai_site import roles
from medai_site.models import ApiToken, AuditEvent, IdempotencyRecord
from medai_site.two_factor import totp_device_create
from patients.models import Allergy, BreakGlassGrant, CareTeam, Patient
from visits.models import Diagnosis, Observation, ObservationDefinition, Visit, VisitEvent


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.PostGenerationMethodCall("set_password", "correct horse battery staple")

    @factory.post_generation
    def role(self, create: bool, extracted: str | None, **kwargs: object) -> None:
        _grant_role(self, create, extracted)


def _grant_role(user: User, create: bool, role: str | None) -> None:
    if create and role:
        user.groups.add(Group.objects.get(name=role))
    if create:
        user.save()


# Subclasses redeclare the hook with their default role: a plain ``role = ...`` attribute would
# replace the hook and reach User() as an unexpected keyword argument.
class DoctorFactory(UserFactory):
    @factory.post_generation
    def role(self, create: bool, extracted: str | None, **kwargs: object) -> None:
        _grant_role(self, create, extracted or roles.DOCTOR)


class AdminFactory(UserFactory):
    is_staff = True

    @factory.post_generation
    def role(self, create: bool, extracted: str | None, **kwargs: object) -> None:
        _grant_role(self, create, extracted or roles.ADMIN)

    @factory.post_generation
    def totp_device(self, create: bool, extracted: object, **kwargs: object) -> None:
        """Admins must have a second factor: every admin gets a confirmed TOTP device."""
        if create:
            totp_device_create(user=self, confirmed=True)


class CareTeamFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CareTeam
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Team {n}")

    @factory.post_generation
    def members(self, create: bool, extracted: list[User] | None, **kwargs: object) -> None:
        if create and extracted:
            self.members.set(extracted)


class PatientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Patient
        skip_postgeneration_save = True

    mrn = factory.Sequence(lambda n: f"MRN{n:08d}")
    sex = Patient.Sex.FEMALE
    given_name = factory.Faker("first_name")
    family_name = factory.Faker("last_name")
    birth_date = dt.date(1960, 3, 14)
    phone = factory.Sequence(lambda n: f"+1 555 01{n:05d}")
    national_id = factory.Sequence(lambda n: f"ID-{n:07d}")

    @factory.post_generation
    def care_teams(self, create: bool, extracted: list[CareTeam] | None, **kwargs: object) -> None:
        if create and extracted:
            self.care_teams.set(extracted)


class AllergyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Allergy

    patient = factory.SubFactory(PatientFactory)
    substance = factory.Sequence(lambda n: f"substance {n}")  # stored lower case, as allergy_add
    reaction = "rash"
    severity = Allergy.Severity.MODERATE


class BreakGlassGrantFactory(factory.django.DjangoModelFactory):
    """An emergency access opened through ``break_glass_open`` (expiry and audit record)."""

    class Meta:
        model = BreakGlassGrant

    patient = factory.SubFactory(PatientFactory)
    grantee = factory.SubFactory(DoctorFactory)
    category = BreakGlassGrant.Category.UNCONSCIOUS_PATIENT
    reason = "Unconscious in the emergency department; the care team is unreachable."

    @classmethod
    def _create(cls, model_class: type, *args: Any, **kwargs: Any) -> BreakGlassGrant:
        from patients.break_glass import break_glass_open

        return break_glass_open(
            viewer=kwargs["grantee"],
            mrn=kwargs["patient"].mrn,
            category=kwargs["category"],
            reason=kwargs["reason"],
        )


class VisitFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Visit

    patient = factory.SubFactory(PatientFactory)
    attending = factory.SubFactory(DoctorFactory)
    start = factory.LazyFunction(timezone.now)
    age_years = 60
    chief_complaint = "cough and fever for three days"


class ObservationDefinitionFactory(factory.django.DjangoModelFactory):
    """A catalogue entry; the catalogue's own codes are loaded by migrations and reused."""

    class Meta:
        model = ObservationDefinition
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"LOCAL-{n}")
    display = factory.LazyAttribute(lambda d: f"Local observation {d.code}")
    category = ObservationDefinition.Category.FINDING
    unit = "1"
    decimals = 1


class ObservationFactory(factory.django.DjangoModelFactory):
    """A heart rate of 80 /min unless told otherwise, flagged as the services flag it."""

    class Meta:
        model = Observation

    visit = factory.SubFactory(VisitFactory)
    definition = factory.LazyFunction(lambda: ObservationDefinition.objects.get(code="8867-4"))
    value = 80.0
    entered_value = factory.SelfAttribute("value")
    entered_unit = factory.SelfAttribute("definition.unit")
    recorded_at = factory.LazyFunction(timezone.now)

    @factory.lazy_attribute
    def interpretation(self) -> str:
        from visits.services import interpret

        return interpret(self.definition, self.value)


class DiagnosisFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Diagnosis

    visit = factory.SubFactory(VisitFactory)
    code = "J18.9"
    rank = Diagnosis.Rank.PRIMARY
    status = Diagnosis.Status.PROVISIONAL
    source = Diagnosis.Source.DOCTOR

    @factory.lazy_attribute
    def display(self) -> str:
        from visits.icd10 import icd10_lookup

        return icd10_lookup(self.code)[1]


class VisitEventFactory(factory.django.DjangoModelFactory):
    """A visit event recorded through ``visit_event_record`` (subscribers run, as in the app)."""

    class Meta:
        model = VisitEvent

    visit = factory.SubFactory(VisitFactory)
    kind = VisitEvent.Kind.CHANGED

    @classmethod
    def _create(cls, model_class: type, *args: Any, **kwargs: Any) -> VisitEvent:
        from visits.events import visit_event_record

        return visit_event_record(**kwargs)


class AuditEventFactory(factory.django.DjangoModelFactory):
    """An audit record appended through ``audit_record``, so the hash chain stays intact."""

    class Meta:
        model = AuditEvent

    actor = None
    action = AuditEvent.Action.VIEW
    patient_id = None
    object_type = "patients.patient"
    object_id = ""

    @classmethod
    def _create(cls, model_class: type, *args: Any, **kwargs: Any) -> AuditEvent:
        from medai_site.audit import audit_record

        return audit_record(**kwargs)


class ApiTokenFactory(factory.django.DjangoModelFactory):
    """A token issued through ``api_token_create``; its one-time secret is on ``.secret``."""

    class Meta:
        model = ApiToken

    user = factory.SubFactory(DoctorFactory)
    name = factory.Sequence(lambda n: f"client system {n}")
    scopes = (ApiToken.Scope.PATIENTS_READ,)
    days = 30

    @classmethod
    def _create(cls, model_class: type, *args: Any, **kwargs: Any) -> ApiToken:
        from medai_site.api_auth import api_token_create

        # A person's token is issued by that person (issue 12: admins only issue tokens for
        # integration-client accounts).
        kwargs.setdefault("actor", kwargs["user"])
        token, secret = api_token_create(**kwargs)
        token.secret = secret  # the only copy: only its hash is stored
        return token


class IdempotencyRecordFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = IdempotencyRecord

    client = factory.Sequence(lambda n: f"user:{n}")
    key = factory.Sequence(lambda n: f"key-{n}")
    request_hash = "0" * 64
    status_code = 201
    object_id = 1
