"""Errors raised by the engine.

Every error a user can cause with bad input (a missing file, an unknown column, a target with one
class) is a :class:`DataError`; the command line turns it into one line on stderr and exit code 2.
"""

from __future__ import annotations


class EngineError(Exception):
    """Base class of every error the engine raises on purpose."""


class DataError(EngineError, ValueError):
    """The input data cannot be used as given (the message says why, in one line)."""
