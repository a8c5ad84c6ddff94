"""The root URLconf: the composition root, the one module of the base that names the apps.

It names them by ``include("<app>.urls")`` strings, never by import, so the base imports no app
(docs/architecture.md, the import-linter contracts in pyproject.toml). Each app keeps its pages in
``<app>/urls.py`` and its REST operations in ``<app>/api/urls.py``.
"""

from django.contrib import admin
from django.urls import include, path

from medai_site.admin import MedaiAdminSite

# The admin requires a verified second factor (TOTP) on top of the password (HIPAA 164.312(d)),
# both given in one submit (medai_site/admin_login.py), and audits its autocomplete answers
# (medai_site/admin.py).
admin.site.__class__ = MedaiAdminSite

# /api/v1/: every app's operations in one "api" namespace (reverse("api:patient-list")).
api_v1 = [
    path("", include("patients.api.urls")),
    path("", include("visits.api.urls")),
    path("", include("predictions.api.urls")),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include((api_v1, "api"))),
    # /fhir/: the read-only FHIR R4 API (predictions.interop), OperationOutcome for anything else.
    path("fhir/", include("predictions.interop.api.urls")),
    path("", include("predictions.cds_hooks.urls")),  # CDS Hooks 2.0 (/cds-services)
    path("", include("medai_site.api_urls")),  # schema, docs, health, then any other /api/ is a 404
    path("", include("medai_site.page_urls")),
    path("", include("patients.urls")),
    path("", include("visits.urls")),
    path("", include("predictions.interop.urls")),  # the chart's FHIR record download
    path("", include("predictions.urls")),  # the dashboard at "", models, advice, /metrics
]

# Friendly error pages for the browser (the API answers its own JSON errors).
handler403 = "medai_site.views.error_403"
handler404 = "medai_site.views.error_404"
handler500 = "medai_site.views.error_500"
