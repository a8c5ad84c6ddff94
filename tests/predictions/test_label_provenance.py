"""Accept is agreement, not confirmation: an accepted suggestion is a provisional diagnosis
marked with the model version and the doctor, and never a training label unless a doctor
confirms it explicitly; even then, labels that began as advice are excluded from training and
counted in the label provenance the model report and monitoring show."""

from __future__ import annotations

import pytest

from medai_site.errors import InvalidInput
from predictions.models import PredictionTask
from predictions.services.advice import advice_compute
from predictions.services.feedback import feedback_record
from predictions.training_set import training_snapshot
from predictions.visit_records import label_provenance, labelled_visits, risk_labels
from tests.factories import PatientFactory
from visits.models import Diagnosis
from visits.services import (
    ObservationInput,
    diagnosis_add,
    diagnosis_confirm,
    visit_close,
    visit_create,
)

pytestmark = pytest.mark.django_db


def advised(team, doctor, complaint="productive cough and fever"):
    visit = visit_create(
        patient=PatientFactory(care_teams=[team]),
        attending=doctor,
        actor=doctor,
        chief_complaint=complaint,
        observations=[ObservationInput("8310-5", 38.2, "Cel"), ObservationInput("8867-4", 96)],
    )
    return visit, advice_compute(request_id=visit.advice_requests.get().pk)


def top_coded(advice) -> str:
    from predictions.payload import advice_payload

    return next(c for c in advice_payload(advice).ranked_codes() if c != "other")


def test_accepting_adds_a_provisional_diagnosis_marked_with_model_version_and_doctor(
    trained, team_a, doctor_a
):
    _visit, advice = advised(team_a, doctor_a)
    code = top_coded(advice)
    feedback = feedback_record(advice=advice, suggestion=code, decision="accept", actor=doctor_a)

    diagnosis = feedback.diagnosis
    assert diagnosis.status == Diagnosis.Status.PROVISIONAL  # agreement, not confirmation
    assert diagnosis.source == Diagnosis.Source.ADVICE
    assert (
        diagnosis.suggested_by == f"{trained.differential.task.name} v{trained.differential.number}"
    )
    assert diagnosis.recorded_by == doctor_a  # accepted by
    assert diagnosis.confirmed_by is None
    assert diagnosis.confirmed_at is None


def test_an_accepted_but_unconfirmed_suggestion_never_becomes_a_training_label(
    trained, team_a, doctor_a
):
    visit, advice = advised(team_a, doctor_a)
    code = top_coded(advice)
    feedback_record(advice=advice, suggestion=code, decision="accept", actor=doctor_a)

    assert visit.pk not in set(labelled_visits().values_list("pk", flat=True))
    for slug in ("differential", "cad-risk"):
        frame, snapshot = training_snapshot(PredictionTask.objects.get(slug=slug))
        assert visit.pk not in snapshot["visit_ids"]
        assert visit.pk not in frame.index
    # Closing the visit without naming it final does not confirm it either.
    visit_close(visit=visit, actor=doctor_a)
    assert visit.diagnoses.get(code=code).status == Diagnosis.Status.PROVISIONAL
    assert visit.pk not in set(labelled_visits().values_list("pk", flat=True))


def test_accepting_a_code_the_doctor_already_recorded_confirms_nothing(trained, team_a, doctor_a):
    visit, advice = advised(team_a, doctor_a)
    code = top_coded(advice)
    own = diagnosis_add(visit=visit, code=code, actor=doctor_a)
    feedback = feedback_record(advice=advice, suggestion=code, decision="accept", actor=doctor_a)
    assert feedback.diagnosis.pk == own.pk
    own.refresh_from_db()
    assert (own.status, own.source) == (Diagnosis.Status.PROVISIONAL, Diagnosis.Source.DOCTOR)


def make(doctor, team, code, *, source, confirm=True):
    visit = visit_create(
        patient=PatientFactory(care_teams=[team]),
        attending=doctor,
        actor=doctor,
        request_advice=False,
        chief_complaint="chest pain",
    )
    diagnosis = diagnosis_add(
        visit=visit, code=code, source=source, suggested_by="Differential v1", actor=doctor
    )
    if confirm:
        diagnosis_confirm(diagnosis=diagnosis, actor=doctor)
    return visit


def test_confirmed_labels_that_began_as_advice_are_excluded_and_their_share_recorded(
    doctor_a, team_a
):
    doctor = [make(doctor_a, team_a, "J18.9", source="doctor") for _ in range(3)]
    from_advice = make(doctor_a, team_a, "I21.9", source="advice")
    unconfirmed = make(doctor_a, team_a, "I21.9", source="advice", confirm=False)

    labelled = set(labelled_visits().values_list("pk", flat=True))
    assert {v.pk for v in doctor} <= labelled
    assert from_advice.pk not in labelled
    assert unconfirmed.pk not in labelled
    # Not even a risk label: the advice-originated I21 never makes a positive.
    task = PredictionTask.objects.get(slug="cad-risk")
    assert "1" not in set(
        risk_labels(labelled, positive_prefixes=task.config["positive_prefixes"]).values
    )

    provenance = label_provenance(used=len(labelled))
    assert provenance["advice"] == 1
    assert provenance["advice_visit_ids"] == [from_advice.pk]
    assert provenance["advice_share"] == round(1 / (len(labelled) + 1), 4)
    assert provenance["advice_policy"] == "excluded"

    _, snapshot = training_snapshot(PredictionTask.objects.get(slug="differential"))
    assert snapshot["label_provenance"]["advice_visit_ids"] == [from_advice.pk]
    assert from_advice.pk not in snapshot["visit_ids"]


def test_advice_can_never_be_recorded_as_confirmed_in_one_step(doctor_a, team_a):
    visit = make(doctor_a, team_a, "J18.9", source="doctor", confirm=False)
    with pytest.raises(InvalidInput, match="starts provisional"):
        diagnosis_add(
            visit=visit,
            code="I10",
            rank=Diagnosis.Rank.SECONDARY,
            status=Diagnosis.Status.CONFIRMED,
            source=Diagnosis.Source.ADVICE,
            actor=doctor_a,
        )
    assert visit.diagnoses.count() == 1


def test_confirming_records_who_and_when_and_closing_confirms_the_final_diagnoses(doctor_a, team_a):
    visit = make(doctor_a, team_a, "J18.9", source="advice", confirm=False)
    extra = diagnosis_add(visit=visit, code="I10", rank=Diagnosis.Rank.SECONDARY, actor=doctor_a)
    with pytest.raises(InvalidInput, match="one of this visit"):
        visit_close(visit=visit, actor=doctor_a, final_diagnoses=[extra.pk + 1000])
    visit_close(visit=visit, actor=doctor_a, final_diagnoses=[extra.pk])
    extra.refresh_from_db()
    assert extra.status == Diagnosis.Status.CONFIRMED
    assert extra.confirmed_by == doctor_a
    assert extra.confirmed_at is not None
    accepted = visit.diagnoses.get(code="J18.9")
    assert accepted.status == Diagnosis.Status.PROVISIONAL  # not ticked as final

    # Results may establish a diagnosis after the visit closed: confirming is still possible.
    confirmed = diagnosis_confirm(diagnosis=accepted, actor=doctor_a)
    assert confirmed.status == Diagnosis.Status.CONFIRMED
    assert confirmed.confirmed_by == doctor_a
