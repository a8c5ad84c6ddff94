"""The REST API (/api/v1/...), schema (/api/schema/) and health endpoints (/healthz, /readyz)."""

urlpatterns: list = []
