"""The clinician's workflow in a real Chromium, against a live server and a real Celery worker."""

from __future__ import annotations

import re

import pytest
from django.test import override_settings

from .conftest import sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def _patient_of(team_name: str):
    from patients.models import CareTeam
    from patients.selectors import patient_list
    from tests.factories import UserFactory  # noqa: F401 (factories module loads the models)

    team = CareTeam.objects.get(name=team_name)
    viewer = team.members.get()
    return patient_list(viewer=viewer).filter(care_teams=team).order_by("mrn").first()


def _train_differential_model() -> None:
    """A small model, trained in this process, so advice has ranked diagnoses."""
    from predictions.models import PredictionTask
    from predictions.services.training import training_job_execute, training_job_start

    task = PredictionTask.objects.get(slug="differential")
    with override_settings(
        MEDAI_TRAINING_ALGORITHMS=["logistic_regression"], MEDAI_TRAINING_CV_FOLDS=2
    ):
        job = training_job_start(task=task, actor=None, trigger="admin")
        job = training_job_execute(job_id=job.pk)
    assert job.status == "succeeded", job.error


def test_visit_to_accepted_advice(live_server, demo_population, broker, worker, page, screenshot):
    """Sign in, find a patient, record a visit, advice appears without reload, accept it."""
    _train_differential_model()
    patient = _patient_of("Internal Medicine")
    base = live_server.url

    page.goto(f"{base}/")
    screenshot(page, "01-sign-in")
    sign_in(page, base, "dr.chen")
    screenshot(page, "02-dashboard")

    page.get_by_role("link", name="Find patient").click()
    page.get_by_label("Name, MRN, phone or national ID").fill(patient.full_name)
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name=patient.full_name).first.wait_for()
    assert patient.family_name not in page.url  # searched by POST: PHI stays out of the URL
    screenshot(page, "03-search-results")
    page.get_by_role("link", name=patient.full_name).first.click()
    page.wait_for_url(re.compile(rf".*/patients/{patient.pk}/$"))
    assert page.locator(".banner").get_by_text(patient.mrn).is_visible()
    screenshot(page, "04-patient-chart")

    page.get_by_role("link", name="Record a new visit").click()
    page.get_by_label("Visit type").select_option("emergency")
    page.get_by_label("Chief complaint").fill(
        "productive cough, fever and shortness of breath for 3 days"
    )
    page.get_by_label("Heart rate").fill("118")
    page.get_by_label("Body temperature", exact=True).fill("39.2")
    page.get_by_label("Respiratory rate").fill("26")
    page.get_by_label("Oxygen saturation").fill("89")
    page.get_by_label("Systolic blood pressure").fill("104")
    page.get_by_label("Provisional diagnosis (ICD-10)").fill("pneumonia")
    page.locator("#icd10-results button").first.wait_for()
    screenshot(page, "05-visit-form-icd10-search")
    page.locator("#icd10-results button", has_text="J18.9").click()
    assert page.get_by_label("Provisional diagnosis (ICD-10)").input_value() == "J18.9"
    page.get_by_role("button", name="Save visit and get advice").click()
    page.wait_for_url(re.compile(r".*/visits/\d+/$"))
    visit_url = page.url
    page.evaluate("window.__sameDocument = true")  # gone if the page reloads
    screenshot(page, "06-visit-advice-pending")

    suggestion = page.locator("#advice-panel .suggestion:has(button[value=accept])").first
    suggestion.wait_for(timeout=60_000)
    assert page.evaluate("window.__sameDocument") is True, "advice arrived by reloading the page"
    assert page.url == visit_url
    screenshot(page, "07-visit-advice")
    code = suggestion.get_attribute("data-code")
    suggestion.get_by_role("button", name=f"Accept {code}").click()
    page.locator("#advice-panel .decided.accept").wait_for()
    # Accepting is agreement: a provisional diagnosis, not yet on the problem list.
    accepted = page.locator(f'#visit-diagnoses li[data-diagnosis="{code}"]')
    assert "Provisional" in accepted.inner_text()
    assert not page.locator("#problem-list").get_by_text(code, exact=True).count()
    screenshot(page, "08-suggestion-accepted")
    accepted.get_by_role("button", name=f"Confirm {code}").click()
    page.locator("#problem-list").get_by_text(code, exact=True).wait_for()

    page.locator(".banner a.name").click()
    assert page.locator("#problem-list").get_by_text(code, exact=True).is_visible()

    page.get_by_role("link", name="Models").click()
    screenshot(page, "09-models")
    page.locator("a", has_text=re.compile(r"^v1$")).first.click()
    page.get_by_role("heading", name="Plots").wait_for()
    plot = page.locator(".plots img").first
    plot.scroll_into_view_if_needed()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=plot.element_handle())
    screenshot(page, "10-model-report")
    assert not page.errors, page.errors


