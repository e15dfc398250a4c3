"""Figures for the run directory, read from its files only (so they can be rebuilt any time)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI; set before pyplot is imported
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402


def grid_array(images_u8: torch.Tensor | np.ndarray, nrow: int, pad: int = 2) -> np.ndarray:
    """(N, H, W) uint8 -> one (rows*(H+pad)+pad, nrow*(W+pad)+pad) uint8 mosaic on a grey border."""
    imgs = np.asarray(images_u8, dtype=np.uint8)
    n, h, w = imgs.shape
    rows = -(-n // nrow)
    out = np.full((rows * (h + pad) + pad, nrow * (w + pad) + pad), 128, np.uint8)
    for i, img in enumerate(imgs):
        r, c = divmod(i, nrow)
        out[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = img
    return out


def save_grid(images_u8, path: Path, nrow: int = 4, scale: int = 3) -> None:
    """PNG grid, upscaled with nearest neighbour so digits stay crisp in a viewer."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = grid_array(images_u8, nrow)
    img = Image.fromarray(arr, mode="L")
    img.resize((img.width * scale, img.height * scale), Image.NEAREST).save(path)


def loss_figure(rows: list[dict], path: Path, title: str | None = None) -> None:
    """Per-iteration loss with each epoch's mean overlaid (the report's Figs 1.2, 1.7)."""
    it = [(r["step"], r["loss"]) for r in rows if r.get("type") == "iter"]
    if not it:
        return
    ep = [r for r in rows if r.get("type") == "epoch"]
    steps_per_epoch = ep[0]["step"] if ep else max(s for s, _ in it)
    fig, ax = plt.subplots(figsize=(7, 4))
    s, l = np.array(it).T
    ax.plot(s / steps_per_epoch, l, color="tab:green", lw=0.5, alpha=0.7, label="loss per iteration")
    if ep:
        ax.plot([r["epoch"] for r in ep], [r["loss_mean"] for r in ep], "k--o", ms=3, lw=1.2,
                label="mean loss of the epoch")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss (per-pixel, per image)")
    ax.set_yscale("log")
    ax.set_title(title or "Training loss")
    ax.legend()
    ax.grid(alpha=0.3)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def contrast_stretch(x: torch.Tensor) -> torch.Tensor:
    """Each image's own min..max -> 0..255, for display only (the report's degraded panels: averaged
    MNIST rows are nearly black). Constant images stay mid-grey rather than dividing by zero."""
    x = x.detach().float().flatten(-2)
    lo, hi = x.min(-1, keepdim=True).values, x.max(-1, keepdim=True).values
    span = hi - lo
    y = torch.where(span > 1e-8, (x - lo) / span.clamp_min(1e-8), torch.full_like(x, 0.5))
    return (y * 255).round().to(torch.uint8).unflatten(-1, (28, 28))


def _save(fig, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def panels_figure(panels: list[tuple[str, torch.Tensor]], path: Path, nrow: int = 4,
                  title: str | None = None) -> None:
    """Side-by-side grids of uint8 (N, 28, 28) images, one titled panel each (the report's Figs 2.2, 2.6)."""
    fig, axes = plt.subplots(1, len(panels), figsize=(2.8 * len(panels), 3.2))
    for ax, (name, images) in zip(np.atleast_1d(axes), panels):
        ax.imshow(grid_array(images, nrow), cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(name, fontsize=10)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    _save(fig, path)


def strip_figure(rows: list[tuple[str, list]], path: Path, labels: list[str], title: str | None = None) -> None:
    """Rows of uint8 (28, 28) images along t, one labelled row each (a digit along a trajectory);
    a None entry leaves its cell grey. One mosaic, one imshow: a subplot per cell is slow to draw."""
    cells = []
    for _, images in rows:
        cells += [np.full((28, 28), 128, np.uint8) if im is None else np.asarray(im) for im in images]
        cells += [np.full((28, 28), 128, np.uint8)] * (len(labels) - len(images))
    mosaic = grid_array(np.stack(cells), nrow=len(labels))
    fig, ax = plt.subplots(figsize=(0.5 * len(labels) + 1.2, 0.55 * len(rows) + 0.8))
    ax.imshow(mosaic, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    ax.set_yticks([2 + 30 * i + 14 for i in range(len(rows))], [name for name, _ in rows], fontsize=7)
    ax.set_xticks([2 + 30 * j + 14 for j in range(len(labels))], labels, fontsize=6, rotation=90)
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    if title:
        ax.set_title(title, fontsize=9)
    _save(fig, path)
