"""Predictions' pages: the dashboard, a visit's advice, the model pages; and /metrics."""

from django.urls import path

from . import views
from .metrics import metrics_view

urlpatterns = [
    path("", views.dashboard_view, name="dashboard"),
    path("metrics", metrics_view, name="metrics"),  # Prometheus; basic auth token or staff
    path("operations/", views.operations_view, name="operations"),  # advice pipeline health
    # A visit's advice (the panel is also drawn into the visit page: visits.panels)
    path("visits/<int:visit_id>/advice/", views.advice_panel_view, name="advice_panel"),
    path(
        "visits/<int:visit_id>/advice/events/",
        views.advice_stream_view,
        name="advice_stream",
    ),
    path(
        "visits/<int:visit_id>/advice/feedback/",
        views.advice_feedback_view,
        name="advice_feedback",
    ),
    # A patient's forecasts (the chart's "Course and outlook" panel fetches it: visits.panels)
    path("patients/<int:patient_id>/outlook/", views.course_panel_view, name="course_panel"),
    # Models
    path("models/", views.model_list_view, name="model_list"),
    path("models/phenotypes/", views.phenotypes_view, name="phenotypes"),
    path("models/tasks/<slug:slug>/", views.task_detail_view, name="task_detail"),
    path("models/tasks/<slug:slug>/train/", views.training_start_view, name="training_start"),
    path("models/versions/<int:version_id>/", views.version_report_view, name="version_report"),
    path(
        "models/versions/<int:version_id>/plots/<slug:name>/",
        views.version_plot_view,
        name="version_plot",
    ),
    path("models/jobs/<int:job_id>/", views.training_job_view, name="training_job"),
    path(
        "models/jobs/<int:job_id>/progress/",
        views.training_progress_view,
        name="training_progress",
    ),
]
