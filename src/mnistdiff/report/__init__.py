"""`mnistdiff report` and every figure: build (the report from run directories), labels (what a run's
config and metrics are called), render (HTML and Markdown), figures (all plots and image grids, also
those of the run directory)."""

from .build import write_report

__all__ = ["write_report"]
