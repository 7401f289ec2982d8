"""The pqeval study: degradations, the end-to-end pipeline, statistics, figures and the report.

Public API: :func:`run_study` / :class:`StudyResult` (:mod:`.pipeline`) and :func:`write_report` /
:class:`ReportResult` (:mod:`.report`). The degradations are :mod:`pqeval.study.degrade`.

Imports are lazy: ``from pqeval.study import write_report`` loads neither the scoring stack
(ONNX Runtime) nor matplotlib (loaded only when a figure is drawn).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .pipeline import StudyResult, run_study
    from .report import ReportResult, write_report

_WHERE = {"run_study": "pipeline", "StudyResult": "pipeline", "write_report": "report", "ReportResult": "report"}
__all__ = ["ReportResult", "StudyResult", "run_study", "write_report"]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
