"""The ``pqeval`` command line: parse -> call the library -> render (:mod:`pqeval.render`).

:mod:`.app` holds the app and its error handling, :mod:`.options` the options shared by several
commands; each other module registers a group of commands on the app.
"""

from . import models, score, study  # noqa: F401  (each registers its commands)
from .app import app

__all__ = ["app", "main"]


def main() -> None:
    """Console entry point (``pqeval``); errors are handled inside the app."""
    app()
