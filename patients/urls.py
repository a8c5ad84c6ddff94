"""Patients' pages (the chart at /patients/<id>/ is visits': it draws visits)."""

from django.urls import path

from . import views

urlpatterns = [
    path("patients/", views.patient_search_view, name="patient_search"),
    path("patients/new/", views.patient_register_view, name="patient_register"),
    path("patients/emergency-access/", views.break_glass_view, name="break_glass"),
]
