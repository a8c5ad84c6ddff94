"""One error shape everywhere, and never a 500 on bad input."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def _assert_error_shape(response, status: int) -> dict:
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "fields"}
    return body["error"]


@pytest.mark.parametrize(
    "raw",
    [
        b"{",
        b"not json",
        b'{"mrn": NaN}',
        b'{"mrn": Infinity}',
        b"\xff\xfe\x00",
        b"[]",
        b"null",
        b'"a string"',
        b'{"given_name": "\\ud800"}',
        b'{"given_name": "nul\\u0000byte"}',
        b'{"birth_date": "0000-00-00"}',
        b'{"birth_date": "99999-01-01"}',
        b'{"care_team_ids": [1e400]}',
        b'{"allergies": [{"substance": {"nested": 1}}]}',
        b"1" * 5000,
    ],
)
def test_malformed_or_mistyped_bodies_are_400(api_a, patient_a, raw):
    response = api_a.generic("POST", "/api/v1/patients", raw, content_type="application/json")
    _assert_error_shape(response, 400)


def test_huge_integer_in_json_is_400(api_a, patient_a):
    raw = b'{"observations": [{"code": "8867-4", "value": 1' + b"0" * 400 + b"}]}"
    response = api_a.generic(
        "POST", f"/api/v1/patients/{patient_a.pk}/visits", raw, content_type="application/json"
    )
    _assert_error_shape(response, 400)


def test_non_json_content_type_is_415(api_a):
    response = api_a.generic(
        "POST", "/api/v1/patients", b"mrn=X", content_type="application/x-www-form-urlencoded"
    )
    assert _assert_error_shape(response, 415)["code"] == "unsupported_media_type"


def test_unsupported_method_is_405(api_a, patient_a):
    response = api_a.delete(f"/api/v1/patients/{patient_a.pk}")
    assert _assert_error_shape(response, 405)["code"] == "method_not_allowed"


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/nope",
        "/api/v1/patients/abc",
        "/api/v1/patients/-1",
        "/api/v1/patients/",
        "/api/v2/patients",
        "/api/v1/models/%C3%9A/training-jobs",
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST", "PATCH", "DELETE"])
def test_unknown_api_paths_are_json_404_for_any_method(api_a, path, method):
    response = api_a.generic(method, path, b"{}", content_type="application/json")
    assert _assert_error_shape(response, 404)["code"] == "not_found"


@pytest.mark.parametrize("visit_id", [2**63 - 1, 2**63, 10**25])
def test_huge_ids_are_404_not_500(api_a, client_for, admin_user, visit_id):
    assert client_for(admin_user).get(f"/api/v1/training-jobs/{visit_id}").status_code == 404
    for url in (
        f"/api/v1/visits/{visit_id}",
        f"/api/v1/visits/{visit_id}/advice",
        f"/api/v1/advice-requests/{visit_id}",
        f"/api/v1/patients/{visit_id}/visits",
    ):
        assert api_a.get(url).status_code == 404, url


def test_validation_errors_name_every_field(api_a):
    error = _assert_error_shape(api_a.post("/api/v1/patients", {}, format="json"), 400)
    assert error["code"] == "invalid"
    assert {"mrn", "sex", "given_name", "family_name", "birth_date"} <= set(error["fields"])


def test_error_messages_carry_no_phi(api_a, patient_a):
    response = api_a.post(
        "/api/v1/patients",
        {
            "mrn": patient_a.mrn,
            "sex": "female",
            "given_name": "Secretname",
            "family_name": "Hidden",
            "birth_date": "1970-01-01",
        },
        format="json",
    )
    assert response.status_code == 409
    assert b"Secretname" not in response.content
