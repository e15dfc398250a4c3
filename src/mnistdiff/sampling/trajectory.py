"""The sampling process as pictures (`mnistdiff sample --trajectory FILE`): the first few samples at every step,
the current x_k above the net's estimate of x0 from it, as an animated GIF or a PNG strip of chosen steps.

A Recorder hangs on the samplers' callback (steps.Callback), so every sampler and process gives one. Frames are
drawn with Pillow, as the sample grids are; nothing here draws a chart.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from .. import data, files
from ..errors import UserError

SHOWN = 8  # samples in a trajectory: one column each
FRAMES = 40  # a GIF shows at most this many steps (evenly spaced, first and last kept), then the result
STRIP = 10  # steps in a PNG strip when none are chosen
SCALE = 2  # pixels per MNIST pixel: a 28-px digit is too small to follow in an animation
SUFFIXES = (".gif", ".png")


def check_path(path) -> None:
    if Path(path).suffix.lower() not in SUFFIXES:
        raise UserError(f"--trajectory {path} must name a .gif (an animation) or a .png (a strip of steps)")


SPREAD = 0.35  # a displayed state's largest standard deviation: a clean digit's (~0.31 in data units) passes as is


def display(x: torch.Tensor) -> np.ndarray:
    """uint8 images of a sampler's state. An image more spread than a digit (DDPM's x_T ~ N(0, 1), EDM's
    x0 + sigma n at sigma 80, both far outside the data range [-0.5, 0.5]) is scaled down to SPREAD, so its
    noise shows instead of saturating to black and white."""
    x = x.detach().float()[:, 0]
    scale = (x.flatten(1).std(dim=1) / SPREAD).clamp(min=1.0)
    return data.to_uint8(x / scale[:, None, None]).numpy()


class Recorder:
    """callback(k, x_k, x0_hat) for the first `shown` images of one batch: every step as uint8 pairs."""

    def __init__(self, shown: int = SHOWN):
        self.shown = shown
        self.steps: list[tuple[int, np.ndarray, np.ndarray]] = []

    def __call__(self, k: int, x: torch.Tensor, x0_hat: torch.Tensor) -> None:
        self.steps.append((int(k), display(x[:self.shown]), data.to_uint8(x0_hat[:self.shown].float()[:, 0]).numpy()))


def chosen(steps: list, ks: list[int] | None, count: int) -> list:
    """The recorded steps whose k is in ks (every one must have been recorded), else `count` evenly spaced ones."""
    if ks is not None:
        have = {step[0]: step for step in steps}
        missing = [k for k in ks if k not in have]
        if missing:
            raise UserError(f"--trajectory-steps {','.join(map(str, missing))}: this sampler's steps are "
                            f"{_span(list(have))} (k counts down to 1)")
        return [have[k] for k in ks]
    index = np.unique(np.linspace(0, len(steps) - 1, min(count, len(steps))).round().astype(int))
    return [steps[i] for i in index]


def _span(ks: list[int]) -> str:
    if len(ks) <= 12:
        return ", ".join(map(str, ks))
    return f"{', '.join(map(str, ks[:6]))}, ..., {', '.join(map(str, ks[-3:]))}"


def _column(images: np.ndarray) -> np.ndarray:
    """(m, 28, 28) uint8 -> one row of m digits with 2-px gaps."""
    return files.grid_array(torch.as_tensor(images), nrow=len(images))


def _labelled(array: np.ndarray, label: str) -> Image.Image:
    image = Image.fromarray(array, mode="L").resize((array.shape[1] * SCALE, array.shape[0] * SCALE), Image.NEAREST)
    canvas = Image.new("L", (image.width, image.height + 14), 0)
    canvas.paste(image, (0, 14))
    ImageDraw.Draw(canvas).text((2, 1), label, fill=255)
    return canvas


def frame(k: int, x: np.ndarray, x0_hat: np.ndarray) -> Image.Image:
    """One step: x_k's row above x0_hat's, headed by k (k = 0: the result)."""
    rows = np.concatenate([_column(x), _column(x0_hat)], axis=0)
    return _labelled(rows, f"k = {k}: x_k (top), the net's x0 estimate (bottom)" if k else "k = 0: the samples")


def write(record: Recorder, path, final: torch.Tensor, ks: list[int] | None = None) -> Path:
    """The recorded steps and the final images (uint8) as a GIF or, for .png, a strip: a column per chosen step,
    each sample's x_k above its x0 estimate, the final images in the last column."""
    path = Path(path)
    check_path(path)
    if not record.steps:
        raise UserError("the sampler reported no steps to draw")
    final = final[:record.shown].numpy()
    if path.suffix.lower() == ".gif":
        shown = chosen(record.steps, ks, FRAMES)
        frames = [frame(k, x, x0) for k, x, x0 in shown] + [frame(0, final, final)]
        durations = [80] * len(shown) + [2000]  # the result stays on screen
        buffer = _gif_bytes(frames, durations)
    else:
        shown = chosen(record.steps, ks, STRIP)
        columns = [np.concatenate([x[:, None], x0[:, None]], axis=1).reshape(-1, 28, 28) for _, x, x0 in shown]
        columns.append(np.repeat(final, 2, axis=0))
        tiles = np.stack(columns, axis=1).reshape(-1, 28, 28)  # row-major: sample pairs down, steps across
        grid = files.grid_array(torch.as_tensor(tiles), nrow=len(columns))
        label = "k = " + ", ".join(str(k) for k, _, _ in shown) + ", then the samples (x_k above its x0 estimate)"
        buffer = files.png_bytes(_labelled(grid, label))
    files.atomic_write_bytes(path, buffer, new=True)
    return path


def _gif_bytes(frames: list[Image.Image], durations: list[int]) -> bytes:
    import io

    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:], duration=durations, loop=0,
                   optimize=True)
    return out.getvalue()

