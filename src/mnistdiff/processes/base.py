"""The Process contract: what training, losses, samplers, starts and the report may ask of a forward process.
None of them asks which process it holds; a new process is one subclass and one entry in PROCESSES."""

from __future__ import annotations

import torch

from ..errors import UserError
from . import schedules


class Process:
    """x_t = degrade(x0, t, noise), and what the rest of the code needs to know. t is an integer step in 0..T for a
    discrete process (DDPM's schedule, the cold degradations), and a float in [0, 1] for EDM (T = 1), which
    maps it to its noise level sigma (edm.sigma_of)."""

    T: int
    stochastic: bool  # True when degrade() uses `noise` (then samplers start from noise, and the net may predict eps or v)
    default_sampler: str  # a samplers.SAMPLERS name, used when none is given
    default_start: str  # a starts.STARTS name, used when none is given
    # Which samplers serve it (samplers.Sampler.serves): "schedule" (a discrete noise schedule: ddpm,
    # ddim), "sigma" (continuous noise levels: heun, dpm++2m) or "cold" (Bansal et al.'s algorithms).
    family: str
    schedule: schedules.Schedule | None = None  # the discrete noise schedule of the "schedule" family; else None
    uses: frozenset[str] = frozenset({"T"})  # the ProcessConfig fields it reads (the report shows only those)

    @classmethod
    def from_config(cls, p) -> "Process":
        """The process a (validated) ProcessConfig describes."""
        raise NotImplementedError

    @classmethod
    def check_config(cls, p) -> None:
        """Refuse, with a one-line UserError, settings this process cannot run; nothing by default."""

    @classmethod
    def label(cls, p) -> str:
        """How the report names the process a ProcessConfig describes."""
        raise NotImplementedError

    def degrade(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """x0 (B, C, H, W), t (B,) in 0..T (integers; EDM: floats in [0, 1]) -> x_t; t = 0 returns x0 unchanged."""
        raise NotImplementedError

    def sample_t(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n training timesteps, uniform on 1..T (Ho et al. 2020, Algorithm 1)."""
        return torch.randint(1, self.T + 1, (n,), generator=generator)

    def coefficients(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(a_t, s_t) with x_t = a_t x0 + s_t eps, shaped (B, 1, 1, 1); None for a cold process."""
        return None

    def loss(self, net, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, *, prediction: str, norm: str,
             min_snr: float = 0.0) -> torch.Tensor:
        """The per-image training loss at times t (losses.diffusion_loss unless the process has its own)."""
        from .losses import diffusion_loss

        return diffusion_loss(net, self, x0, t, noise, prediction=prediction, norm=norm, min_snr=min_snr)

    def sampling_net(self, net, prediction: str):
        """The net as this process's samplers call it: eps-predicting for a discrete noise schedule
        (predictions.for_sampling), the restorer itself for cold processes."""
        from .predictions import for_sampling

        return for_sampling(net, prediction, self)

    def times(self, n: int) -> torch.Tensor:
        """n evenly spaced times from 0 to T as degrade() takes them: the figures' columns."""
        return torch.linspace(0, self.T, n).round().long()

    @torch.no_grad()
    def estimate_x0(self, net, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The x0 a sampling net (sampling_net) estimates from x_t at times t (B,), in one call: from its eps
        for a noise process, its output for a cold one."""
        out = net(x_t, t.float() / self.T).float()
        if not self.stochastic:
            return out
        a, s = self.coefficients(t)
        from .predictions import to_x0

        return to_x0("eps", out, x_t, a, s)

    def describe(self) -> dict | None:
        """What a reader of the run needs to see (e.g. a random row order), saved as RUN/degradation.json."""
        return None

    # Fitted unconditional starts (starts.py) describe D(x0, T) by a few numbers per image.
    def final_values(self, x0: torch.Tensor) -> torch.Tensor:
        """(B, 1, 28, 28) -> (B, k): the k numbers that determine D(x0, T)."""
        raise self._no_final_values()

    def from_final_values(self, v: torch.Tensor) -> torch.Tensor:
        """(B, k) -> the fully degraded images they describe."""
        raise self._no_final_values()

    def final_values_key(self) -> dict:
        """What the final values depend on: the cache key of a fitted start."""
        raise self._no_final_values()

    def _no_final_values(self) -> UserError:
        return UserError(f"fitted starts (uniform, gmm) need a process whose fully degraded images are described "
                         f"by a few values; {type(self).__name__} has none: use --start normal or conditional")


def _bcast(v: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return v.to(t.device)[t].view(-1, 1, 1, 1)
