"""Advice and model REST operations, mounted under /api/v1/ in the ``api`` namespace
(medai_site.urls)."""

from django.urls import path

from . import predict, views

urlpatterns = [
    # Advice
    path("visits/<int:visit_id>/advice", views.VisitAdviceApi.as_view(), name="visit-advice"),
    path(
        "advice-requests/<int:request_id>",
        views.AdviceRequestDetailApi.as_view(),
        name="advice-request-detail",
    ),
    path(
        "advice/<int:advice_id>/feedback",
        views.AdviceFeedbackCreateApi.as_view(),
        name="advice-feedback",
    ),
    # Models
    path("models", views.ModelListApi.as_view(), name="model-list"),
    path("models/<slug:slug>", views.ModelDetailApi.as_view(), name="model-detail"),
    path(
        "models/<slug:slug>/training-jobs",
        views.TrainingJobStartApi.as_view(),
        name="model-training-start",
    ),
    path("models/<slug:slug>/promote", views.ModelPromoteApi.as_view(), name="model-promote"),
    path("models/<slug:slug>/rollback", views.ModelRollbackApi.as_view(), name="model-rollback"),
    # Synchronous prediction on inputs sent inline
    path("models/<slug:slug>/predict", predict.ModelPredictApi.as_view(), name="model-predict"),
    path(
        "models/<slug:slug>/predict:batch",
        predict.ModelPredictBatchApi.as_view(),
        name="model-predict-batch",
    ),
    path("models/<slug:slug>/schema", predict.ModelInputSchemaApi.as_view(), name="model-schema"),
    path(
        "training-jobs/<int:job_id>",
        views.TrainingJobDetailApi.as_view(),
        name="training-job-detail",
    ),
]
