"""Every factory builds a row its model's own rules accept (and keeps the invariants services keep)."""

from __future__ import annotations

import pytest

from medai_site.api_auth import token_hash
from medai_site.audit import audit_verify
from medai_site.models import AuditEvent
from tests import factories
from visits.models import Observation

pytestmark = pytest.mark.django_db

MODEL_FACTORIES = [
    factories.UserFactory,
    factories.DoctorFactory,
    factories.AdminFactory,
    factories.CareTeamFactory,
    factories.PatientFactory,
    factories.AllergyFactory,
    factories.BreakGlassGrantFactory,
    factories.VisitFactory,
    factories.ObservationDefinitionFactory,
    factories.ObservationFactory,
    factories.DiagnosisFactory,
    factories.VisitEventFactory,
    factories.AuditEventFactory,
    factories.ApiTokenFactory,
    factories.IdempotencyRecordFactory,
]


@pytest.mark.parametrize("factory", MODEL_FACTORIES, ids=lambda f: f.__name__)
def test_factory_rows_pass_their_models_validation(factory):
    obj = factory()
    assert obj.pk is not None
    obj.full_clean(exclude=["password"])  # a user's hashed password is no form input


def test_every_model_of_patients_visits_and_medai_site_has_a_factory():
    from django.apps import apps

    covered = {f._meta.model for f in MODEL_FACTORIES}
    for label in ("patients", "visits", "medai_site"):
        for model in apps.get_app_config(label).get_models():
            assert model in covered, model


def test_service_made_factories_keep_the_services_invariants():
    factories.AuditEventFactory(action=AuditEvent.Action.VIEW)
    factories.AuditEventFactory(action=AuditEvent.Action.CREATE)
    token = factories.ApiTokenFactory()
    grant = factories.BreakGlassGrantFactory()
    assert audit_verify()[1] == []  # the chain is intact
    assert token.token_hash == token_hash(token.secret)
    assert grant.is_active
    assert AuditEvent.objects.filter(
        object_type="patients.breakglassgrant", object_id=str(grant.pk)
    ).exists()
    observation = factories.ObservationFactory(value=150)
    assert observation.interpretation == Observation.Interpretation.CRITICAL_HIGH
    assert factories.ObservationDefinitionFactory(code="8867-4").plausible_high == 250
