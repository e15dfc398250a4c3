"""Figures for the run directory, read from its files only (so they can be rebuilt any time)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI; set before pyplot is imported
# Loaded with this module, so that a Ctrl-C during training cannot land inside its C initialisation.
import matplotlib.backends.backend_agg  # noqa: E402,F401
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


def eval_figures(rows: list[dict], figures: Path) -> None:
    """FID, KID and IS of the per-epoch 'eval' rows against epoch (the report's Figs 1.5, 1.6), and the
    class histogram of the latest one."""
    ev = [r for r in rows if r.get("type") == "eval"]
    if not ev:
        return
    figures = Path(figures)
    figures.mkdir(parents=True, exist_ok=True)
    epochs = [r["epoch"] for r in ev]
    panels = [("fid", "Inception FID", None), ("fd_classifier", "Frechet distance, classifier features", None),
              ("kid", "Inception KID", "kid_std"), ("inception_is", "Inception IS", "inception_is_std"),
              ("classifier_is", "classifier IS", "classifier_is_std")]
    for stem, keys in (("fid", ("fid", "fd_classifier")), ("kid", ("kid",)), ("is", ("inception_is", "classifier_is"))):
        shown = [p for p in panels if p[0] in keys and all(p[0] in r for r in ev)]
        if not shown:
            continue
        fig, axes = plt.subplots(1, len(shown), figsize=(4.5 * len(shown), 3.6), squeeze=False)
        for ax, (key, label, err) in zip(axes[0], shown):
            ax.errorbar(epochs, [r[key] for r in ev], yerr=[r[err] for r in ev] if err else None,
                        fmt="-o", ms=3, capsize=2)
            ax.set_xlabel("epoch")
            ax.set_ylabel(label)
            ax.set_title(f"{label} of {ev[-1]['n']} samples per epoch", fontsize=9)
            ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(figures / f"{stem}.png", dpi=110)
        plt.close(fig)
    class_histogram_figure(ev[-1]["class_histogram"], figures / "classes.png",
                           title=f"Classes of {ev[-1]['n']} samples at epoch {ev[-1]['epoch']} "
                                 f"(imbalance {ev[-1]['class_imbalance']:.3f})")


def class_histogram_figure(histogram: list[int], path: Path, title: str | None = None) -> None:
    """Bar chart of how many generated digits the MNIST classifier puts in each class (bias shows here)."""
    n = sum(histogram)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.bar(range(10), [c / n for c in histogram], color="tab:blue")
    ax.axhline(0.1, color="k", ls="--", lw=1, label="uniform")
    ax.set_xticks(range(10))
    ax.set_xlabel("digit predicted by the MNIST classifier")
    ax.set_ylabel("fraction of samples")
    ax.set_title(title or f"Classes of {n} samples", fontsize=9)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
