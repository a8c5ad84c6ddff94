"""Visits' event outbox: events commit and roll back with the visit; subscribers never break it."""

from __future__ import annotations

import pytest
from django.db import transaction

from tests.factories import PatientFactory
from visits import events
from visits.models import Visit, VisitEvent
from visits.services import ObservationInput, visit_close, visit_create, visit_update

pytestmark = pytest.mark.django_db


@pytest.fixture
def patient(team_a):
    return PatientFactory(care_teams=[team_a])


def record(patient, doctor, **kwargs) -> Visit:
    return visit_create(
        patient=patient,
        attending=doctor,
        actor=doctor,
        chief_complaint="cough",
        observations=[ObservationInput("8867-4", 88, "/min")],
        **kwargs,
    )


def test_recording_changing_and_closing_a_visit_each_write_one_event(patient, doctor_a):
    visit = record(patient, doctor_a)
    visit_update(visit=visit, actor=doctor_a, plan="rest")
    visit_close(visit=visit, actor=doctor_a)
    assert list(visit.events.values_list("kind", flat=True)) == ["recorded", "changed", "closed"]


def test_the_event_is_written_in_the_visits_transaction_and_rolled_back_with_it(patient, doctor_a):
    class Abandoned(Exception):
        """The rest of the request failed after the visit was saved."""

    def save_then_fail():
        with transaction.atomic():
            record(patient, doctor_a)
            assert VisitEvent.objects.count() == 1  # inside the same transaction
            raise Abandoned

    with pytest.raises(Abandoned):
        save_then_fail()
    assert not Visit.objects.exists()
    assert not VisitEvent.objects.exists()


def test_no_event_when_the_caller_asks_for_no_advice(patient, doctor_a):
    visit = record(patient, doctor_a, request_advice=False)
    assert not visit.events.exists()


def test_a_failing_subscriber_is_rolled_back_alone_and_the_visit_is_saved(patient, doctor_a):
    seen = []

    def broken(event):
        VisitEvent.objects.filter(pk=event.pk).update(kind="tampered")  # undone with its savepoint
        raise RuntimeError("subscriber bug")

    events.subscribe(broken)
    events.subscribe(seen.append)
    try:
        visit = record(patient, doctor_a)
    finally:
        events.unsubscribe(broken)
        events.unsubscribe(seen.append)
    event = visit.events.get()
    assert event.kind == VisitEvent.Kind.RECORDED
    assert seen == [event]  # the next subscriber still ran


def test_visits_imports_no_predictions_module():
    """visits is below predictions: none of its modules names predictions (events, panels)."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "visits"
    offenders = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] == "predictions"]
    assert offenders == []
