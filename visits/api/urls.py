"""Visits' REST operations (visits, observations, diagnoses, the catalogue, ICD-10), mounted
under /api/v1/ in the ``api`` namespace (medai_site.urls)."""

from django.urls import path

from . import views

urlpatterns = [
    path(
        "patients/<int:patient_id>/visits",
        views.PatientVisitListCreateApi.as_view(),
        name="patient-visits",
    ),
    path("visits/<int:visit_id>", views.VisitDetailApi.as_view(), name="visit-detail"),
    path("visits/<int:visit_id>/close", views.VisitCloseApi.as_view(), name="visit-close"),
    path(
        "visits/<int:visit_id>/diagnoses",
        views.VisitDiagnosisCreateApi.as_view(),
        name="visit-diagnoses",
    ),
    path(
        "visits/<int:visit_id>/diagnoses/<int:diagnosis_id>",
        views.VisitDiagnosisUpdateApi.as_view(),
        name="visit-diagnosis-detail",
    ),
    path(
        "observation-definitions",
        views.ObservationDefinitionListApi.as_view(),
        name="observation-definitions",
    ),
    path("icd10", views.Icd10SearchApi.as_view(), name="icd10-search"),
    path("icd10/<str:code>", views.Icd10LookupApi.as_view(), name="icd10-detail"),
]
