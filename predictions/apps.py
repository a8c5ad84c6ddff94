from django.apps import AppConfig


class PredictionsConfig(AppConfig):
    name = "predictions"

    def ready(self) -> None:
        # Predictions follows visits, never the other way round: it subscribes to visits' events
        # (each becomes an advice request in the visit's transaction) and adds its advice panel
        # to the visit page. Its artifact check is part of the advice pipeline's health, not of
        # the web's readiness (medai_site/health.py says why). Nothing here loads a model
        # (artifacts load lazily on first use).
        from visits.events import subscribe
        from visits.panels import chart_panel_register, panel_register

        from . import advice_worker_process, worker_heartbeat
        from .services.outbox import on_visit_event
        from .views import (
            advice_panel_for_visit,
            course_panel_for_patient,
            medication_panel_for_visit,
        )

        subscribe(on_visit_event)
        panel_register(medication_panel_for_visit)  # above the advice: it needs no worker
        panel_register(advice_panel_for_visit)
        chart_panel_register(course_panel_for_patient)
        worker_heartbeat.connect()  # advice workers beat (the signals fire only in a worker)
        advice_worker_process.connect()  # one BLAS thread and models loaded, advice worker only
