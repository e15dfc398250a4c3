"""FID, KID and the classifier metrics of any two sets of digits: `mnistdiff fid A B`, `mnistdiff.fid(a, b)`.

A set is a .npy array of images (uint8, or float with its value range stated), a folder of 28x28 PNGs, the
name of an MNIST split (`mnist-test`, `mnist-train`, or its first N: `mnist-test:2000`), or, from Python, an
array or tensor. A is measured against B, the reference, exactly as `mnistdiff evaluate` measures a run's
samples against the test digits; an MNIST split as B reuses the cached reference features.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from .. import data
from ..errors import BadArgument, UserError

SPLIT = re.compile(r"mnist-(train|test)(?::(\d+))?")


def parse_range(text: str | tuple | None) -> tuple[float, float] | None:
    """"0,1" -> (0.0, 1.0): the values that map to black and white in a float set."""
    if text is None or isinstance(text, tuple):
        return text
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise BadArgument(f"--range {text!r} must be two numbers, black and white, e.g. --range 0,1 or "
                          "--range -1,1") from None
    if not low < high or not np.isfinite([low, high]).all():
        raise BadArgument(f"--range {text!r}: black ({low}) must be below white ({high}), both finite")
    return low, high


def to_uint8(images, value_range: tuple[float, float] | None, name: str) -> torch.Tensor:
    """(N, 28, 28) or (N, 1, 28, 28) images as uint8 (N, 28, 28); floats need their range."""
    a = images.numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if a.ndim == 4 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 3 or a.shape[1:] != (28, 28):
        raise BadArgument(f"{name} holds images of shape {tuple(a.shape)}; give (N, 28, 28) or (N, 1, 28, 28)")
    if len(a) < 2:
        raise BadArgument(f"{name} holds {len(a)} image(s); FID needs at least 2 on each side")
    if a.dtype == np.uint8:
        return torch.from_numpy(a.copy())
    if not np.issubdtype(a.dtype, np.floating) and not np.issubdtype(a.dtype, np.integer):
        raise BadArgument(f"{name} holds {a.dtype} values; give uint8 pixels or floats with --range")
    if value_range is None:
        raise BadArgument(f"{name} holds {a.dtype} values: say which values are black and white, e.g. "
                          "--range 0,1 (or -1,1, -0.5,0.5, 0,255)")
    if not np.isfinite(a).all():
        raise BadArgument(f"{name} holds non-finite values")
    low, high = value_range
    scaled = (a.astype(np.float64) - low) / (high - low) * 255.0
    return torch.from_numpy(np.clip(np.rint(scaled), 0, 255).astype(np.uint8))


def load(spec, value_range=None, *, data_dir=None, name: str = "A") -> tuple[torch.Tensor, str, tuple | None]:
    """(uint8 images, what they are, (split, count) when they are an MNIST split's first images)."""
    if not isinstance(spec, (str, Path)):
        return to_uint8(spec, value_range, name), f"{name}: an array", None
    m = SPLIT.fullmatch(str(spec))
    if m:
        split = data.load_split(m.group(1), data_dir)
        count = int(m.group(2)) if m.group(2) else len(split)
        if not 2 <= count <= len(split):
            raise BadArgument(f"{spec}: the {m.group(1)} split has {len(split)} images; ask for 2 to {len(split)}")
        return split.images[:count], f"the first {count} MNIST {m.group(1)} digits", (m.group(1), count)
    path = Path(spec)
    if not path.exists():
        raise UserError(f"{path} does not exist; give a .npy file, a folder of PNGs, or mnist-test / mnist-train")
    if path.is_dir():
        pngs = sorted(p for p in path.iterdir() if p.suffix.lower() == ".png" and p.is_file())
        if not pngs:
            raise UserError(f"{path} holds no .png files; give a folder of 28x28 PNG digits")
        return _pngs(pngs, path), f"{len(pngs)} PNGs of {path}", None
    if path.suffix.lower() != ".npy" or not path.is_file():
        raise UserError(f"{path} is neither a .npy file nor a folder of PNGs")
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise UserError(f"cannot read {path} as a .npy array ({str(e).splitlines()[0][:100]})") from None
    return to_uint8(array, value_range, str(path)), f"{len(array)} images of {path}", None


def _pngs(paths: list[Path], folder: Path) -> torch.Tensor:
    from PIL import Image, UnidentifiedImageError

    images = []
    for p in paths:
        try:
            with Image.open(p) as im:
                gray = np.asarray(im.convert("L"))
        except (UnidentifiedImageError, OSError) as e:
            raise UserError(f"cannot read {p} as an image ({str(e).splitlines()[0][:80]})") from None
        if gray.shape != (28, 28):
            raise UserError(f"{p} is {gray.shape[1]}x{gray.shape[0]}; every PNG of {folder} must be 28x28")
        images.append(gray)
    if len(images) < 2:
        raise UserError(f"{folder} holds one PNG; FID needs at least 2 images on each side")
    return torch.from_numpy(np.stack(images))


def fid(a, b="mnist-test", *, value_range=None, metrics: str = "all", cache=None, data_dir=None,
        batch_size: int = 64, runtime: str = "torch", progress: bool = False) -> dict:
    """Every metric of set A against reference set B (default: the 10,000 MNIST test digits), as
    `mnistdiff evaluate` writes them, with the protocol that made them."""
    from .evaluator import Evaluator

    value_range = parse_range(value_range)
    images_a, about_a, _ = load(a, value_range, data_dir=data_dir, name="A")
    images_b, about_b, split = load(b, value_range, data_dir=data_dir, name="B")
    real = dict(split=split[0], n_ref=split[1]) if split else dict(real=images_b)
    ev = Evaluator(metrics=metrics, cache=cache, data_dir=data_dir, batch_size=batch_size, progress=progress,
                   runtime=runtime, **real)
    result = ev.evaluate(images_a)
    result["protocol"] = ev.protocol()
    result["sets"] = {"A": about_a, "B": about_b}
    return result
