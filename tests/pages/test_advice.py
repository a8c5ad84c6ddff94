"""The advice panel: pending (polls), failed, done; accept/override in one click each."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from predictions.models import AdviceRequest
from predictions.selectors import advice_state
from visits.selectors import problem_list

pytestmark = pytest.mark.django_db
HX = {"HX-Request": "true"}


def test_pending_panel_listens_for_the_push_and_can_poll(client_a, visit_a, settings):
    """Pending: an event stream (sse-connect) triggers the panel's reload; medai.js polls
    (medai:poll) only while no stream is open."""
    from predictions.services.advice_workers import advice_worker_beat

    # Not late however slowly a loaded machine built the fixtures (lateness has its own tests).
    settings.MEDAI_ADVICE_LATE_SECONDS = 3600

    advice_worker_beat(name="advice@h#live", pid=1)  # a worker is computing it: not delayed
    html = client_a.get(reverse("visit_detail", args=[visit_a.pk])).content.decode()
    assert "Computing advice" in html
    assert 'hx-trigger="sse:advice, medai:poll"' in html
    assert f'sse-connect="{reverse("advice_stream", args=[visit_a.pk])}"' in html
    assert 'sse-close="advice"' in html
    assert reverse("advice_panel", args=[visit_a.pk]) in html
    assert '"X-MedAI-Poll": "1"' in html
    assert "vendor/htmx-ext-sse/sse.min.js" in html


def test_failed_advice_is_shown_clearly(client_a, visit_a):
    AdviceRequest.objects.filter(visit=visit_a).update(
        status="failed", error="Model v3 failed its integrity check."
    )
    html = client_a.get(reverse("advice_panel", args=[visit_a.pk]), headers=HX).content.decode()
    assert "Advice could not be computed" in html
    assert "integrity check" in html
    assert "sse-connect" not in html
    assert "medai:poll" not in html


def test_done_panel_shows_everything_and_stops_polling(
    client_a, visit_a, make_advice, model_version
):
    make_advice(visit_a, abstained=True, version=model_version)
    html = client_a.get(reverse("advice_panel", args=[visit_a.pk]), headers=HX).content.decode()
    assert "sse-connect" not in html
    assert "medai:poll" not in html
    assert "outside the model&#x27;s experience" in html or "outside the model's experience" in html
    assert "J18" in html
    assert "62%" in html
    assert 'width="62.0%"' in html
    assert "Oxygen saturation" in html
    assert "complaint mentions" in html
    critical, high, warning = (
        html.index(t) for t in ("critically low", "indicates hypoxaemia", "avoid amoxicillin")
    )
    assert critical < high < warning  # alerts by severity
    assert ">2025<" in html  # similar case, by year only (other patients: no full dates)
    assert reverse("version_report", args=[model_version.pk]) in html
    assert html.count('value="accept"') == 2  # not for "other"


def test_accept_adds_a_provisional_diagnosis_in_one_click_not_the_problem_list(
    client_a, visit_a, make_advice, doctor_a
):
    advice = make_advice(visit_a)
    response = client_a.post(
        reverse("advice_feedback", args=[visit_a.pk]),
        {
            "advice": advice.pk,
            "suggestion": "J18",
            "decision": "accept",
            "reason": "clinical_judgement",
        },
        headers=HX,
    )
    html = response.content.decode()
    assert "Accepted: added as a provisional diagnosis" in html
    assert 'hx-swap-oob="true"' in html
    diagnoses = html[html.index('id="visit-diagnoses"') :]
    assert "J18" in diagnoses
    assert "Provisional" in diagnoses
    assert "Suggested by" in diagnoses
    assert "accepted by" in diagnoses
    assert reverse("diagnosis_confirm", args=[visit_a.pk, visit_a.diagnoses.get().pk]) in diagnoses
    # Agreement is not confirmation: the problem list holds confirmed diagnoses only.
    assert not problem_list(viewer=doctor_a, patient_id=visit_a.patient_id).exists()
    feedback = advice_state(viewer=doctor_a, visit_id=visit_a.pk).feedback["J18"]
    assert feedback.decision == "accept"
    assert feedback.reason == ""

    confirm = client_a.post(reverse("diagnosis_confirm", args=[visit_a.pk, feedback.diagnosis_id]))
    assert confirm.status_code == 302
    assert [d.code for d in problem_list(viewer=doctor_a, patient_id=visit_a.patient_id)] == ["J18"]
    page = client_a.get(reverse("visit_detail", args=[visit_a.pk])).content.decode()
    assert "confirmed by" in page


def test_override_records_the_reason(client_a, visit_a, make_advice, doctor_a):
    advice = make_advice(visit_a)
    client_a.post(
        reverse("advice_feedback", args=[visit_a.pk]),
        {
            "advice": advice.pk,
            "suggestion": "J06",
            "decision": "override",
            "reason": "already_excluded",
        },
        headers=HX,
    )
    feedback = advice_state(viewer=doctor_a, visit_id=visit_a.pk).feedback["J06"]
    assert (feedback.decision, feedback.reason) == ("override", "already_excluded")
    assert not problem_list(viewer=doctor_a, patient_id=visit_a.patient_id).exists()


def test_second_decision_on_a_suggestion_is_refused_politely(client_a, visit_a, make_advice):
    advice = make_advice(visit_a)
    data = {"advice": advice.pk, "suggestion": "J18", "decision": "accept"}
    client_a.post(reverse("advice_feedback", args=[visit_a.pk]), data, headers=HX)
    html = client_a.post(
        reverse("advice_feedback", args=[visit_a.pk]), data, headers=HX
    ).content.decode()
    assert "already recorded" in html


def test_feedback_without_htmx_redirects_back(client_a, visit_a, make_advice):
    advice = make_advice(visit_a)
    response = client_a.post(
        reverse("advice_feedback", args=[visit_a.pk]),
        {"advice": advice.pk, "suggestion": "J18", "decision": "accept"},
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("visit_detail", args=[visit_a.pk])


def test_other_team_cannot_give_feedback(client, doctor_b, visit_a, make_advice):
    advice = make_advice(visit_a)
    client.force_login(doctor_b)
    response = client.post(
        reverse("advice_feedback", args=[visit_a.pk]),
        {"advice": advice.pk, "suggestion": "J18", "decision": "accept"},
        headers=HX,
    )
    assert response.status_code == 404


def test_the_why_reads_in_plain_words_with_units_and_lists_what_was_not_measured(
    client_a, visit_a, make_advice
):
    advice = make_advice(visit_a)
    data = json.loads(advice.payload)
    data["explanation"]["contributions"] = [
        {
            "feature": "obs_2345-7",
            "label": "Glucose",
            "value": "9.8 mmol/L",
            "contribution": 0.3,
            "kind": "observation",
        },
        {"feature": "age", "label": "Age", "value": "65", "contribution": 0.2, "kind": "age"},
        {
            "feature": "visit_type",
            "label": "Visit type",
            "value": "emergency",
            "contribution": 0.1,
            "kind": "visit_type",
        },
    ]
    data["not_measured"] = [
        {"code": "10839-9", "label": "Troponin I", "source": "rule"},
        {"code": "ECG", "label": "12-lead ECG", "source": "rule"},
    ]
    advice.payload = json.dumps(data)
    advice.save(update_fields=["payload"])
    html = client_a.get(reverse("advice_panel", args=[visit_a.pk]), headers=HX).content.decode()
    why = html[html.index("contributions") :]
    assert "Glucose 9.8 mmol/L" in why
    assert "Age 65" in why
    assert "Visit type: Emergency" in why
    assert "age (65" not in html
    assert "obs_" not in html
    assert "Not measured — would help:</strong>\n      Troponin I, 12-lead ECG" in html


def test_a_visit_without_complaint_or_vital_sign_says_what_is_missing_instead_of_advice(
    client_a, patient_a, doctor_a
):
    from visits.services import visit_create

    visit = visit_create(patient=patient_a, attending=doctor_a, actor=doctor_a)
    html = client_a.get(reverse("advice_panel", args=[visit.pk]), headers=HX).content.decode()
    assert 'id="advice-insufficient"' in html
    assert "chief complaint, a vital sign" in html
    assert "Computing advice" not in html  # nothing to wait for
    assert "sse-connect" not in html


def test_the_why_and_what_is_missing_read_in_chinese(client_a, visit_a, make_advice, patient_a):
    from visits.services import visit_create

    client_a.post(reverse("set_language"), {"language": "zh-hans", "next": "/"})
    advice = make_advice(visit_a)
    data = json.loads(advice.payload)
    data["explanation"]["contributions"] = [
        {
            "feature": "obs_2345-7",
            "label": "Glucose",
            "value": "9.8 mmol/L",
            "contribution": 0.3,
            "kind": "observation",
        },
        {"feature": "age", "label": "Age", "value": "65", "contribution": 0.2, "kind": "age"},
    ]
    data["not_measured"] = [{"code": "ECG", "label": "12-lead ECG", "source": "rule"}]
    advice.payload = json.dumps(data)
    advice.save(update_fields=["payload"])
    html = client_a.get(reverse("advice_panel", args=[visit_a.pk]), headers=HX).content.decode()
    assert "血糖 9.8 mmol/L" in html
    assert "年龄 65" in html
    assert "未检测——有助于判断：" in html
    assert "12导联心电图" in html
    empty = visit_create(patient=patient_a, attending=visit_a.attending, actor=None)
    html = client_a.get(reverse("advice_panel", args=[empty.pk]), headers=HX).content.decode()
    assert "主诉, 一项生命体征" in html


def test_advice_state_trusts_a_handed_visit_only_for_the_viewer_it_was_scoped_for(
    visit_a, doctor_a, doctor_b
):
    """A visit fetched for doctor A and handed to advice_state for doctor B (outside A's care
    team) is fetched again through B's scope: not found, and the denial is audited."""
    from medai_site.errors import NotFound
    from medai_site.models import AuditEvent
    from visits.selectors import visit_get

    fetched_for_a = visit_get(viewer=doctor_a, visit_id=visit_a.pk, audit=False)
    assert advice_state(viewer=doctor_a, visit_id=visit_a.pk, visit=fetched_for_a).status
    with pytest.raises(NotFound):
        advice_state(viewer=doctor_b, visit_id=visit_a.pk, visit=fetched_for_a)
    assert AuditEvent.objects.filter(
        actor=doctor_b, action=AuditEvent.Action.DENIED, object_id=str(visit_a.pk)
    ).exists()
    # Nor is a visit object that did not come from visit_get at all.
    with pytest.raises(NotFound):
        advice_state(viewer=doctor_b, visit_id=visit_a.pk, visit=type(visit_a).objects.get())
