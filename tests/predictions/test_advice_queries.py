"""The advice worker's database work per visit: a fixed number of statements whatever the visit
holds, the claim in one statement, and the model versions' rows read once per process
(throughput: tests/bench/bench_advice_throughput.py)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from medai_site.models import AuditEvent
from medai_site.request_context import current_request_id
from patients.services import allergy_add
from predictions.models import AdviceRequest
from predictions.services.advice import advice_compute
from tests.factories import PatientFactory
from visits.services import ObservationInput, visit_create

pytestmark = pytest.mark.django_db

# Per advice (inside the test's transaction, so the worker's BEGIN/COMMIT are savepoints here):
#  1 claim (UPDATE ... RETURNING)
#  1 the visit with its patient's sex, its observations with their definitions and the
#    allergies (one statement: predictions/advice_inputs.py)
#  1 the enabled tasks and their active version ids
#  1 the advice already stored for these inputs, and any current one
#  1 similar past cases (their confirmed diagnoses, visit and sex joined)
#  1 INSERT advice, INSERT its versions, UPDATE request done: one statement (no savepoint of
#    its own: a clash rolls the whole transaction back and the worker looks again)
#  2 the audit record (its lane's previous hash, INSERT; no savepoint inside the caller's
#    transaction): the audit lane's lock is already held, taken by the visit's audit record
#    earlier in the test's transaction (a worker's own transaction takes it in the same round
#    trip as the hash, medai_site/audit.py)
#  2 the outer transaction's savepoint and release
ADVICE_STATEMENTS = 10
VITALS = [
    ObservationInput("8310-5", 38.4, "Cel"),
    ObservationInput("8867-4", 104, "/min"),
    ObservationInput("9279-1", 22, "/min"),
    ObservationInput("8480-6", 118, "mm[Hg]"),
    ObservationInput("8462-4", 74, "mm[Hg]"),
    ObservationInput("2708-6", 93, "%"),
    ObservationInput("6690-2", 14.2, "10*3/uL"),
    ObservationInput("1988-5", 85, "mg/L"),
]


def _advice_statements(team, doctor, *, observations, allergies=0, **text) -> list[str]:
    patient = PatientFactory(care_teams=[team])
    for i in range(allergies):
        allergy_add(patient=patient, substance=f"substance {i}", actor=None)
    visit = visit_create(
        patient=patient, attending=doctor, actor=doctor, observations=observations, **text
    )
    request = visit.advice_requests.get()
    with CaptureQueriesContext(connection) as queries:
        advice = advice_compute(request_id=request.pk, claimant="advice@test#a:1")
    assert advice is not None
    assert AdviceRequest.objects.get(pk=request.pk).status == AdviceRequest.Status.DONE
    return [q["sql"] for q in queries.captured_queries]


def test_advice_takes_a_fixed_number_of_statements_whatever_the_visit_holds(
    trained, team_a, doctor_a
):
    _advice_statements(team_a, doctor_a, observations=VITALS[:2], chief_complaint="cough")
    small = _advice_statements(team_a, doctor_a, observations=VITALS[:1], chief_complaint="cough")
    big = _advice_statements(
        team_a,
        doctor_a,
        observations=VITALS,
        allergies=5,
        chief_complaint="productive cough, fever and breathlessness for 3 days",
        history_present_illness="worse at night; no chest pain",
        plan="amoxicillin 500 mg three times a day",
    )
    assert len(small) == len(big) == ADVICE_STATEMENTS, "\n".join(big)


def test_the_claim_is_one_statement_and_version_rows_are_read_once_per_process(
    trained, team_a, doctor_a
):
    first = _advice_statements(team_a, doctor_a, observations=VITALS, chief_complaint="cough")
    second = _advice_statements(team_a, doctor_a, observations=VITALS, chief_complaint="fever")
    claims = [
        q
        for q in second
        if 'UPDATE "predictions_advicerequest"' in q and 'INSERT INTO "predictions_advice"' not in q
    ]
    assert len(claims) == 1  # the claim; marking the request done goes with the advice's INSERT
    # It returns the claimed row, or the row as it is when it is not claimable (no second read).
    assert "RETURNING" in claims[0]
    (store,) = [q for q in second if 'INSERT INTO "predictions_advice"' in q]
    assert 'INSERT INTO "predictions_advice_model_versions"' in store
    assert 'UPDATE "predictions_advicerequest"' in store
    assert not any("FOR UPDATE" in q for q in second)
    # The versions' own rows (metrics, report, plots) come with the first advice only.
    assert any('FROM "predictions_modelversion"' in q for q in first)
    assert not any('FROM "predictions_modelversion"' in q for q in second)


def test_the_advice_audit_record_carries_the_id_of_the_request_that_saved_the_visit(
    trained, team_a, doctor_a
):
    from predictions.tasks import advice_compute as advice_task

    token = current_request_id.set("req-7f3a")
    try:
        visit = visit_create(
            patient=PatientFactory(care_teams=[team_a]),
            attending=doctor_a,
            actor=doctor_a,
            chief_complaint="cough",
            observations=VITALS,
        )
    finally:
        current_request_id.reset(token)
    request = visit.advice_requests.get()
    assert request.request_id == "req-7f3a"
    advice_task(request.pk)  # the task body, in-process
    audit = AuditEvent.objects.get(action=AuditEvent.Action.ADVICE, patient_id=visit.patient_id)
    assert audit.request_id == "req-7f3a"
    assert audit.interface == AuditEvent.Interface.WORKER
