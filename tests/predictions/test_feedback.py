"""Feedback: accept makes a provisional diagnosis through the service (agreement, not
confirmation: tests/predictions/test_label_provenance.py), override needs a reason, and live
top-1/top-3 agreement per model version."""

from __future__ import annotations

import json
from uuid import uuid4

import pytest
from django.db import connection

from medai_site.errors import Conflict, InvalidInput
from medai_site.models import AuditEvent
from predictions.models import Feedback
from predictions.selectors import SYSTEM, live_agreement
from predictions.services.advice import advice_compute
from predictions.services.feedback import feedback_record
from tests.factories import PatientFactory
from visits.models import Diagnosis
from visits.services import ObservationInput, diagnosis_add, diagnosis_confirm, visit_create

pytestmark = pytest.mark.django_db

VITALS = [("8310-5", 38.2, "Cel"), ("8867-4", 96, "/min"), ("2708-6", 95, "%")]


def advised_visit(team, doctor, complaint="productive cough and fever"):
    visit = visit_create(
        patient=PatientFactory(care_teams=[team]),
        attending=doctor,
        actor=doctor,
        chief_complaint=complaint,
        observations=[ObservationInput(*o) for o in VITALS],
    )
    advice = advice_compute(request_id=visit.advice_requests.get().pk)
    return visit, advice


def codes(advice) -> list[str]:
    return [d["code"] for d in json.loads(advice.payload)["diagnoses"]]


def first_coded(advice) -> str:
    return next(c for c in codes(advice) if c != "other")


def test_accepting_a_suggestion_records_a_provisional_diagnosis_through_the_service(
    trained, team_a, doctor_a
):
    visit, advice = advised_visit(team_a, doctor_a)
    code = first_coded(advice)
    feedback = feedback_record(advice=advice, suggestion=code, decision="accept", actor=doctor_a)

    diagnosis = feedback.diagnosis
    assert (diagnosis.visit, diagnosis.code, diagnosis.rank) == (visit, code, "primary")
    assert (diagnosis.status, diagnosis.source) == (
        Diagnosis.Status.PROVISIONAL,
        Diagnosis.Source.ADVICE,
    )
    assert diagnosis.recorded_by == doctor_a
    assert diagnosis.display  # looked up in ICD-10 by the service
    assert feedback.rank == codes(advice).index(code) + 1
    assert AuditEvent.objects.filter(
        object_type="visits.diagnosis", object_id=str(diagnosis.pk), actor=doctor_a
    ).exists()

    second = next(c for c in codes(advice) if c not in (code, "other"))
    extra = feedback_record(advice=advice, suggestion=second, decision="accept", actor=doctor_a)
    assert extra.diagnosis.rank == Diagnosis.Rank.SECONDARY  # the primary already stands


def test_accepting_an_existing_provisional_diagnosis_keeps_it_instead_of_duplicating(
    trained, team_a, doctor_a
):
    visit, advice = advised_visit(team_a, doctor_a)
    code = first_coded(advice)
    provisional = diagnosis_add(visit=visit, code=code, actor=doctor_a)
    feedback = feedback_record(advice=advice, suggestion=code, decision="accept", actor=doctor_a)
    assert feedback.diagnosis.pk == provisional.pk
    assert feedback.diagnosis.status == Diagnosis.Status.PROVISIONAL  # agreement confirms nothing
    assert visit.diagnoses.count() == 1


def test_accepting_the_other_group_or_a_risk_records_agreement_without_a_diagnosis(
    trained, team_a, doctor_a
):
    visit, advice = advised_visit(team_a, doctor_a)
    risk = feedback_record(advice=advice, suggestion="cad-risk", decision="accept", actor=doctor_a)
    assert risk.diagnosis is None
    assert risk.rank is None
    assert "other" in codes(advice)  # the largest class is always among the top five
    other = feedback_record(advice=advice, suggestion="other", decision="accept", actor=doctor_a)
    assert other.diagnosis is None
    assert not visit.diagnoses.exists()


