"""Which training images, in which order: a seeded subset, and each epoch's permutation from (seed, epoch) alone,
so a resumed run replays the order an uninterrupted one would have seen."""

from __future__ import annotations

import torch


def subset_indices(n_total: int, subset: int | None, seed: int) -> torch.Tensor:
    """A deterministic subset of the indices (all of them when subset is None or 0)."""
    if not subset or subset >= n_total:
        return torch.arange(n_total)
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(n_total, generator=g)[:subset].sort().values


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The data order of one epoch: a function of (seed, epoch) only, so resume needs no state."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g)
