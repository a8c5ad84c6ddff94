"""The REST API (/api/v1/...), schema (/api/schema/) and health endpoints (/healthz, /readyz)."""

from django.http import HttpRequest, JsonResponse
from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from patients.api import views as patients
from predictions.api import views as predictions
from visits.api import views as visits

from . import health
from .errors import error_body

v1 = [
    # Patients
    path("patients", patients.PatientListCreateApi.as_view(), name="patient-list"),
    path("patients/search", patients.PatientSearchApi.as_view(), name="patient-search"),
    path("patients/<int:patient_id>", patients.PatientDetailApi.as_view(), name="patient-detail"),
    path(
        "patients/<int:patient_id>/visits",
        visits.PatientVisitListCreateApi.as_view(),
        name="patient-visits",
    ),
    # Visits, observations, diagnoses
    path("visits/<int:visit_id>", visits.VisitDetailApi.as_view(), name="visit-detail"),
    path("visits/<int:visit_id>/close", visits.VisitCloseApi.as_view(), name="visit-close"),
    path(
        "visits/<int:visit_id>/diagnoses",
        visits.VisitDiagnosisCreateApi.as_view(),
        name="visit-diagnoses",
    ),
    path(
        "visits/<int:visit_id>/diagnoses/<int:diagnosis_id>",
        visits.VisitDiagnosisUpdateApi.as_view(),
        name="visit-diagnosis-detail",
    ),
    path(
        "observation-definitions",
        visits.ObservationDefinitionListApi.as_view(),
        name="observation-definitions",
    ),
    path("icd10", visits.Icd10SearchApi.as_view(), name="icd10-search"),
    path("icd10/<str:code>", visits.Icd10LookupApi.as_view(), name="icd10-detail"),
    # Advice
    path("visits/<int:visit_id>/advice", predictions.VisitAdviceApi.as_view(), name="visit-advice"),
    path(
        "advice-requests/<int:request_id>",
        predictions.AdviceRequestDetailApi.as_view(),
        name="advice-request-detail",
    ),
    path(
        "advice/<int:advice_id>/feedback",
        predictions.AdviceFeedbackCreateApi.as_view(),
        name="advice-feedback",
    ),
    # Models
    path("models", predictions.ModelListApi.as_view(), name="model-list"),
    path("models/<slug:slug>", predictions.ModelDetailApi.as_view(), name="model-detail"),
    path(
        "models/<slug:slug>/training-jobs",
        predictions.TrainingJobStartApi.as_view(),
        name="model-training-start",
    ),
    path("models/<slug:slug>/promote", predictions.ModelPromoteApi.as_view(), name="model-promote"),
    path(
        "models/<slug:slug>/rollback", predictions.ModelRollbackApi.as_view(), name="model-rollback"
    ),
    path(
        "training-jobs/<int:job_id>",
        predictions.TrainingJobDetailApi.as_view(),
        name="training-job-detail",
    ),
]


@csrf_exempt  # answers the same 404 to any method; changes nothing, so there is nothing to forge
def api_not_found(request: HttpRequest, rest: str = "") -> JsonResponse:
    """Any other /api/ path: the API's error shape, not the browser's 404 page."""
    return JsonResponse(error_body("not_found", "No such API endpoint."), status=404)


urlpatterns = [
    path("api/v1/", include((v1, "api"))),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
    path("healthz", health.LivenessApi.as_view(), name="healthz"),
    path("readyz", health.ReadinessApi.as_view(), name="readyz"),
    re_path(r"^api/(?P<rest>.*)$", api_not_found),
]
