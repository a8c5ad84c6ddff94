from django.apps import AppConfig


class PredictionsConfig(AppConfig):
    name = "predictions"

    def ready(self) -> None:
        # Predictions follows visits, never the other way round: it subscribes to visits' events
        # (each becomes an advice request in the visit's transaction) and adds its advice panel
        # to the visit page. It adds its artifact check to the base's readiness probe. Nothing
        # here loads a model (artifacts load lazily on first use).
        from medai_site.health import readiness_check_register
        from visits.events import subscribe
        from visits.panels import chart_panel_register, panel_register

        from .health import check_models
        from .services.outbox import on_visit_event
        from .views import advice_panel_for_visit, course_panel_for_patient

        subscribe(on_visit_event)
        panel_register(advice_panel_for_visit)
        chart_panel_register(course_panel_for_patient)
        readiness_check_register("models", check_models)
