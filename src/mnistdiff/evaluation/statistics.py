"""Sample-quality statistics as functions of features only: FID (Heusel et al. 2017), KID (Binkowski et al.
2018), IS (Salimans et al. 2016), the class histogram, and two pixel statistics of the samples themselves. FID
and KID are computed by torchmetrics, fed the precomputed features through `Given`, so cached reference
features and freshly extracted ones go through exactly the same code.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import UserError


class Given(nn.Module):
    """Hands precomputed feature rows to a torchmetrics metric in place of a network."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


def _check(features: torch.Tensor, name: str, minimum: int = 2) -> torch.Tensor:
    if features.dim() != 2 or features.shape[0] < minimum:
        raise UserError(f"{name} needs at least {minimum} feature rows, got shape {tuple(features.shape)}; "
                        "evaluate more images (-n)")
    return features.double()


# The features given are all there is: under torchrun, rank 0 holds every rank's gathered samples and
# computes alone, so a torchmetrics metric must not try to sync with ranks that are not computing it
# (its default syncs whenever torch.distributed is initialised: a deadlock in multi-process training).
LOCAL = {"sync_on_compute": False}


def frechet_distance(real: torch.Tensor, fake: torch.Tensor) -> float:
    """FID: ||mu_r - mu_f||^2 + Tr(S_r + S_f - 2 (S_r S_f)^1/2) of Gaussians fitted to the features."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    real, fake = _check(real, "FID"), _check(fake, "FID")
    metric = FrechetInceptionDistance(feature=Given(real.shape[1]), **LOCAL)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    return max(float(metric.compute()), 0.0)  # round-off can give -1e-9 for identical sets


FID_COUNTS = (500, 1000, 2000, 5000)  # the per-epoch count (500), the DDPM final (2,000) and points between


def fid_by_count(real: torch.Tensor, fake: torch.Tensor, counts=FID_COUNTS, seed: int = 0) -> dict[str, float]:
    """FID of nested random subsets of the samples (the first c of one fixed permutation) for each count c below
    their number: how much of an FID is its sample count. A prefix of the samples themselves would not do: a
    conditional evaluation draws its digits in order."""
    order = torch.randperm(fake.shape[0], generator=torch.Generator().manual_seed(seed))
    return {str(c): frechet_distance(real, fake[order[:c]]) for c in counts if c < fake.shape[0]}


def kid_subset_size(n_real: int, n_fake: int) -> int:
    """Binkowski et al.'s 1000, or half the smaller set so that subsets differ and the std means something."""
    return max(2, min(1000, min(n_real, n_fake) // 2))


def kernel_inception_distance(real: torch.Tensor, fake: torch.Tensor, *, subsets: int = 100,
                              subset_size: int | None = None, seed: int = 0) -> tuple[float, float]:
    """KID: unbiased MMD^2 with the cubic kernel (x.y/d + 1)^3, mean and std over random subsets."""
    import warnings

    from torchmetrics.image.kid import KernelInceptionDistance

    real, fake = _check(real, "KID", 4), _check(fake, "KID", 4)
    size = subset_size or kid_subset_size(real.shape[0], fake.shape[0])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
        metric = KernelInceptionDistance(feature=Given(real.shape[1]), subsets=subsets, subset_size=size, **LOCAL)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    with torch.random.fork_rng():  # subsets come from the global RNG: seed it without disturbing callers
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return float(mean), float(std)


def inception_score(logits: torch.Tensor, *, splits: int = 10, seed: int = 0) -> tuple[float, float]:
    """IS = exp E_x KL(p(y|x) || p(y)), mean and std over `splits` random parts (Salimans et al. 2016)."""
    import warnings

    from torchmetrics.image.inception import InceptionScore

    logits = _check(logits, "IS", splits)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
        metric = InceptionScore(feature=Given(logits.shape[1]), splits=splits, **LOCAL)
        metric.update(logits)
        warnings.filterwarnings("ignore", message=".*degrees of freedom.*")  # splits=1: std is nan
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            mean, std = metric.compute()
    return float(mean), float(std)


def class_histogram(logits: torch.Tensor) -> list[int]:
    """How many images the classifier assigns to each digit 0-9."""
    return torch.bincount(logits.argmax(1), minlength=10).tolist()


def class_imbalance(histogram: list[int]) -> float:
    """Total variation distance of the predicted classes from uniform: 0 balanced, 0.9 one digit only."""
    n = sum(histogram)
    return 0.5 * sum(abs(c / n - 1 / len(histogram)) for c in histogram) if n else float("nan")


# -- pixel statistics a reader sees at a glance (background haze, saturation), no features needed ----------------

SATURATED_INK = 0.5  # no MNIST test digit has more than 33% of its pixels at >= 128


def background_level(images_u8: torch.Tensor, rows: int = 4) -> float:
    """Mean grey level of the top `rows` rows, which are background in real digits (test set: 1.23):
    speckle and haze on the background raise it."""
    return images_u8[:, :rows].float().mean().item()


def saturated_share(images_u8: torch.Tensor) -> float:
    """Share of samples with more than half their pixels at >= 128: saturated noise, not a digit."""
    ink = (images_u8 >= 128).float().flatten(1).mean(1)
    return (ink > SATURATED_INK).float().mean().item()
