"""Forward processes: one contract, `Process` (base.py), for Gaussian noise (DDPM, EDM) and cold degradations,
and their registry. Imports only the shared modules and data."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import UserError
from .base import Process
from .cold import Averaging, ColdProcess, ColumnAveraging, GaussianBlur, RowAveraging
from .edm import EDMNoise
from .gaussian import GaussianNoise

__all__ = ["PROCESSES", "Process", "GaussianNoise", "EDMNoise", "ColdProcess", "Averaging", "RowAveraging",
           "ColumnAveraging", "GaussianBlur", "process_class", "build", "write_description"]

# --degradation name -> class; config.CHOICES["degradation"] is this dict's keys.
PROCESSES: dict[str, type[Process]] = {"gaussian": GaussianNoise, "edm": EDMNoise, "row-averaging": RowAveraging,
                                       "column-averaging": ColumnAveraging, "blur": GaussianBlur}


def process_class(name: str) -> type[Process]:
    if name not in PROCESSES:
        raise UserError(f"unknown degradation {name!r}; choose one of: {', '.join(PROCESSES)}")
    return PROCESSES[name]


def build(process_cfg) -> Process:
    """The process a ProcessConfig names."""
    return process_class(process_cfg.degradation).from_config(process_cfg)


def write_description(path: Path, process: Process) -> None:
    """Save what a process does (e.g. a random row order) where a reader of the run sees it."""
    description = process.describe()
    if description is not None:
        Path(path).write_text(json.dumps(description, indent=2) + "\n")
