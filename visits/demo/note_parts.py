"""What the demo knows about how one condition is written up, in one language."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ConditionText:
    complaints: tuple[str, ...]
    symptoms: tuple[str, ...]  # associated symptoms
    negatives: tuple[str, ...]  # things the patient denies
    durations: tuple[str, ...]
    exam: tuple[str, ...]
    plan: tuple[str, ...]
    extra: tuple[str, ...] = ()
