"""pqeval's own exceptions: every failure pqeval reports on purpose is one of these.

The CLI turns them into a one-line message and a non-zero exit code without a traceback.
"""

from __future__ import annotations


class PqevalError(Exception):
    """Base class; ``str(err)`` is a complete one-line message naming the file and the problem."""

    exit_code = 2


class AudioError(PqevalError):
    """An input recording cannot be used (missing, unreadable, empty, non-finite, too short)."""


class ModelError(PqevalError):
    """A model file is missing, unreadable, tampered with, or of the wrong kind."""


class UsageError(PqevalError):
    """Options that do not fit together, or an output path that cannot be written."""
