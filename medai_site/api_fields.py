"""Serializer fields the API needs beyond DRF's: bounded ids and finite floats.

Both exist so that bad input is a 400, never a 500: DRF's IntegerField accepts integers the
database cannot store, and its FloatField lets ``float(10**400)`` raise OverflowError.
"""

from __future__ import annotations

import math
from typing import Any

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
