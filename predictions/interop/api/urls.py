"""/fhir/r4/: the read-only FHIR R4 API, one route per resource type and interaction (so route
walkers, e.g. the scope and audit tests, see each of them), then OperationOutcome for the rest."""

from django.urls import path, re_path

from predictions.interop.selectors import RESOURCE_TYPES

from . import views

urlpatterns = [
    path("r4/metadata", views.FhirMetadataApi.as_view(), name="fhir-metadata"),
    path(
        "r4/Patient/<str:resource_id>/$everything",
        views.FhirPatientEverythingApi.as_view(),
        name="fhir-patient-everything",
    ),
]
for _name in RESOURCE_TYPES:
    urlpatterns += [
        path(
            f"r4/{_name}",
            views.FhirSearchApi.as_view(resource_type=_name),
            name=f"fhir-{_name.lower()}-search",
        ),
        path(
            f"r4/{_name}/<str:resource_id>",
            views.FhirReadApi.as_view(resource_type=_name),
            name=f"fhir-{_name.lower()}-read",
        ),
    ]
urlpatterns.append(re_path(r"^(?P<rest>.*)$", views.fhir_unknown, name="fhir-unknown"))
