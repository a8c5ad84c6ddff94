"""Patients' REST operations, mounted under /api/v1/ in the ``api`` namespace (medai_site.urls)."""

from django.urls import path

from . import views

urlpatterns = [
    path("patients", views.PatientListCreateApi.as_view(), name="patient-list"),
    path("patients/search", views.PatientSearchApi.as_view(), name="patient-search"),
    path("patients/<int:patient_id>", views.PatientDetailApi.as_view(), name="patient-detail"),
]
