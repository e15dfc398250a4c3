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
