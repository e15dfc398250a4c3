"""How a run is to be sampled, checked once: sampler, start, sampler options, digits and guidance weight against the
run's config and process, with the run's defaults filled in. generate, `mnistdiff evaluate` and the guidance sweep
all go through `resolve`, so a setting is refused with the same message wherever it is given."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import config as C
from ..errors import UserError
from ..processes import starts
from . import guidance as G
from . import samplers


@dataclass(frozen=True)
class SamplingSpec:
    sampler: str
    start: str
    sampler_options: dict  # only the options given; the others keep the sampler's defaults
    digits: torch.Tensor | None  # one digit per image for a conditional run (guidance.labels); None: no label
    guidance: float

    @property
    def tag(self) -> str:
        """The sampler and its options as result names spell them, e.g. ddim-steps50-clipTrue."""
        return self.sampler + "".join(f"-{k}{v}" for k, v in self.sampler_options.items())


def resolve(cfg: C.Config, process, n: int, *, sampler: str | None = None, start: str | None = None,
            sampler_options: dict | None = None, digits: torch.Tensor | None = None,
            guidance: float = 0.0) -> SamplingSpec:
    """The SamplingSpec of n images of a run, or a one-line UserError saying what to change."""
    G.check(cfg.model.conditional, digits, guidance)
    if digits is not None and len(digits) != n:
        raise UserError(f"{len(digits)} digits given for {n} images; give one per image (guidance.labels)")
    sampler = sampler or samplers.default_sampler(cfg)
    start = start or starts.default_start(cfg)
    if sampler not in samplers.SAMPLERS:
        raise UserError(f"unknown sampler {sampler!r}; choose one of: {', '.join(samplers.SAMPLERS)}")
    if start not in starts.STARTS:
        raise UserError(f"unknown start {start!r}; choose one of: {', '.join(starts.STARTS)}")
    samplers.check_compatible(sampler, process)
    return SamplingSpec(sampler, start, samplers.check_options(sampler, sampler_options, process), digits, guidance)
