"""factory_boy factories for the domain models. Writes in tests go through factories or services."""

from __future__ import annotations

import datetime as dt

import factory
from django.contrib.auth.models import Group, User
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from medai_site import roles
from patients.models import CareTeam, Patient
from visits.models import Visit


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
            TOTPDevice.objects.create(user=self, name="authenticator", confirmed=True)


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


class VisitFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Visit

    patient = factory.SubFactory(PatientFactory)
    attending = factory.SubFactory(DoctorFactory)
    start = factory.LazyFunction(timezone.now)
    age_years = 60
    chief_complaint = "cough and fever for three days"
