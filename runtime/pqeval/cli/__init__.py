"""The ``pqeval`` command line: parse -> call the library -> render (:mod:`pqeval.render`).

:mod:`.app` holds the app and its error handling, :mod:`.options` the options shared by several
commands; each other module registers a group of commands on the app. The console script is
:func:`pqeval.__main__.main`.
"""

from . import batch, engines, merge, models, score, study  # noqa: F401  (each registers its commands)
from .app import app

__all__ = ["app"]
