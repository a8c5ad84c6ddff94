"""Adds the request/job id and interface to every log record, so one id follows a visit from the
page or API call through the outbox and the worker to the stored advice."""

from __future__ import annotations

import logging

from .request_context import current_interface, current_request_id


class RequestContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id.get()
        record.interface = current_interface.get()
        # Django attaches the HttpRequest to django.request/django.security records; a JSON
        # formatter would print its repr, URL and query string included (a search for a
        # patient's name is PHI). The request id above is what joins the lines up.
        if hasattr(record, "request"):
            del record.request
        return True
