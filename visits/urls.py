"""Visits' pages: the patient chart, a visit, and the ICD-10 picker."""

from django.urls import path

from . import views

urlpatterns = [
    path("patients/<int:patient_id>/", views.patient_chart_view, name="patient_chart"),
    path("patients/<int:patient_id>/visits/new/", views.visit_new_view, name="visit_new"),
    path("visits/<int:visit_id>/", views.visit_detail_view, name="visit_detail"),
    path("visits/<int:visit_id>/edit/", views.visit_edit_view, name="visit_edit"),
    path("visits/<int:visit_id>/close/", views.visit_close_view, name="visit_close"),
    path(
        "visits/<int:visit_id>/diagnoses/<int:diagnosis_id>/confirm/",
        views.diagnosis_confirm_view,
        name="diagnosis_confirm",
    ),
    path("icd10/", views.icd10_search_view, name="icd10_search"),
]