def test_overriding_requires_a_reason_and_stores_the_comment_encrypted(trained, team_a, doctor_a):
    _, advice = advised_visit(team_a, doctor_a)
    code = first_coded(advice)
    with pytest.raises(InvalidInput, match="Say why"):
        feedback_record(advice=advice, suggestion=code, decision="override", actor=doctor_a)
    with pytest.raises(InvalidInput, match="Unknown override reason"):
        feedback_record(
            advice=advice, suggestion=code, decision="override", reason="bored", actor=doctor_a
        )
    feedback = feedback_record(
        advice=advice,
        suggestion=code,
        decision="override",
        reason=Feedback.Reason.ALREADY_EXCLUDED,
        comment="chest film clear yesterday",
        actor=doctor_a,
    )
    assert (feedback.decision, feedback.reason, feedback.diagnosis) == (
        "override",
        "already_excluded",
        None,
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT comment FROM predictions_feedback WHERE id = %s", [feedback.pk])
        assert "chest film" not in cursor.fetchone()[0]
    assert Feedback.objects.get(pk=feedback.pk).comment == "chest film clear yesterday"

    with pytest.raises(Conflict, match="already recorded"):
        feedback_record(advice=advice, suggestion=code, decision="accept", actor=doctor_a)
    with pytest.raises(InvalidInput, match="not part of the advice"):
        feedback_record(advice=advice, suggestion="Z99", decision="accept", actor=doctor_a)


def test_live_agreement_counts_top1_and_top3_hits_per_model_version(trained, team_a, doctor_a):
    top1_visit, top1_advice = advised_visit(team_a, doctor_a)
    diagnosis_add(
        visit=top1_visit,
        code=first_coded(top1_advice),
        status=Diagnosis.Status.CONFIRMED,
        actor=doctor_a,
    )
    # Accepted and then confirmed: it began as advice, so it would agree with itself: not counted.
    _self_visit, self_advice = advised_visit(team_a, doctor_a)
    accepted = feedback_record(
        advice=self_advice, suggestion=first_coded(self_advice), decision="accept", actor=doctor_a
    )
    diagnosis_confirm(diagnosis=accepted.diagnosis, actor=doctor_a)
    # Confirmed as a lower-ranked coded suggestion within the top three.
    top3_visit, top3_advice = advised_visit(team_a, doctor_a, complaint="fever and cough")
    ranked = codes(top3_advice)
    in_top3 = next(c for c in reversed(ranked[:3]) if c not in ("other", ranked[0]))
    diagnosis_add(visit=top3_visit, code=in_top3, status=Diagnosis.Status.CONFIRMED, actor=doctor_a)
    # Confirmed as a fracture, which the model cannot have learned: it counts as its "other".
    miss_visit, miss_advice = advised_visit(team_a, doctor_a, complaint="fell, painful hip")
    diagnosis_add(visit=miss_visit, code="S72.0", status=Diagnosis.Status.CONFIRMED, actor=doctor_a)
    advised_visit(team_a, doctor_a)  # no confirmed diagnosis yet: not counted

    truths = [
        (codes(top1_advice), first_coded(top1_advice)),
        (ranked, in_top3),
        (codes(miss_advice), "other"),
    ]
    entry = live_agreement(viewer=SYSTEM)[trained.differential.pk]
    assert entry["n"] == 3
    assert entry["top1"] == sum(r[0] == t for r, t in truths)
    assert entry["top3"] == sum(t in r[:3] for r, t in truths)
    assert entry["top3"] >= 2  # the first two visits are top-3 hits by construction
    assert entry["top1_rate"] == entry["top1"] / 3
    assert entry["top3_rate"] == entry["top3"] / 3
    assert trained.risk.pk not in live_agreement(
        viewer=SYSTEM
    )  # measured for the differential model


def test_cds_hooks_card_feedback_counts_in_live_monitoring_beside_the_advice_panels(
    trained, team_a, doctor_a
):
    """An EHR's accepted/overridden CDS Hooks cards count for the version that scored them."""
    from datetime import timedelta

    from django.utils import timezone

    from predictions.models import CdsCard, ModelUse
    from predictions.monitoring import performance_compute
    from predictions.services.feedback import cds_card_feedback_record
    from predictions.services.serving import CardIssued, cds_cards_record, model_use_record

    since = timezone.now() - timedelta(days=1)
    _visit, advice = advised_visit(team_a, doctor_a)
    feedback_record(
        advice=advice, suggestion=first_coded(advice), decision="accept", actor=doctor_a
    )

    def use(version):
        return model_use_record(
            version=version,
            actor=None,
            api_token_id=None,
            client="https://ehr.example",
            interface=ModelUse.Interface.CDS_HOOKS,
            input_hash="0" * 64,
            rows=1,
        ).pk

    differential_use, risk_use = use(trained.differential), use(trained.risk)
    issued = {
        "accepted": CardIssued(
            uuid=uuid4(), suggestion="J18", rank=1, model_use_id=differential_use
        ),
        "overridden": CardIssued(
            uuid=uuid4(), suggestion="I21", rank=1, model_use_id=differential_use
        ),
        "risk": CardIssued(uuid=uuid4(), suggestion="cad-risk", model_use_id=risk_use),
        "rule": CardIssued(uuid=uuid4(), suggestion="rule"),  # no model behind it
    }
    cds_cards_record(
        service="medai-patient-view", client="https://ehr.example", cards=list(issued.values())
    )
    for name, decision in [
        ("accepted", "accept"),
        ("overridden", "override"),
        ("risk", "accept"),
        ("rule", "override"),
    ]:
        cds_card_feedback_record(
            card=CdsCard.objects.get(uuid=issued[name].uuid),
            decision=decision,
            actor=doctor_a,
            reason="clinical_judgement" if decision == "override" else "",
        )

    until = timezone.now() + timedelta(seconds=1)
    differential = performance_compute(
        trained.differential.task, trained.differential, since, until
    )
    assert differential["feedback"]["n"] == 3  # the panel's accept and the two cards
    assert differential["feedback"]["accepted"] == 2
    assert differential["feedback"]["overridden"] == 1
    assert differential["feedback"]["override_reasons"] == {"clinical_judgement": 1}
    assert differential["feedback"]["sources"] == {"advice": 1, "cds_hooks": 2}
    risk = performance_compute(trained.risk.task, trained.risk, since, until)
    assert (risk["feedback"]["n"], risk["feedback"]["sources"]["cds_hooks"]) == (1, 1)
    # Cards issued before the window are not this window's feedback.
    later = performance_compute(trained.differential.task, trained.differential, until, until)
    assert later["feedback"]["sources"]["cds_hooks"] == 0

    live = live_agreement(viewer=SYSTEM)[trained.differential.pk]
    assert live["feedback"] == {"n": 3, "accepted": 2, "overridden": 1, "cds_hooks": 2}
    assert live["n"] == 0  # nothing confirmed yet
    assert live["top1_rate"] is None
    assert trained.risk.pk not in live_agreement(viewer=SYSTEM)
