"""Output serializers built once per thread instead of once per response.

``SomeSerializer(obj).data`` deep-copies every declared field of the serializer and of each
nested one (DRF re-instantiates each field) before it reads a single attribute: for the visit
detail (patient, allergies, observations, diagnoses, attending: some 60 fields) that was about
15 % of a visit create's Python time. :func:`represent` keeps one bound instance per serializer
class and thread and calls its ``to_representation``, which reads the instance and writes a new
dict each time: nothing of one response stays in the serializer for the next.

For output serializers that need no context (no request, no view): every ``OutputSerializer``
of the API today. The result equals ``serializer_class(instance).data`` (tests hold them side
by side).
"""

from __future__ import annotations

import threading
from typing import Any

from rest_framework import serializers

_local = threading.local()


def thread_serializer(serializer_class: type[serializers.Serializer]) -> serializers.Serializer:
    """This thread's one instance of ``serializer_class`` (its fields built once), for calls
    that keep no state on the instance (``to_representation``, ``run_validation``)."""
    cache: dict[type, serializers.Serializer] | None = getattr(_local, "serializers", None)
    if cache is None:
        cache = _local.serializers = {}
    serializer = cache.get(serializer_class)
    if serializer is None:
        serializer = cache[serializer_class] = serializer_class()
    return serializer


def represent(serializer_class: type[serializers.Serializer], instance: Any) -> dict[str, Any]:
    """``serializer_class(instance).data``, with the serializer's fields built once per thread."""
    return thread_serializer(serializer_class).to_representation(instance)
