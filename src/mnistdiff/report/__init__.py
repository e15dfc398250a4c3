"""The report and every plot: build (the report from run directories), readers (what a run's files say and how
they are named), render (HTML and Markdown), figures, cold (Section 2's figures). Imports any stage below it."""

from .build import write_report

__all__ = ["write_report"]
