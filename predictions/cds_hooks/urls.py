"""CDS Hooks 2.0 endpoints under /cds-services (medai_site.urls)."""

from django.urls import path

from . import views

urlpatterns = [
    path("cds-services", views.CdsDiscoveryApi.as_view(), name="cds-discovery"),
    path("cds-services/<slug:service_id>", views.CdsServiceApi.as_view(), name="cds-service"),
    path(
        "cds-services/<slug:service_id>/feedback",
        views.CdsFeedbackApi.as_view(),
        name="cds-feedback",
    ),
]
