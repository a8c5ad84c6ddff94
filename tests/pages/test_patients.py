"""Patient search, registration with field-level errors, and the chart."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from django.urls import reverse
from django.utils import timezone

pytestmark = pytest.mark.django_db
# Session, user, roles, patient + allergies + care teams, the audit chain's insert (5), visit
# count, visits, diagnoses, observations, definitions, problem list, session save, the
# second-factor check (medai_site.pages): ~21. A break-the-glass grant costs a query only when
# the chart is open through one (patients.break_glass.emergency_grant).
CHART_QUERY_BOUND = 22


@pytest.mark.parametrize("query", ["Mei Lin", "Lin", "mrn-a-0001", "+1 555 0100", "ID-A-1"])
def test_search_finds_by_name_mrn_phone_national_id(client_a, patient_a, query):
    response = client_a.post(reverse("patient_search"), {"q": query})
    assert response.status_code == 200
    assert reverse("patient_chart", args=[patient_a.pk]) in response.content.decode()


def test_search_never_shows_another_care_teams_patient(client_a, patient_b):
    response = client_a.post(reverse("patient_search"), {"q": "MRN-B-0001"})
    assert reverse("patient_chart", args=[patient_b.pk]) not in response.content.decode()
    assert b"No patient in your care teams matches" in response.content


def test_register_patient(client_a, team_a):
    response = client_a.post(
        reverse("patient_register"),
        {
            "mrn": "new-0042",
            "given_name": "Ada",
            "family_name": "Ng",
            "sex": "female",
            "birth_date": "1980-02-03",
            "care_teams": [team_a.pk],
            "allergy_0_substance": "Aspirin",
            "allergy_0_reaction": "wheeze",
            "allergy_0_severity": "severe",
            "allergy_1_severity": "moderate",
            "allergy_2_severity": "moderate",
        },
    )
    assert response.status_code == 302
    chart = client_a.get(response["Location"]).content.decode()
    assert "Ada Ng" in chart
    assert "NEW-0042" in chart
    assert "aspirin" in chart


def test_register_shows_field_errors_and_keeps_input(client_a, team_a, patient_a):
    future = (timezone.localdate() + dt.timedelta(days=3)).isoformat()
    response = client_a.post(
        reverse("patient_register"),
        {
            "mrn": "MRN-A-0001",  # taken
            "given_name": "Ada",
            "family_name": "",
            "sex": "female",
            "birth_date": future,
            "phone": "+1 555 0199",
            "care_teams": [team_a.pk],
        },
    )
    assert response.status_code == 400
    form = response.context["form"]
    assert "family_name" in form.errors
    assert "birth_date" in form.errors
    html = response.content.decode()
    assert 'value="+1 555 0199"' in html
    assert 'value="Ada"' in html
    assert 'aria-invalid="true"' in html


def test_register_duplicate_mrn_lands_on_the_mrn_field(client_a, team_a, patient_a):
    response = client_a.post(
        reverse("patient_register"),
        {
            "mrn": "MRN-A-0001",
            "given_name": "Ada",
            "family_name": "Ng",
            "sex": "female",
            "birth_date": "1980-02-03",
            "care_teams": [team_a.pk],
        },
    )
    assert response.status_code == 400
    assert "mrn" in response.context["form"].errors


def test_doctor_cannot_register_into_another_team(client_a, team_b):
    response = client_a.post(
        reverse("patient_register"),
        {
            "mrn": "X-0001",
            "given_name": "A",
            "family_name": "B",
            "sex": "male",
            "birth_date": "1990-01-01",
            "care_teams": [team_b.pk],
        },
    )
    assert response.status_code == 400
    assert "care_teams" in response.context["form"].errors


def test_chart_banner_problem_list_timeline_and_plots(client_a, patient_a, visit_a, doctor_a):
    from visits.services import diagnosis_add

    diagnosis_add(visit=visit_a, code="J18.9", status="confirmed", actor=doctor_a)
    html = client_a.get(reverse("patient_chart", args=[patient_a.pk])).content.decode()
    banner = html[
        html.index('class="banner"') : html.index("</section>", html.index('class="banner"'))
    ]
    assert "Mei Lin" in banner
    assert "MRN-A-0001" in banner
    assert "Female" in banner
    assert "penicillin" in banner
    assert "Severe" in banner
    age = patient_a.age_on(timezone.localdate())
    assert f"<dd>{age}</dd>" in banner
    assert "J18.9" in html[html.index('id="problem-list"') :]
    assert "productive cough and fever" in html  # timeline
    assert 'class="chart"' in html
    assert 'class="normal-band"' in html
    assert "pt-critical" in html  # SpO2 85 % is below the critical 88 %
    assert "pt-abnormal" in html  # heart rate 112 /min is high


def test_chart_of_another_care_teams_patient_is_a_404_page(client_a, patient_b):
    response = client_a.get(reverse("patient_chart", args=[patient_b.pk]))
    assert response.status_code == 404
    assert b"We could not find that page" in response.content


def _chart_with_visits(patient, doctor, n):
    from visits.services import ObservationInput, diagnosis_add, visit_create

    for i in range(n):
        visit = visit_create(
            patient=patient,
            attending=doctor,
            chief_complaint=f"visit {i}",
            observations=[
                ObservationInput("8867-4", str(60 + i % 70)),
                ObservationInput("2345-7", "120"),
            ],
            actor=doctor,
            request_advice=False,
        )
        diagnosis_add(visit=visit, code="I10", status="confirmed", actor=doctor)


@pytest.mark.parametrize("visits", [5, 200])
def test_chart_query_count_does_not_grow_with_visits(
    client_a, patient_a, doctor_a, visits, django_assert_max_num_queries
):
    """The same bound holds for a chart with 5 visits and one with 200."""
    _chart_with_visits(patient_a, doctor_a, visits)
    client_a.get(reverse("dashboard"))  # session and role caches warm, as in real use
    with django_assert_max_num_queries(CHART_QUERY_BOUND):
        response = client_a.get(reverse("patient_chart", args=[patient_a.pk]))
    assert response.status_code == 200
    with django_assert_max_num_queries(CHART_QUERY_BOUND):
        response = client_a.get(reverse("patient_chart", args=[patient_a.pk]) + "?visits=all")
    assert response.content.decode().count("<time datetime=") == visits


def test_same_day_visits_show_their_times(client_a, patient_a, doctor_a):
    """Two visits on one day are told apart by their times, on the timeline and the plots."""
    from visits.services import ObservationInput, visit_create

    day = timezone.now().replace(hour=8, minute=5, second=0, microsecond=0)
    for start, rate in ((day, "88"), (day + dt.timedelta(hours=6, minutes=40), "121")):
        visit_create(
            patient=patient_a,
            attending=doctor_a,
            start=start,
            chief_complaint="palpitations",
            observations=[ObservationInput("8867-4", rate)],
            actor=doctor_a,
            request_advice=False,
        )
    html = client_a.get(reverse("patient_chart", args=[patient_a.pk])).content.decode()
    timeline = html[html.index('class="timeline"') :]
    assert "8:05" in timeline
    assert "14:45" in timeline
    plots = html[html.index('class="chart"') :]
    assert "14:45" in plots  # the axis end and the point's tooltip carry the time


def test_troponin_axis_labels_do_not_overlap():
    """y-axis labels stay at least a label's height apart (troponin's 0 and 0.04 collided)."""
    import re

    from visits.charts import TICK_GAP, Point, Series, series_svg
    from visits.models import ObservationDefinition

    definition = ObservationDefinition.objects.get(code="10839-9")
    start = timezone.now() - dt.timedelta(days=3)
    series = Series(
        definition=definition,
        points=[
            Point(when=start + dt.timedelta(days=i), value=v, interpretation="", visit_id=i)
            for i, v in enumerate((0.01, 2.4, 0.6))
        ],
    )
    svg = str(series_svg(series, chart_id="trop"))
    ys = sorted(float(y) for y in re.findall(r'<text x="40" y="([\d.]+)" text-anchor="end"', svg))
    assert len(ys) >= 2
    assert all(b - a >= TICK_GAP for a, b in itertools.pairwise(ys)), ys
    assert ">0.040<" in svg  # the upper normal bound keeps its label
