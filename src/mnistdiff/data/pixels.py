"""The model's pixel range, the one statement of it: uint8 digits in 0..255 <-> the model's [-0.5, 0.5]."""

from __future__ import annotations

import torch

DATA_RANGE = 0.5  # the model sees pixels in [-DATA_RANGE, DATA_RANGE], the seed's scaling


def to_model_range(images_u8: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 28, 28) -> float (N, 1, 28, 28) in [-0.5, 0.5], the seed's scaling."""
    return images_u8.unsqueeze(1).float().div_(255.0).sub_(DATA_RANGE)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Model range [-0.5, 0.5] (any shape) -> uint8 pixels, clamped."""
    return ((x.detach().float() + DATA_RANGE).clamp_(0, 1) * 255).round_().to(torch.uint8)