def test_training_progress_moves_to_completion(
    live_server, demo_population, broker, worker, page, screenshot
):
    """A doctor allowed to train starts a job and watches its progress bar until it is done."""
    from django.contrib.auth.models import Permission, User

    User.objects.get(username="dr.okafor").user_permissions.add(
        Permission.objects.get(codename="add_trainingjob")
    )
    sign_in(page, live_server.url, "dr.okafor")
    page.goto(f"{live_server.url}/models/tasks/differential/")
    page.get_by_role("button", name="Train a new version").click()
    page.wait_for_url(re.compile(r".*/models/jobs/\d+/$"))
    seen = set()
    for _ in range(300):
        seen.add(int(page.locator("progress.training").get_attribute("value")))
        if page.get_by_text("Training finished.").is_visible():
            break
        if 0 < max(seen) < 100 and len(seen) >= 2:
            screenshot(page, "11-training-progress")
        page.wait_for_timeout(500)
    assert page.get_by_text("Training finished.").is_visible(), page.locator(
        "#training-progress"
    ).inner_text()
    seen.add(int(page.locator("progress.training").get_attribute("value")))
    assert max(seen) == 100, seen
    assert len(seen) >= 3, seen  # it moved, by itself
    screenshot(page, "12-training-done")


def test_other_care_teams_patient_is_a_404_page(live_server, demo_population, page, screenshot):
    patient = _patient_of("Emergency Department")
    sign_in(page, live_server.url, "dr.chen")
    response = page.goto(f"{live_server.url}/patients/{patient.pk}/")
    assert response.status == 404
    assert page.get_by_role("heading", name="We could not find that page").is_visible()
    assert patient.full_name not in page.content()
    screenshot(page, "13-not-found")


def test_invalid_vital_keeps_the_form_and_shows_the_message(
    live_server, demo_population, page, screenshot
):
    patient = _patient_of("Internal Medicine")
    sign_in(page, live_server.url, "dr.chen")
    page.goto(f"{live_server.url}/patients/{patient.pk}/visits/new/")
    page.get_by_label("Chief complaint").fill("palpitations since this morning")
    page.get_by_label("History of present illness").fill("no chest pain")
    page.get_by_label("Heart rate").fill("400")
    page.get_by_label("Systolic blood pressure").fill("135")
    page.get_by_label("Body temperature", exact=True).fill("98.6")
    page.get_by_label("Unit of Body temperature").select_option("[degF]")
    page.get_by_role("button", name="Save visit and get advice").click()
    message = page.locator("tr.has-error .errorlist")
    assert "outside the possible range 20–250" in message.inner_text()
    assert page.get_by_label("Heart rate").get_attribute("aria-invalid") == "true"
    assert page.get_by_label("Chief complaint").input_value() == "palpitations since this morning"
    assert page.get_by_label("History of present illness").input_value() == "no chest pain"
    assert page.get_by_label("Systolic blood pressure").input_value() == "135"
    assert page.get_by_label("Body temperature", exact=True).input_value() == "98.6"
    assert page.get_by_label("Unit of Body temperature").input_value() == "[degF]"
    screenshot(page, "14-invalid-vital")


def test_chinese_interface_and_tablet_layout(live_server, demo_population, page, screenshot):
    patient = _patient_of("Internal Medicine")
    page.set_viewport_size({"width": 820, "height": 1180})  # a tablet in portrait
    sign_in(page, live_server.url, "dr.chen")
    page.get_by_role("button", name="中文").click()
    page.get_by_role("link", name="工作台").wait_for()
    screenshot(page, "15-dashboard-zh-tablet")
    page.goto(f"{live_server.url}/patients/{patient.pk}/")
    assert page.get_by_role("heading", name="生命体征趋势").is_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 820, "horizontal scrolling on a tablet"
    screenshot(page, "16-chart-zh-tablet")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip-link"
