"""Starting points x_T: distributions of fully degraded images.

For Gaussian noise that is N(0, I). Cold degradations add theirs (conditional on real test images,
or fitted distributions for unconditional generation) to STARTS.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch


def standard_normal(degradation, n: int, *, generator: torch.Generator, **_) -> torch.Tensor:
    return torch.randn((n, 1, 28, 28), generator=generator)


# name -> fn(degradation, n, *, generator, run, data_dir) -> x_T (n, 1, 28, 28)
STARTS: dict[str, Callable] = {"normal": standard_normal}
DEFAULT_START = {"gaussian": "normal"}


def default_start(cfg) -> str:
    return DEFAULT_START.get(cfg.process.degradation, "normal")


def draw(name: str, degradation, n: int, *, generator: torch.Generator, run: Path | None = None,
         data_dir=None) -> torch.Tensor:
    return STARTS[name](degradation, n, generator=generator, run=run, data_dir=data_dir)
