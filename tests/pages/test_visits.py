"""Recording and editing visits: units, ranges, field-level messages, ICD-10 search."""

from __future__ import annotations

import pytest
from django.urls import reverse

from visits.selectors import visit_list

pytestmark = pytest.mark.django_db


def _post(client, patient, **fields):
    data = {
        "visit_type": "outpatient",
        "chief_complaint": "",
        "unit_8310_5": "Cel",
        "unit_29463_7": "kg",
        "unit_2345_7": "mg/dL",
        "unit_2093_3": "mg/dL",
    }
    data.update(fields)
    return client.post(reverse("visit_new", args=[patient.pk]), data)


def test_visit_form_shows_units_and_normal_ranges(client_a, patient_a):
    html = client_a.get(reverse("visit_new", args=[patient_a.pk])).content.decode()
    assert "Heart rate" in html
    assert "60–100 /min" in html
    assert "Troponin I" in html
    assert "ng/mL" in html
    assert '<option value="[degF]">°F</option>' in html
    assert 'for="id_obs_8867_4"' in html  # every input has a label


def test_record_visit_with_vitals_requests_advice(client_a, patient_a, doctor_a):
    from predictions.models import AdviceRequest

    response = _post(
        client_a,
        patient_a,
        chief_complaint="chest pain on exertion",
        obs_8867_4="88",
        obs_8480_6="150",
        obs_8310_5="98.6",
        unit_8310_5="[degF]",
        diagnosis_code="I20.9 Angina pectoris, unspecified",
    )
    assert response.status_code == 302
    visit = visit_list(viewer=doctor_a, patient_id=patient_a.pk).get()
    assert visit.chief_complaint == "chest pain on exertion"
    values = {o.definition.code: o.value for o in visit.observations.all()}
    assert values["8867-4"] == 88
    assert round(values["8310-5"], 1) == 37.0
    assert [d.code for d in visit.diagnoses.all()] == ["I20.9"]
    assert AdviceRequest.objects.filter(visit=visit).exists()


def test_impossible_vital_is_reported_next_to_the_field_and_nothing_is_lost(
    client_a, patient_a, doctor_a
):
    response = _post(
        client_a,
        patient_a,
        chief_complaint="dizzy since this morning",
        obs_8867_4="400",
        obs_8480_6="132",
        obs_8310_5="37.2",
    )
    assert response.status_code == 400
    form = response.context["form"]
    assert list(form.errors) == ["obs_8867_4"]
    message = form.errors["obs_8867_4"][0]
    assert "400" in message
    assert "20–250" in message
    html = response.content.decode()
    row = html[html.index('for="id_obs_8867_4"') : html.index('for="id_obs_8480_6"')]
    assert "outside the possible range" in row  # the message sits right under the field
    assert "dizzy since this morning" in html
    assert 'value="132"' in html
    assert 'value="37.2"' in html
    assert 'value="400"' in html
    assert not visit_list(viewer=doctor_a, patient_id=patient_a.pk).exists()


def test_not_a_number_and_bad_icd_code(client_a, patient_a):
    response = _post(client_a, patient_a, obs_2708_6="ninety", diagnosis_code="ZZZ.9")
    errors = response.context["form"].errors
    assert errors["obs_2708_6"] == ["Enter a number."]
    assert "not a valid ICD-10 code" in errors["diagnosis_code"][0]


def test_icd10_search_as_you_type(client_a):
    response = client_a.get(
        reverse("icd10_search"), {"diagnosis_code": "pneumonia"}, headers={"HX-Request": "true"}
    )
    html = response.content.decode()
    assert 'data-icd-code="J18.9"' in html
    assert "<html" not in html  # a fragment for htmx
    assert (
        client_a.get(reverse("icd10_search"), {"diagnosis_code": "j1"}).content.count(
            b"data-icd-code"
        )
        > 0
    )


def test_edit_and_close_visit(client_a, visit_a, doctor_a):
    response = client_a.get(reverse("visit_edit", args=[visit_a.pk]))
    assert 'value="112"' in response.content.decode()
    response = client_a.post(
        reverse("visit_edit", args=[visit_a.pk]),
        {
            "visit_type": "emergency",
            "chief_complaint": "worse cough",
            "obs_8867_4": "120",
            # Becoming an emergency visit asks for the triage vital signs (issue 17).
            "obs_9279_1": "24",
            "obs_2708_6": "93",
            "obs_8480_6": "118",
            "obs_8310_5": "38.1",
            "unit_8310_5": "Cel",
            "unit_29463_7": "kg",
            "unit_2345_7": "mg/dL",
            "unit_2093_3": "mg/dL",
        },
    )
    assert response.status_code == 302
    detail = client_a.get(reverse("visit_detail", args=[visit_a.pk])).content.decode()
    assert "worse cough" in detail
    assert "Emergency" in detail
    client_a.post(reverse("visit_close", args=[visit_a.pk]))
    detail = client_a.get(reverse("visit_detail", args=[visit_a.pk])).content.decode()
    assert "Closed" in detail
    assert reverse("visit_edit", args=[visit_a.pk]) not in detail
    assert client_a.get(reverse("visit_edit", args=[visit_a.pk])).status_code == 302


def test_another_teams_visit_is_a_404(client, doctor_b, visit_a):
    client.force_login(doctor_b)
    for name in ("visit_detail", "visit_edit", "advice_panel"):
        assert client.get(reverse(name, args=[visit_a.pk])).status_code == 404
    assert client.post(reverse("visit_close", args=[visit_a.pk])).status_code == 404


