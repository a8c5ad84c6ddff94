"""The one way the demo turns a uniform draw into a choice, so every module draws alike."""

from __future__ import annotations


def pick(options: tuple[str, ...], u: float) -> str:
    """The option a uniform draw ``u`` in [0, 1) falls on (each equally likely)."""
    return options[int(u * len(options))]
