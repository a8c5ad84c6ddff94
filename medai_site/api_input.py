"""Input serializers built once per thread instead of once per request.

``SomeSerializer(data=...)`` deep-copies every declared field before it validates anything (DRF
re-instantiates each field for each serializer instance): for a CDS Hooks call's six fields,
about as long as validating them. :func:`validate_input` keeps one instance per serializer class
and thread and calls its ``run_validation``, which reads the data and returns a new validated
dict each time; nothing of one request stays in the serializer for the next.

For input serializers that need no context (no request, no view) and keep no state between
calls: no ``validate_<field>`` or ``validate`` method may write to ``self``. The result, and the
error raised for invalid data, equal ``is_valid(raise_exception=True)``'s (tests hold them side
by side). The counterpart of :mod:`medai_site.api_output`.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from .api_output import thread_serializer


def validate_input(serializer_class: type[serializers.Serializer], data: Any) -> Any:
    """``serializer_class(data=data)``'s ``validated_data`` after ``is_valid(raise_exception=True)``
    (the same ``ValidationError`` when the data is invalid), with the fields built once per
    thread."""
    try:
        return thread_serializer(serializer_class).run_validation(data)
    except serializers.ValidationError:
        pass
    # Invalid data (rare): a serializer of its own reports it exactly as DRF does (is_valid
    # reshapes some errors, such as a null body's).
    fresh = serializer_class(data=data)
    fresh.is_valid(raise_exception=True)
    return fresh.validated_data
