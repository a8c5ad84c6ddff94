"""Serializer fields the API needs beyond DRF's: bounded ids and finite floats.

Both exist so that bad input is a 400, never a 500: DRF's IntegerField accepts integers the
database cannot store, and its FloatField lets ``float(10**400)`` raise OverflowError.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from django.utils import timezone
from rest_framework import serializers

MAX_BIGINT = 2**63 - 1


class IdField(serializers.IntegerField):
    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_BIGINT)
        super().__init__(**kwargs)


class FiniteFloatField(serializers.FloatField):
    default_error_messages = {"invalid": "A finite number is required."}

    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool):
            self.fail("invalid")
        try:
            value = float(data)
        except (TypeError, ValueError, OverflowError):
            self.fail("invalid")
        if not math.isfinite(value):
            self.fail("invalid")
        return super().to_internal_value(value)


class UserSummarySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()

    class Meta:
        ref_name = "UserSummary"


class AwareDateTimeField(serializers.DateTimeField):
    """An ISO 8601 date-time that states its offset (RFC 3339, as the schema says).

    DRF would read a naive time in the server's zone; for clinical timestamps sent by another
    system that guess can be hours off, so it is refused instead.
    """

    default_error_messages = {
        "naive": "Include a time-zone offset, e.g. 2025-01-31T09:30:00+01:00."
    }

    def enforce_timezone(self, value: Any) -> Any:
        if isinstance(value, dt.datetime) and timezone.is_naive(value):
            self.fail("naive")
        return super().enforce_timezone(value)


class StrictCharField(serializers.CharField):
    """Text that must arrive as a JSON string: DRF's CharField would turn ``0`` into ``"0"``."""

    default_error_messages = {"invalid": "A string is required."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)