def test_a_plan_that_conflicts_with_an_allergy_is_flagged_on_the_visit_page_on_save(
    client_a, patient_a, doctor_a
):
    """No worker needed: the page checks the plan against the allergies as it is shown."""
    assert [(a.substance, a.severity) for a in patient_a.allergies.all()] == [
        ("penicillin", "severe")
    ]
    response = _post(
        client_a,
        patient_a,
        chief_complaint="sore throat",
        obs_8310_5="38.4",
        plan="阿莫西林 0.5g tid; ceftriaxone if worse",
    )
    assert response.status_code == 302
    html = client_a.get(response["Location"]).content.decode()
    panel = html[html.index('id="medication-safety"') :]
    panel = panel[: panel.index("</section>")]
    assert "阿莫西林" in panel
    assert "penicillin" in panel
    assert "tag-critical" in panel  # same class as a severe allergy
    assert "ceftriaxone" in panel
    assert "tag-warning" in panel  # cephalosporin: caution
    assert html.index('id="medication-safety"') < html.index('id="advice-panel"')


def test_a_plan_without_conflicts_says_it_was_checked_and_no_plan_shows_nothing(
    client_a, patient_a, doctor_a
):
    from patients.services import allergy_add

    allergy_add(patient=patient_a, substance="aspirin", actor=doctor_a)
    checked = _post(client_a, patient_a, chief_complaint="cough", plan="paracetamol 1 g qds")
    html = client_a.get(checked["Location"]).content.decode()
    assert 'id="medication-safety"' not in html  # paracetamol is not in the lexicon: no drug
    checked = _post(client_a, patient_a, chief_complaint="cough", plan="azithromycin 500 mg")
    html = client_a.get(checked["Location"]).content.decode()
    assert 'id="medication-safety-ok"' in html


def test_a_too_long_complaint_is_refused_with_the_same_limit_as_the_api(client_a, patient_a):
    from visits.services import VISIT_TEXT_LIMITS

    limit = VISIT_TEXT_LIMITS["chief_complaint"]
    form = client_a.get(reverse("visit_new", args=[patient_a.pk])).content.decode()
    assert f"At most {limit} characters." in form
    response = _post(client_a, patient_a, chief_complaint="x" * 5000)
    assert response.status_code == 400
    html = response.content.decode()
    assert f"Too long: 5000 characters, at most {limit}." in html
    assert not patient_a.visits.exists()


def test_an_emergency_visit_asks_for_its_triage_vital_signs(client_a, patient_a):
    response = _post(
        client_a, patient_a, visit_type="emergency", chief_complaint="chest pain", obs_8867_4="118"
    )
    assert response.status_code == 400
    html = response.content.decode()
    # Beside each missing field (RR, SpO2, SBP, temperature) and in the error summary.
    assert html.count("Needed at triage for an emergency visit.") == 8
    assert not patient_a.visits.exists()
    response = _post(
        client_a,
        patient_a,
        visit_type="emergency",
        chief_complaint="chest pain",
        obs_8867_4="118",
        obs_9279_1="22",
        obs_2708_6="91",
        obs_8480_6="165",
        obs_8310_5="37.2",
    )
    assert response.status_code == 302


def test_a_medication_list_that_conflicts_with_an_allergy_is_flagged_on_save(
    client_a, patient_a, doctor_a
):
    """Issue 17 (5): the medicines entered, one per line, are checked like the plan, in English
    and Chinese, with class cross-reactivity; the page says which list named the drug."""
    from patients.services import allergy_add

    allergy_add(patient=patient_a, substance="阿司匹林", severity="moderate", actor=doctor_a)
    response = _post(
        client_a,
        patient_a,
        chief_complaint="sore throat",
        obs_8310_5="38.4",
        plan="Fluids and rest.",
        medications="Amoxicillin 500 mg three times a day\n布洛芬 0.2g tid\nparacetamol 1 g qds",
    )
    assert response.status_code == 302
    html = client_a.get(response["Location"]).content.decode()
    assert "<li>布洛芬 0.2g tid</li>" in html  # shown as a list on the visit page
    panel = html[html.index('id="medication-safety"') :]
    panel = panel[: panel.index("</section>")]
    items = panel.split("<li ")[1:]
    by_drug = {drug: next(i for i in items if drug in i) for drug in ("Amoxicillin", "布洛芬")}
    assert 'data-source="medications"' in by_drug["Amoxicillin"]
    assert "tag-critical" in by_drug["Amoxicillin"]  # penicillin class, allergy recorded severe
    assert "The medication list names" in by_drug["Amoxicillin"]
    assert "阿司匹林" in by_drug["布洛芬"]  # an NSAID for an aspirin allergy (Chinese names)
    assert "tag-high" in by_drug["布洛芬"]  # moderate allergy: high, not critical


def test_a_too_long_medication_list_is_refused_and_saves_nothing(client_a, patient_a):
    from visits.services import VISIT_TEXT_LIMITS

    limit = VISIT_TEXT_LIMITS["medications"]
    form = client_a.get(reverse("visit_new", args=[patient_a.pk])).content.decode()
    assert "One medicine per line: name, dose, how often" in form
    too_long = "\n".join(["aspirin 75 mg"] * 200)
    response = _post(client_a, patient_a, chief_complaint="cough", medications=too_long)
    assert response.status_code == 400
    assert f"Too long: {len(too_long)} characters, at most {limit}." in response.content.decode()
    assert not patient_a.visits.exists()
