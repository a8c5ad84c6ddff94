"""Issue 12, point 7: break-the-glass needs a reason from a short list plus a description of a
few words, and a second grant while one is active is an extension, flagged for review."""

from __future__ import annotations

import pytest
from django.test import Client

from medai_site.errors import InvalidInput
from patients.break_glass import break_glass_open, grants_awaiting_review
from patients.models import BreakGlassGrant
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db
REASON = "Found collapsed in the car park, own team in theatre"


@pytest.fixture
def outside_patient(team_b):
    return PatientFactory(mrn="MRN-BG-0002", care_teams=[team_b])


@pytest.mark.parametrize(
    "reason",
    ["aaaaaaaaaa", "urgent urgent urgent urgent", "emergency!!!", "1234567890 12345", "x y z w v"],
)
def test_break_glass_refuses_a_meaningless_reason(doctor_a, outside_patient, reason):
    with pytest.raises(InvalidInput) as refused:
        break_glass_open(
            viewer=doctor_a, mrn=outside_patient.mrn, category="urgent_consult", reason=reason
        )
    assert "reason" in refused.value.fields
    assert not BreakGlassGrant.objects.exists()


@pytest.mark.parametrize("category", ["", "other", "because"])
def test_break_glass_requires_a_reason_from_the_list(doctor_a, outside_patient, category):
    with pytest.raises(InvalidInput) as refused:
        break_glass_open(viewer=doctor_a, mrn=outside_patient.mrn, category=category, reason=REASON)
    assert "category" in refused.value.fields
    assert not BreakGlassGrant.objects.exists()


def test_a_description_in_chinese_counts_its_characters_as_words(doctor_a, outside_patient):
    grant = break_glass_open(
        viewer=doctor_a,
        mrn=outside_patient.mrn,
        category="unconscious_patient",
        reason="患者昏迷送急诊，主管医生无法联系",
    )
    assert grant.category == "unconscious_patient"


def test_second_grant_within_the_window_is_an_extension_flagged_for_review(
    doctor_a, doctor_b, outside_patient, team_a, admin_user
):
    first = break_glass_open(
        viewer=doctor_a, mrn=outside_patient.mrn, category="emergency_treatment", reason=REASON
    )
    second = break_glass_open(
        viewer=doctor_a, mrn=outside_patient.mrn, category="emergency_treatment", reason=REASON
    )
    assert (first.extends, second.extends) == (None, first)
    assert second.expires_at > first.expires_at
    assert grants_awaiting_review().first() == second  # extensions first
    # Another doctor's grant for the same patient is their own emergency, not an extension.
    from tests.factories import DoctorFactory

    colleague = DoctorFactory(username="colleague")
    team_a.members.add(colleague)
    separate = break_glass_open(
        viewer=colleague, mrn=outside_patient.mrn, category="urgent_consult", reason=REASON
    )
    assert separate.extends is None
    # The admin's review list flags it.
    browser = Client()
    browser.force_login(admin_user)
    listing = browser.get("/admin/patients/breakglassgrant/").content.decode()
    assert f"extends #{first.pk}" in listing
    flagged = browser.get("/admin/patients/breakglassgrant/", {"extends__isempty": "0"})
    assert list(flagged.context["cl"].result_list) == [second]


def test_a_grant_after_the_previous_one_expired_is_not_an_extension(doctor_a, outside_patient):
    from datetime import timedelta

    from django.utils import timezone

    first = break_glass_open(
        viewer=doctor_a, mrn=outside_patient.mrn, category="emergency_treatment", reason=REASON
    )
    BreakGlassGrant.objects.filter(pk=first.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    later = break_glass_open(
        viewer=doctor_a, mrn=outside_patient.mrn, category="critical_result", reason=REASON
    )
    assert later.extends is None


def test_the_form_asks_for_the_kind_of_emergency_and_refuses_filler(
    client, doctor_a, outside_patient
):
    from django.urls import reverse

    client_a = client
    client_a.force_login(doctor_a)
    page = client_a.get(reverse("break_glass")).content.decode()
    assert 'name="category"' in page
    assert "Unconscious" in page or "unconscious" in page
    refused = client_a.post(
        reverse("break_glass"),
        {"mrn": outside_patient.mrn, "category": "emergency_treatment", "reason": "aaaaaaaaaa"},
    )
    assert refused.status_code == 400
    assert "Describe the emergency in your own words" in refused.content.decode()
    assert not BreakGlassGrant.objects.exists()
