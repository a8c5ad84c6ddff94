"""Every write to predictions' tables (STYLE.md: one door per table).

Each module is the only writer of its tables; tasks, views, API views, admin actions and
management commands call these functions and nothing else (tests/test_single_writer.py checks):

- ``outbox``: AdviceRequest (from visits' events or an explicit request; dispatch, relay).
- ``advice``: Advice (computed by the worker, superseded when the visit changes).
- ``training``: TrainingJob and ModelVersion.
- ``registry``: PredictionTask activation and the kill switch, ActivationEvent.
- ``feedback``: Feedback (and, through visits' services, the diagnosis it confirms).
- ``monitoring``: MonitoringSnapshot and ModelAlert.
- ``serving``: ModelUse (synchronous predictions on inputs sent inline: API, CDS Hooks).
"""
