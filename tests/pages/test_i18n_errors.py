"""English and Simplified Chinese; friendly error pages."""

from __future__ import annotations

import pytest
from django.test import RequestFactory
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_switch_to_chinese_and_back(client_a, patient_a, visit_a):
    response = client_a.post(
        reverse("set_language"), {"language": "zh-hans", "next": reverse("dashboard")}
    )
    assert response.status_code == 302
    html = client_a.get(reverse("dashboard")).content.decode()
    assert '<html lang="zh-hans">' in html
    assert "工作台" in html
    assert "我的患者" in html
    assert "Dashboard" not in html
    chart = client_a.get(reverse("patient_chart", args=[patient_a.pk])).content.decode()
    assert "生命体征趋势" in chart
    assert "心率" in chart
    assert "女" in chart
    form = client_a.get(reverse("visit_new", args=[patient_a.pk])).content.decode()
    assert "保存就诊并获取建议" in form
    client_a.post(reverse("set_language"), {"language": "en", "next": "/"})
    assert "Dashboard" in client_a.get(reverse("dashboard")).content.decode()


def test_dates_and_numbers_are_localised(client_a, patient_a):
    client_a.post(reverse("set_language"), {"language": "zh-hans", "next": "/"})
    chart = client_a.get(reverse("patient_chart", args=[patient_a.pk])).content.decode()
    assert "1958/05/17" in chart or "1958-05-17" in chart or "1958年" in chart
    client_a.post(reverse("set_language"), {"language": "en", "next": "/"})
    chart = client_a.get(reverse("patient_chart", args=[patient_a.pk])).content.decode()
    assert "05/17/1958" in chart


def test_validation_messages_are_translated(client_a, patient_a):
    client_a.post(reverse("set_language"), {"language": "zh-hans", "next": "/"})
    response = client_a.post(
        reverse("visit_new", args=[patient_a.pk]), {"visit_type": "outpatient", "obs_8867_4": "400"}
    )
    assert "超出可能范围" in response.content.decode()


def test_unknown_page_is_a_friendly_404(client_a):
    response = client_a.get("/no/such/page/")
    assert response.status_code == 404
    assert b"We could not find that page" in response.content
    assert b"Traceback" not in response.content


def test_server_error_page_is_friendly_and_has_a_reference(db):
    from medai_site.views import error_500

    request = RequestFactory().get("/")
    request.request_id = "abc123def456"
    from django.contrib.auth.models import AnonymousUser

    request.user = AnonymousUser()
    response = error_500(request)
    assert response.status_code == 500
    assert b"Something went wrong" in response.content
    assert b"abc123def456" in response.content


def test_error_handlers_are_wired():
    from medai_site import urls

    assert urls.handler404 == "medai_site.views.error_404"
    assert urls.handler500 == "medai_site.views.error_500"
    assert urls.handler403 == "medai_site.views.error_403"


def test_every_template_string_has_a_chinese_translation():
    from pathlib import Path

    from django.conf import settings

    po = Path(settings.BASE_DIR, "locale", "zh_Hans", "LC_MESSAGES", "django.po").read_text()
    assert 'msgstr ""\n\n' not in po.split("\n\n", 1)[1], "untranslated entries in django.po"
    assert Path(settings.BASE_DIR, "locale", "zh_Hans", "LC_MESSAGES", "django.mo").exists()
