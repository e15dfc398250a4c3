"""Class-conditional sampling: which digits to draw, and classifier-free guidance (Ho & Salimans 2022).

Guidance wraps the net, so every sampler (DDPM, DDIM, Heun, DPM-Solver++, cold Algorithms 1 and 2)
is guided without knowing it: out = (1 + w) net(x, t, y) - w net(x, t, "no label"). Guiding the net's
own output is guiding eps: the eps of an x0- or v-net (predictions.to_eps) and EDM's denoiser are affine
in the output at a fixed x_t, so the same weights carry over. w = 0 is plain conditional sampling.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from ..errors import BadArgument, UserError, WrongType
from ..nets import N_DIGITS, NULL_LABEL

Digits = int | str | list[int] | tuple[int, ...] | None
MAX_GUIDANCE = 100.0


def labels(digit: Digits, n: int) -> torch.Tensor | None:
    """The digit of each of n images: None (no label), one digit, a list cycled over the images, or
    "all" (n / 10 of each, in order: the rows of a 10-row grid). Strings as the CLI gives them: "7",
    "3,5,7", "all"."""
    if digit is None:
        return None
    if isinstance(digit, str):
        text = digit.strip().lower()
        if text == "all":
            if n % N_DIGITS:
                raise UserError(f"--digit all draws one row per digit: the sample count must be a multiple of 10 "
                                f"(got {n}), e.g. -n 100")
            return torch.arange(N_DIGITS).repeat_interleave(n // N_DIGITS)
        if not re.fullmatch(r"[0-9](,[0-9])*", text.replace(" ", "")):  # ASCII digits only: str.isdigit takes any
            raise BadArgument(f"--digit {digit!r} is not a digit 0-9, a comma-separated list of them or 'all'; "
                              "e.g. --digit 7, --digit 3,5 or --digit all")
        digit = [int(d) for d in text.replace(" ", "").split(",")]
    if not isinstance(digit, (int, list, tuple)) or isinstance(digit, bool):
        raise WrongType(f"digit must be an int 0-9, a list of them, or 'all', not {type(digit).__name__} {digit!r}")
    ds = [digit] if isinstance(digit, int) else list(digit)
    if any(isinstance(d, bool) or not isinstance(d, int) for d in ds):
        raise WrongType(f"digit {digit!r} must be an int 0-9, a list of them, or 'all'; e.g. digit=7")
    if not ds or any(not 0 <= d < N_DIGITS for d in ds):
        raise BadArgument(f"digit {digit!r} must be 0-9, a list of them, or 'all'; e.g. --digit 7")
    return torch.tensor(ds).repeat(-(-n // len(ds)))[:n]


def file_tag(digit: Digits, guidance: float) -> str:
    """The part of a sample or evaluation file name that says which digits and weight: -digit3_5-w2."""
    if digit is None:
        return ""
    return f"-digit{str(digit).replace(',', '_').replace(' ', '')}-w{guidance:g}"


def check(conditional: bool, digits: torch.Tensor | None, guidance: float) -> None:
    """Refuse, before any work, what the run cannot do."""
    if not isinstance(guidance, (int, float)) or not 0 <= guidance <= MAX_GUIDANCE:
        raise UserError(f"guidance {guidance!r} must be a number in [0, {MAX_GUIDANCE:g}] (0: plain conditional "
                        "sampling), e.g. --guidance 2")
    if not conditional and (digits is not None or guidance):
        raise UserError("this run was trained without labels, so it cannot draw a given digit; train one with "
                        "--conditional (e.g. --preset ddpm-unet)")
    if guidance and digits is None:
        raise UserError("--guidance needs the digits to guide towards; pass --digit (e.g. --digit 7)")


class Guided(nn.Module):
    """net(x, t) -> the guided output for fixed labels y (one per image of the batch)."""

    def __init__(self, net, y: torch.Tensor, w: float):
        super().__init__()
        self.net, self.y, self.w = net, y, float(w)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        y = self.y.to(x.device)
        if self.w == 0:
            return self.net(x, t, y)
        # One call on the doubled batch: the conditional and the "no label" outputs side by side.
        both = self.net(torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, torch.full_like(y, NULL_LABEL)]))
        cond, uncond = both.float().chunk(2)
        return cond + self.w * (cond - uncond)
