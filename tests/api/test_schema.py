"""The OpenAPI schema: generated without warnings, complete (errors, auth, idempotency), served."""

from __future__ import annotations

import pytest
import yaml
from django.core.management import call_command
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

METHODS = {"get", "post", "patch", "put", "delete"}


@pytest.fixture(scope="module")
def schema(tmp_path_factory, django_db_blocker):
    path = tmp_path_factory.mktemp("schema") / "schema.yaml"
    with django_db_blocker.unblock():
        # Fails (SchemaGenerationError) on any warning, as CI must.
        call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(path))
    return yaml.safe_load(path.read_text())


def _operations(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, operation


def test_every_versioned_operation_documents_auth_and_the_error_shape(schema):
    assert schema["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schema["components"]["securitySchemes"]["bearerAuth"]["description"],
    }
    error = "#/components/schemas/Error"
    for path, method, operation in _operations(schema):
        if not path.startswith("/api/v1/"):
            continue
        assert {"bearerAuth": []} in operation["security"], (path, method)
        for status in ("400", "401", "403", "404", "429"):
            content = operation["responses"][status]["content"]["application/json"]
            assert content["schema"]["$ref"] == error, (path, method, status)
        if method in ("post", "patch"):
            assert {"409", "415"} <= set(operation["responses"]), (path, method)
        assert any(code.startswith("2") for code in operation["responses"]), (path, method)


def test_error_schema_is_the_one_shape(schema):
    detail = schema["components"]["schemas"]["ErrorDetail"]
    assert set(detail["required"]) == {"code", "message", "fields"}


def test_creating_posts_document_idempotency_key(schema):
    creating = {
        ("/api/v1/patients", "post"),
        ("/api/v1/patients/{patient_id}/visits", "post"),
        ("/api/v1/visits/{visit_id}/advice", "post"),
        ("/api/v1/visits/{visit_id}/diagnoses", "post"),
        ("/api/v1/advice/{advice_id}/feedback", "post"),
        ("/api/v1/models/{slug}/training-jobs", "post"),
    }
    for path, method in creating:
        names = {p["name"] for p in schema["paths"][path][method].get("parameters", [])}
        assert "Idempotency-Key" in names, path


def test_asynchronous_operations_answer_202(schema):
    assert "202" in schema["paths"]["/api/v1/visits/{visit_id}/advice"]["post"]["responses"]
    assert "202" in schema["paths"]["/api/v1/models/{slug}/training-jobs"]["post"]["responses"]


def test_schema_and_docs_are_served_from_vendored_assets(db):
    client = APIClient()
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in html
    assert "cdn" not in html.lower()
    assert client.get("/api/redoc/").status_code == 200
