"""Shared fixtures. Tests run against the real PostgreSQL (MEDAI_PROFILE=test, see README)."""

from __future__ import annotations

import pytest


@pytest.fixture
def team_a(db):
    from tests.factories import CareTeamFactory, DoctorFactory

    doctor = DoctorFactory(username="doctor_a")
    return CareTeamFactory(name="Cardiology", members=[doctor])


@pytest.fixture
def team_b(db):
    from tests.factories import CareTeamFactory, DoctorFactory

    doctor = DoctorFactory(username="doctor_b")
    return CareTeamFactory(name="Respiratory", members=[doctor])


@pytest.fixture
def doctor_a(team_a):
    return team_a.members.get()


@pytest.fixture
def doctor_b(team_b):
    return team_b.members.get()


@pytest.fixture
def admin_user(db):
    from tests.factories import AdminFactory

    return AdminFactory(username="hospital_admin")
