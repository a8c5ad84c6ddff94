"""The advice worker's one-statement reads (predictions/advice_inputs.py, the similar-case
diagnoses in predictions/similar_cases.py) give exactly what the ORM gives: the same objects,
the same input hash, the same advice."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from patients.services import allergy_add
from predictions import why
from predictions.advice_inputs import visit_for_advice, visit_for_advice_orm
from predictions.medication_safety import plan_drugs, visit_allergies, visit_drug_conflicts
from predictions.minimum_data import missing_for_advice
from predictions.services import advice as advice_service
from predictions.similar_cases import _confirmed_diagnoses, _confirmed_diagnoses_orm
from predictions.visit_records import input_hash, visit_record
from tests.factories import PatientFactory
from visits.models import Diagnosis, Observation, ObservationDefinition, Visit
from visits.services import ObservationInput, visit_create

pytestmark = pytest.mark.django_db

VITALS = [
    ObservationInput("8310-5", 38.0, "Cel"),  # a whole number: stored 38.0, read back a float
    ObservationInput("8867-4", 104, "/min"),
    ObservationInput("2708-6", 93, "%"),
    ObservationInput("6690-2", 14.2, "10*3/uL"),
    ObservationInput("1988-5", 85.35, "mg/L"),
]


def _visit(team, doctor, *, allergies=(), observations=VITALS, **text) -> Visit:
    patient = PatientFactory(care_teams=[team])
    for substance, severity in allergies:
        allergy_add(patient=patient, substance=substance, severity=severity, actor=None)
    return visit_create(
        patient=patient, attending=doctor, actor=doctor, observations=observations, **text
    )


def _fields(instance) -> dict:
    """Every loaded (not deferred) field of an instance, by attname."""
    deferred = instance.get_deferred_fields()
    return {
        f.attname: getattr(instance, f.attname)
        for f in instance._meta.concrete_fields
        if f.attname not in deferred
    }


def _same_visit(fast: Visit, orm: Visit) -> None:
    assert _fields(fast) == _fields(orm)
    assert fast.get_deferred_fields() == orm.get_deferred_fields()
    assert _fields(fast.patient) == _fields(orm.patient)
    fast_obs, orm_obs = list(fast.observations.all()), list(orm.observations.all())
    assert [_fields(o) for o in fast_obs] == [_fields(o) for o in orm_obs]
    assert [_fields(o.definition) for o in fast_obs] == [_fields(o.definition) for o in orm_obs]
    assert all(type(o.value) is float and type(o.entered_value) is float for o in fast_obs)
    fast_allergies = list(fast.patient.allergies.all())
    assert [_fields(a) for a in fast_allergies] == [_fields(a) for a in orm.patient.allergies.all()]
    # What advice derives from the visit, compared whole.
    assert visit_record(fast) == visit_record(orm)
    assert why.entered_values(fast) == why.entered_values(orm)
    assert visit_allergies(fast) == visit_allergies(orm)
    assert plan_drugs(fast) == plan_drugs(orm)
    assert visit_drug_conflicts(fast) == visit_drug_conflicts(orm)
    assert missing_for_advice(fast) == missing_for_advice(orm)


def test_the_one_statement_visit_is_the_orm_visit(team_a, doctor_a):
    visit = _visit(
        team_a,
        doctor_a,
        allergies=[("penicillin", "severe"), ("aspirin", "mild"), ("latex", "moderate")],
        chief_complaint="productive cough, fever and breathlessness for 3 days",
        history_present_illness="worse at night; no chest pain",
        physical_exam="crackles at the right base",
        plan="amoxicillin 500 mg three times a day",
        medications="ibuprofen 400 mg",
        allergy_history="reacts to codeine",
    )
    with CaptureQueriesContext(connection) as queries:
        fast = visit_for_advice(visit.pk)
        _same_visit(fast, visit_for_advice_orm(visit.pk))
    assert len(queries) == 1 + 3  # one for the fast read (nothing lazy after it), three ORM
    assert visit.observations.count() == len(VITALS)
    assert [a.substance for a in fast.patient.allergies.all()] == ["aspirin", "latex", "penicillin"]
    assert fast.plan == "amoxicillin 500 mg three times a day"  # decrypted
    assert "reaction" in fast.patient.allergies.all()[0].get_deferred_fields()  # PHI left unread


def test_a_visit_without_observations_or_allergies_reads_the_same(team_a, doctor_a):
    visit = _visit(team_a, doctor_a, observations=[], chief_complaint="cough")
    fast = visit_for_advice(visit.pk)
    _same_visit(fast, visit_for_advice_orm(visit.pk))
    assert list(fast.observations.all()) == []


def test_an_unknown_visit_is_an_error_as_with_the_orm():
    with pytest.raises(Visit.DoesNotExist):
        visit_for_advice(10**12)
    with pytest.raises(Visit.DoesNotExist):
        visit_for_advice_orm(10**12)


def test_every_catalogue_column_and_the_recorded_time_come_back_typed(team_a, doctor_a):
    definition = ObservationDefinition.objects.get(code="8310-5")
    definition.alternative_units = ["[degF]"]
    definition.critical_low = 33.5
    definition.save()
    visit = _visit(team_a, doctor_a, observations=VITALS[:1], chief_complaint="cough")
    recorded = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)
    Observation.objects.filter(visit=visit).update(recorded_at=recorded)
    (obs,) = visit_for_advice(visit.pk).observations.all()
    assert obs.recorded_at == recorded
    assert obs.definition.alternative_units == ["[degF]"]
    assert obs.definition.critical_low == 33.5


def test_advice_payload_and_input_hash_are_the_same_from_either_read(trained, team_a, doctor_a):
    visit = _visit(
        team_a,
        doctor_a,
        allergies=[("penicillin", "severe")],
        chief_complaint="productive cough, fever and breathlessness for 3 days",
        plan="amoxicillin 500 mg three times a day",
    )
    tasks = advice_service._active_tasks()
    made = []
    for read in (visit_for_advice, visit_for_advice_orm):
        loaded = read(visit.pk)
        record = visit_record(loaded)
        allergies = sorted(a.substance for a in loaded.patient.allergies.all())
        payload = advice_service._payload(loaded, record, tasks, allergies)
        made.append(
            (
                input_hash(record, extra={"allergies": visit_allergies(loaded)}),
                {**payload.as_dict(), "computed_at": None},
            )
        )
    assert made[0] == made[1]
    assert made[0][1]["diagnoses"]
    assert made[0][1]["alerts"]


def test_similar_case_diagnoses_are_those_the_orm_reads(trained):
    visit_ids = list(
        Diagnosis.objects.filter(status=Diagnosis.Status.CONFIRMED)
        .values_list("visit_id", flat=True)
        .distinct()[:40]
    )
    # A visit with two confirmed diagnoses and a provisional one: order and filter both count.
    two = visit_ids[0]
    Diagnosis.objects.create(
        visit_id=two,
        code="A00",
        display="Cholera",
        rank=Diagnosis.Rank.SECONDARY,
        status=Diagnosis.Status.CONFIRMED,
    )
    Diagnosis.objects.create(
        visit_id=two,
        code="B00",
        display="Herpes",
        rank=Diagnosis.Rank.SECONDARY,
        status=Diagnosis.Status.PROVISIONAL,
    )
    fast = _confirmed_diagnoses([*visit_ids, 10**12])
    assert fast == _confirmed_diagnoses_orm([*visit_ids, 10**12])
    assert len(fast) == len(visit_ids)
    assert len(fast[two].diagnoses) >= 2
    assert not any("B00" in d for d in fast[two].diagnoses)
    assert _confirmed_diagnoses([]) == {}


def test_the_orm_paths_other_databases_take_give_the_same_advice(
    trained, team_a, doctor_a, monkeypatch
):
    """SQLite (make run) reads the visit, the similar cases and stores through the ORM: the same
    advice, versions and completed request as PostgreSQL's one-statement paths."""
    from predictions.models import Advice, AdviceRequest

    patient = PatientFactory(care_teams=[team_a])
    allergy_add(patient=patient, substance="penicillin", severity="severe", actor=None)
    text = {
        "chief_complaint": "productive cough, fever and breathlessness for 3 days",
        "plan": "amoxicillin 500 mg three times a day",
    }
    visits = [
        visit_create(
            patient=patient, attending=doctor_a, actor=doctor_a, observations=VITALS, **text
        )
        for _ in range(2)
    ]
    stored = []
    for visit, vendor in zip(visits, ("postgresql", "sqlite"), strict=True):
        monkeypatch.setattr(connection, "vendor", vendor)
        request = visit.advice_requests.get()
        with CaptureQueriesContext(connection) as queries:
            advice = advice_service.advice_compute(request_id=request.pk, claimant="w#a:1")
        monkeypatch.undo()
        one_statement = [
            q["sql"] for q in queries if "json_agg" in q["sql"] or "WITH a AS" in q["sql"]
        ]
        assert len(one_statement) == (2 if vendor == "postgresql" else 0)  # the path taken
        assert advice is not None
        request.refresh_from_db()
        assert (request.status, request.advice_id) == (AdviceRequest.Status.DONE, advice.pk)
        stored.append(Advice.objects.get(pk=advice.pk))
    fast, orm = stored
    assert (fast.input_hash, fast.models_key) == (orm.input_hash, orm.models_key)
    assert (
        set(fast.model_versions.all())
        == set(orm.model_versions.all())
        == {
            trained.differential,
            trained.risk,
        }
    )
    a, b = ({**json.loads(x.payload), "computed_at": None, "visit_id": None} for x in (fast, orm))
    assert a == b
    assert a["diagnoses"]
    assert a["alerts"]
