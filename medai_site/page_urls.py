"""The clinician's pages (server-rendered, htmx partials under the page they belong to)."""

from django.urls import include, path

from patients import views as patient_views
from predictions import views as prediction_views
from visits import views as visit_views

from . import api_token_views, two_factor_views, views

urlpatterns = [
    path("", views.dashboard_view, name="dashboard"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("login/code/", two_factor_views.login_code_view, name="login_verify"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("account/two-factor/", two_factor_views.two_factor_view, name="two_factor"),
    path("account/api-tokens/", api_token_views.api_tokens_view, name="api_tokens"),
    path("session/", views.session_check, name="session_check"),
    path("i18n/", include("django.conf.urls.i18n")),
    # Patients
    path("patients/", patient_views.patient_search_view, name="patient_search"),
    path("patients/new/", patient_views.patient_register_view, name="patient_register"),
    path("patients/emergency-access/", patient_views.break_glass_view, name="break_glass"),
    path("patients/<int:patient_id>/", visit_views.patient_chart_view, name="patient_chart"),
    path("patients/<int:patient_id>/visits/new/", visit_views.visit_new_view, name="visit_new"),
    # Visits and their advice
    path("visits/<int:visit_id>/", visit_views.visit_detail_view, name="visit_detail"),
    path("visits/<int:visit_id>/edit/", visit_views.visit_edit_view, name="visit_edit"),
    path("visits/<int:visit_id>/close/", visit_views.visit_close_view, name="visit_close"),
    path("visits/<int:visit_id>/advice/", prediction_views.advice_panel_view, name="advice_panel"),
    path(
        "visits/<int:visit_id>/advice/feedback/",
        prediction_views.advice_feedback_view,
        name="advice_feedback",
    ),
    path("icd10/", visit_views.icd10_search_view, name="icd10_search"),
    # Models
    path("models/", prediction_views.model_list_view, name="model_list"),
    path("models/tasks/<slug:slug>/", prediction_views.task_detail_view, name="task_detail"),
    path(
        "models/tasks/<slug:slug>/train/",
        prediction_views.training_start_view,
        name="training_start",
    ),
    path(
        "models/versions/<int:version_id>/",
        prediction_views.version_report_view,
        name="version_report",
    ),
    path(
        "models/versions/<int:version_id>/plots/<slug:name>/",
        prediction_views.version_plot_view,
        name="version_plot",
    ),
    path("models/jobs/<int:job_id>/", prediction_views.training_job_view, name="training_job"),
    path(
        "models/jobs/<int:job_id>/progress/",
        prediction_views.training_progress_view,
        name="training_progress",
    ),
]
