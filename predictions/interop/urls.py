"""Pages of the interop app (the FHIR API's routes are in ``api/urls.py``)."""

from django.urls import path

from . import views

urlpatterns = [
    path(
        "patients/<int:patient_id>/record.fhir.json",
        views.patient_fhir_bundle_view,
        name="patient_fhir_bundle",
    ),
]
