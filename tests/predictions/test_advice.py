"""Advice: the outbox row in the visit's transaction, what advice holds, computed once, superseded."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from django.db import connection, transaction

from medai_site.errors import InvalidInput
from patients.services import allergy_add
from predictions.models import Advice, AdviceRequest, ModelVersion, PredictionTask
from predictions.payload import age_band
from predictions.rules import TREATMENT_CONFLICTS
from predictions.services.advice import MAX_COMPUTE_ATTEMPTS, advice_compute
from predictions.services.registry import task_set_enabled
from tests.factories import PatientFactory
from visits.models import Visit
from visits.services import ObservationInput, visit_close, visit_create, visit_update

pytestmark = pytest.mark.django_db

CIPHERTEXT = "gAAAAA"
# A febrile, breathless, confused visit: every vital-sign rule has something to say.
ALARMING = [
    ("8310-5", 39.4, "Cel"),
    ("8867-4", 124, "/min"),
    ("9279-1", 26, "/min"),
    ("8480-6", 192, "mm[Hg]"),
    ("8462-4", 126, "mm[Hg]"),
    ("2708-6", 85, "%"),
]
ORDINARY = [
    ("8310-5", 37.9, "Cel"),
    ("8867-4", 92, "/min"),
    ("9279-1", 18, "/min"),
    ("8480-6", 128, "mm[Hg]"),
    ("8462-4", 80, "mm[Hg]"),
    ("2708-6", 97, "%"),
]


@pytest.fixture
def patient(team_a):
    return PatientFactory(care_teams=[team_a], given_name="Zebedee", family_name="Quuxley")


def save_visit(patient, doctor, observations=ORDINARY, **text) -> Visit:
    text.setdefault("chief_complaint", "cough, sore throat and runny nose for three days")
    return visit_create(
        patient=patient,
        attending=doctor,
        actor=doctor,
        observations=[ObservationInput(*o) for o in observations],
        **text,
    )


def compute_latest(visit: Visit) -> tuple[AdviceRequest, Advice | None]:
    request = visit.advice_requests.order_by("-id").first()
    advice = advice_compute(request_id=request.pk)
    request.refresh_from_db()
    return request, advice


def payload(advice: Advice) -> dict:
    return json.loads(advice.payload)


# --- the outbox ---------------------------------------------------------------------------------


def test_saving_a_visit_writes_one_pending_request_and_dispatches_only_after_commit(
    patient, doctor_a, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        visit = save_visit(patient, doctor_a)
    request = visit.advice_requests.get()
    assert request.status == AdviceRequest.Status.PENDING
    # The audit lane's own marker (medai_site.audit._lane_lock) is registered too; it sends nothing.
    dispatches = [c for c in callbacks if c.__qualname__ != "_lane_lock.<locals>.marker"]
    assert len(dispatches) == 1  # the broker is told after commit, never inside the transaction


def test_a_rolled_back_visit_save_leaves_no_advice_request(patient, doctor_a):
    class Abandoned(Exception):
        """The rest of the request failed after the visit was saved."""

    def save_then_fail():
        with transaction.atomic():
            save_visit(patient, doctor_a)
            assert AdviceRequest.objects.count() == 1
            raise Abandoned

    with pytest.raises(Abandoned):
        save_then_fail()
    assert not Visit.objects.exists()
    assert not AdviceRequest.objects.exists()

    with pytest.raises(InvalidInput):  # a rejected value rejects the whole save
        save_visit(patient, doctor_a, observations=[("2708-6", 130, "%")])
    assert not AdviceRequest.objects.exists()


def test_editing_and_closing_a_visit_each_request_advice(patient, doctor_a):
    visit = save_visit(patient, doctor_a)
    visit_update(visit=visit, actor=doctor_a, plan="chest x-ray")
    visit_close(visit=visit, actor=doctor_a)
    assert visit.advice_requests.count() == 3


# --- what advice holds ------------------------------------------------------------------------------


def test_advice_ranks_diagnoses_with_probabilities_codes_and_texts_and_scores_the_risk(
    trained, patient, doctor_a
):
    visit = save_visit(patient, doctor_a)
    request, advice = compute_latest(visit)

    assert (request.status, request.advice, request.error) == ("done", advice, "")
    assert request.compute_attempts == 1
    data = payload(advice)
    diagnoses = data["diagnoses"]
    assert 1 <= len(diagnoses) <= 5
    assert [d["rank"] for d in diagnoses] == list(range(1, len(diagnoses) + 1))
    probabilities = [d["probability"] for d in diagnoses]
    assert probabilities == sorted(probabilities, reverse=True)
    assert all(0 <= p <= 1 for p in probabilities)
    assert sum(probabilities) <= 1 + 1e-3
    for d in diagnoses:
        assert d["code"] == "other" or re.fullmatch(r"[A-Z]\d\d", d["code"])
        assert d["display"]
        assert d["display"] != d["code"]
    learned = set(trained.differential.label_map.values())
    assert {d["code"] for d in diagnoses} <= {c if c == "other" else c.upper() for c in learned}

    (risk,) = data["risks"]
    assert (risk["task"], risk["version"]) == ("cad-risk", trained.risk.number)
    assert 0 <= risk["probability"] <= 1
    assert risk["label"] == "coronary artery disease (I20–I25)"

    contributions = data["explanation"]["contributions"]
    assert contributions
    assert all({"feature", "label", "contribution"} <= set(c) for c in contributions)
    assert risk["contributions"]

    assert (
        advice.models_key
        == f"cad-risk:{trained.risk.number},differential:{trained.differential.number}"
    )
    assert set(advice.model_versions.all()) == {trained.differential, trained.risk}
    assert {m["version_id"] for m in data["models"]} == {trained.differential.pk, trained.risk.pk}
    assert re.fullmatch(r"[0-9a-f]{64}", advice.input_hash)
    assert advice.compute_ms > 0
    assert not advice.abstained


def test_advice_is_encrypted_at_rest(trained, patient, doctor_a):
    visit = save_visit(patient, doctor_a, chief_complaint="wheeze after the Quuxley barbecue")
    _, advice = compute_latest(visit)
    with connection.cursor() as cursor:
        cursor.execute("SELECT payload FROM predictions_advice WHERE id = %s", [advice.pk])
        (raw,) = cursor.fetchone()
    assert raw.startswith(CIPHERTEXT)
    assert "Quuxley" not in raw
    assert "diagnoses" not in raw


def test_advice_shows_up_to_three_similar_past_visits_of_other_patients(trained, patient, doctor_a):
    """Each case is another patient's visit with confirmed diagnoses, shown without identifying
    it: age band, sex, year, diagnoses, outcome (issue 12, finding 6)."""
    visit = save_visit(patient, doctor_a)
    _, advice = compute_latest(visit)
    similar = payload(advice)["similar_cases"]
    assert 1 <= len(similar) <= 3
    others = Visit.objects.exclude(patient=patient).prefetch_related("diagnoses")
    candidates = [
        (
            age_band(v.age_years),
            v.start.year,
            v.visit_type,
            {f"{d.code} {d.display}" for d in v.diagnoses.all() if d.status == "confirmed"},
        )
        for v in others
    ]
    for case in similar:
        assert set(case) == {"age_band", "sex", "year", "diagnoses", "outcome"}
        assert case["diagnoses"]
        assert any(
            (band, year, outcome) == (case["age_band"], case["year"], case["outcome"])
            and set(case["diagnoses"]) <= confirmed
            for band, year, outcome, confirmed in candidates
        )


def test_advice_abstains_with_a_reason_on_a_visit_unlike_the_training_data(
    trained, patient, doctor_a
):
    visit = save_visit(
        patient, doctor_a, observations=[("2345-7", 1900, "mg/dL")], chief_complaint="unwell"
    )
    _, advice = compute_latest(visit)
    data = payload(advice)
    assert advice.abstained
    assert data["abstained"]
    reasons = " ".join(data["abstain_reasons"])
    assert "Differential diagnosis:" in reasons
    assert "glucose value 1900 mg/dL is far outside what the model learned" in reasons
    assert "obs_" not in reasons


def test_rules_raise_critical_vital_hypertensive_crisis_hypoxaemia_and_qsofa_alerts(
    trained, patient, doctor_a
):
    visit = save_visit(
        patient, doctor_a, observations=ALARMING, chief_complaint="fever, new confusion"
    )
    _, advice = compute_latest(visit)
    alerts = payload(advice)["alerts"]
    rules = [a["rule"] for a in alerts]
    assert {"critical_value", "hypertensive_crisis", "hypoxaemia", "sepsis_qsofa"} <= set(rules)
    hypoxaemia = next(a for a in alerts if a["rule"] == "hypoxaemia")
    assert hypoxaemia["severity"] == "critical"
    assert "85 %" in hypoxaemia["message"]
    critical = [a["message"] for a in alerts if a["rule"] == "critical_value"]
    assert any("Diastolic blood pressure 126" in m and "critically high" in m for m in critical)
    assert any("Oxygen saturation 85" in m and "critically low" in m for m in critical)
    qsofa = next(a for a in alerts if a["rule"] == "sepsis_qsofa")
    assert "respiratory rate 26/min" in qsofa["message"]
    assert "altered mentation" in qsofa["message"]
    severities = [a["severity"] for a in alerts]
    assert severities == sorted(severities, key=["critical", "high", "warning"].index)
    assert advice.alert_count == len(alerts)
    assert advice.critical_alert_count == severities.count("critical")


def test_a_suggestion_that_conflicts_with_a_recorded_allergy_raises_an_alert(
    trained, patient, doctor_a
):
    # Allergic to a substance of every first-line treatment the rules know, so whichever coded
    # suggestion reaches the top three, its conflict must be flagged.
    for substance in ("penicillin", "aspirin", "sulfonamide", "cephalosporin", "metronidazole"):
        allergy_add(patient=patient, substance=substance, actor=doctor_a)
    visit = save_visit(
        patient,
        doctor_a,
        chief_complaint="crushing chest pain radiating to the left arm, sweating",
        observations=[*ORDINARY, ("10839-9", 2.5, "ng/mL")],
    )
    _, advice = compute_latest(visit)
    data = payload(advice)
    top3 = [d["code"] for d in data["diagnoses"][:3] if d["code"] != "other"]
    expected = {c for c in top3 if c in TREATMENT_CONFLICTS}
    flagged = {
        a["message"].split(":")[0].removeprefix("Suggested ")
        for a in data["alerts"]
        if a["rule"] == "allergy_conflict"
    }
    assert expected, f"no conflicting suggestion in the top three {top3}; pick another visit"
    assert flagged == expected


def test_the_doctors_own_plan_is_checked_against_the_allergies_in_the_advice(patient, doctor_a):
    """Issue 17: "aspirin 300 mg chewed" for a severe aspirin allergy raised nothing unless the
    model happened to suggest I21; the plan itself is checked now, in English and Chinese."""
    allergy_add(patient=patient, substance="aspirin", severity="severe", actor=doctor_a)
    visit = save_visit(patient, doctor_a, plan="aspirin 300 mg chewed, ECG")
    _, advice = compute_latest(visit)
    (alert,) = [a for a in payload(advice)["alerts"] if a["rule"] == "allergy_drug_conflict"]
    assert alert["severity"] == "critical"
    assert "aspirin" in alert["message"]
    assert payload(advice)["alerts"][0] == alert  # critical alerts come first

    visit_update(visit=visit, actor=doctor_a, plan="布洛芬 0.3g 口服")  # ibuprofen: an NSAID
    _, changed = compute_latest(visit)
    assert changed.pk != advice.pk  # a new plan is a new input
    (alert,) = [a for a in payload(changed)["alerts"] if a["rule"] == "allergy_drug_conflict"]
    assert (alert["severity"], "布洛芬" in alert["message"]) == ("critical", True)

    visit_update(visit=visit, actor=doctor_a, plan="avoid NSAIDs; paracetamol 1 g")
    _, safe = compute_latest(visit)
    assert "allergy_drug_conflict" not in {a["rule"] for a in payload(safe)["alerts"]}


def test_the_why_names_only_recorded_findings_as_entered_and_lists_what_would_help(
    trained, patient, doctor_a
):
    """Issue 17: the why named labs never measured, glucose as 176.56 after 9.8 mmol/L was
    entered, "age (65.0)"; now recorded findings only, as entered, and the rest apart."""
    visit = save_visit(
        patient,
        doctor_a,
        observations=[
            ("8867-4", 118, "/min"),
            ("8480-6", 165, "mm[Hg]"),
            ("8462-4", 100, "mm[Hg]"),
            ("2708-6", 91, "%"),
            ("2345-7", 9.8, "mmol/L"),
        ],
        chief_complaint="crushing chest pain radiating to the left arm, sweating",
    )
    _, advice = compute_latest(visit)
    data = payload(advice)
    recorded = {"8867-4", "8480-6", "8462-4", "2708-6", "2345-7"}
    shown = [
        *data["explanation"]["contributions"],
        *(c for r in data["risks"] for c in r["contributions"]),
    ]
    assert shown
    for c in shown:
        assert c["kind"] in ("observation", "age", "sex", "visit_type", "text"), c
        assert "obs_" not in c["label"]
        if c["kind"] == "observation":
            assert c["feature"][4:] in recorded, c  # never a test that was not done
    glucose = [c for c in shown if c["feature"] == "obs_2345-7"]
    assert all(c["value"] == "9.8 mmol/L" for c in glucose)
    ages = [c for c in shown if c["kind"] == "age"]
    assert all(c["value"] == str(visit.age_years) for c in ages)
    helps = [t["code"] for t in data["not_measured"]]
    assert {"10839-9", "ECG"} <= set(helps)  # the chest-pain rule asks for troponin and an ECG
    assert not recorded & set(helps)
    assert all("obs_" not in r for r in data["abstain_reasons"])


def test_an_empty_visit_abstains_in_plain_words_without_feature_codes(trained, patient, doctor_a):
    visit = save_visit(patient, doctor_a, observations=[], chief_complaint="tired")
    _, advice = compute_latest(visit)
    data = payload(advice)
    assert data["abstained"]
    assert data["abstain_reasons"]
    for reason in data["abstain_reasons"]:
        assert "obs_" not in reason
        assert not re.search(r"\d{3,5}-\d", reason)  # no LOINC codes either


# --- computed once, superseded on edit, failures ------------------------------------------------------


def test_the_same_inputs_and_models_are_computed_once(trained, patient, doctor_a):
    visit = save_visit(patient, doctor_a)
    _, first = compute_latest(visit)
    visit_update(visit=visit, actor=doctor_a)  # saved again without changes: a second request
    request, second = compute_latest(visit)
    assert second.pk == first.pk
    assert request.advice_id == first.pk
    assert Advice.objects.filter(visit=visit).count() == 1
    assert visit.advice_requests.filter(status="done").count() == 2


def test_an_edited_visit_gets_fresh_advice_and_the_old_one_is_superseded(
    trained, patient, doctor_a
):
    visit = save_visit(patient, doctor_a)
    _, old = compute_latest(visit)
    visit_update(
        visit=visit,
        actor=doctor_a,
        chief_complaint="crushing chest pain",
        observations=[ObservationInput("8480-6", 184, "mm[Hg]")],
    )
    _, new = compute_latest(visit)
    assert new.pk != old.pk
    assert new.input_hash != old.input_hash
    old.refresh_from_db()
    assert old.superseded
    assert not new.superseded
    assert list(Advice.objects.filter(visit=visit, superseded=False)) == [new]
    assert "hypertensive_crisis" in {a["rule"] for a in payload(new)["alerts"]}


def test_the_kill_switch_stops_advice_from_a_task_without_deleting_its_versions(
    trained, patient, admin_user, doctor_a
):
    differential = PredictionTask.objects.get(slug="differential")
    task_set_enabled(task=differential, enabled=False, reason="under review", actor=admin_user)
    visit = save_visit(patient, doctor_a, observations=ALARMING)
    _, advice = compute_latest(visit)
    assert advice.models_key == f"cad-risk:{trained.risk.number}"
    assert payload(advice)["diagnoses"] == []
    assert payload(advice)["similar_cases"] == []
    assert list(advice.model_versions.all()) == [trained.risk]

    task_set_enabled(
        task=PredictionTask.objects.get(slug="cad-risk"),
        enabled=False,
        reason="under review",
        actor=admin_user,
    )
    visit_update(visit=visit, actor=doctor_a)
    _, rules_only = compute_latest(visit)
    assert rules_only.models_key == "rules-only"
    assert payload(rules_only)["risks"] == []
    assert payload(rules_only)["alerts"]  # the clinical rules still run
    assert (
        ModelVersion.objects.filter(pk__in=[trained.differential.pk, trained.risk.pk]).count() == 2
    )


def test_a_model_failing_its_integrity_check_fails_the_request_with_a_reason(
    trained, patient, doctor_a, admin_user
):
    artifact = Path(trained.differential.artifact_path)
    artifact.write_bytes(artifact.read_bytes() + b"tampered")
    visit = save_visit(patient, doctor_a)
    request, advice = compute_latest(visit)
    assert advice is None
    assert request.status == AdviceRequest.Status.FAILED
    assert request.error.startswith(
        f"Model differential v{trained.differential.number} cannot be used: model artifact "
        "model.joblib has sha256"
    )
    assert "roll back or switch the model off" in request.error
    assert request.finished_at is not None
    assert not Advice.objects.filter(visit=visit).exists()

    task_set_enabled(
        task=PredictionTask.objects.get(slug="differential"),
        enabled=False,
        reason="artifact corrupt",
        actor=admin_user,
    )
    visit_update(visit=visit, actor=doctor_a)
    request, advice = compute_latest(visit)
    assert request.status == AdviceRequest.Status.DONE
    assert advice.models_key == f"cad-risk:{trained.risk.number}"


def test_a_request_that_never_finishes_is_failed_after_the_attempt_cap(patient, doctor_a):
    visit = save_visit(patient, doctor_a)
    request = visit.advice_requests.get()
    AdviceRequest.objects.filter(pk=request.pk).update(
        status=AdviceRequest.Status.DISPATCHED, compute_attempts=MAX_COMPUTE_ATTEMPTS
    )
    assert advice_compute(request_id=request.pk) is None
    request.refresh_from_db()
    assert request.status == AdviceRequest.Status.FAILED
    assert f"started {MAX_COMPUTE_ATTEMPTS} times without finishing" in request.error


def test_a_finished_request_is_not_computed_again(patient, doctor_a):
    visit = save_visit(patient, doctor_a)
    request, advice = compute_latest(visit)  # no trained models: rules only
    assert advice.models_key == "rules-only"
    assert advice_compute(request_id=request.pk) == advice
    request.refresh_from_db()
    assert request.compute_attempts == 1


def test_the_words_that_drove_the_top_suggestion_are_highlighted_where_the_doctor_wrote_them(
    trained, patient, doctor_a, client
):
    """Issue 13: text explanations reach the advice panel, in place and in the language written."""
    from django.urls import reverse

    from predictions.payload import advice_payload

    complaint = "productive cough and fever, no chest pain"
    visit = save_visit(patient, doctor_a, chief_complaint=complaint)
    _, advice = compute_latest(visit)
    explanation = advice_payload(advice).explanation
    words = explanation.complaint_words
    assert words, "the complaint's words were not credited"
    assert explanation.text_method
    for w in words:  # offsets point at the doctor's own characters
        assert complaint[w.start : w.end] == w.text
    negated = [w for w in words if w.text == "chest" or w.text == "pain"]
    assert all(w.negated for w in negated)

    client.force_login(doctor_a)
    html = client.get(
        reverse("advice_panel", args=[visit.pk]), headers={"HX-Request": "true"}
    ).content.decode()
    assert 'id="advice-text-evidence"' in html
    top = max(words, key=lambda w: abs(w.contribution))
    assert f">{top.text}</mark>" in html
    # The unmarked rest of the complaint is still there, escaped, around the marks.
    assert html.count('<mark class="term term-') >= len({(w.start, w.end) for w in words})


def test_chinese_words_are_highlighted_in_place():
    """Offsets are character offsets: Chinese words are marked where they stand."""
    from medai_site.templatetags.medai import highlight_words
    from predictions.payload import TextWord

    complaint = "胸痛三小时，伴出汗，无发热"
    words = [
        TextWord(column="chief_complaint", text="胸痛", start=0, end=2, contribution=0.8),
        TextWord(
            column="chief_complaint", text="发热", start=11, end=13, negated=True, contribution=-0.2
        ),
    ]
    html = highlight_words(complaint, words)
    assert html.startswith('<mark class="term term-up"')
    assert ">胸痛</mark>三小时" in html
    assert "term-down term-negated" in html
    assert ">发热</mark>" in html


def test_highlighting_skips_words_whose_text_was_edited_since_and_escapes_everything():
    from medai_site.templatetags.medai import highlight_words
    from predictions.payload import TextWord

    words = [
        TextWord(column="chief_complaint", text="cough", start=0, end=5, contribution=0.4),
        TextWord(column="chief_complaint", text="fever", start=10, end=15, contribution=-0.1),
    ]
    html = highlight_words("cough <b>and</b> fever", words)
    assert '<mark class="term term-up"' in html
    assert ">cough</mark>" in html
    assert "fever</mark>" not in html  # offsets no longer match the text: not marked
    assert "&lt;b&gt;and&lt;/b&gt;" in html


def test_the_medication_list_is_checked_against_the_allergies_in_the_advice(patient, doctor_a):
    """Issue 17 (5): "any medication entered" is checked, not only the plan text; the alert says
    it came from the medication list, and a changed list is a new input."""
    allergy_add(patient=patient, substance="penicillin", severity="severe", actor=doctor_a)
    visit = save_visit(patient, doctor_a, plan="Review in 2 days.", medications="ramipril 5 mg od")
    _, advice = compute_latest(visit)
    assert "allergy_drug_conflict" not in {a["rule"] for a in payload(advice)["alerts"]}

    visit_update(visit=visit, actor=doctor_a, medications="ramipril 5 mg od\n头孢呋辛 0.25g bid")
    _, changed = compute_latest(visit)
    assert changed.pk != advice.pk
    (alert,) = [a for a in payload(changed)["alerts"] if a["rule"] == "allergy_drug_conflict"]
    assert alert["severity"] == "warning"  # a cephalosporin with a penicillin allergy: caution
    assert alert["message"].startswith("Medication list names “头孢呋辛”")
