"""The report's comparison figures, drawn from run-directory data and returned as PNG bytes.

Each function takes plain rows (as read from metrics.jsonl / eval JSON) keyed by run name, so a
figure can be rebuilt from the files alone. Runs without the data are left out of the plot and
named in the caption by the caller; a figure with no data at all is never drawn.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI; set before pyplot is imported
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

DPI = 110


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=DPI)
    plt.close(fig)
    return buf.getvalue()


def _colors(names):
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return {n: cycle[i % len(cycle)] for i, n in enumerate(names)}


def activation_figure() -> bytes:
    """Fig 1.1: GELU (the seed CNN's activation) against ReLU and ELU."""
    import torch

    x = torch.linspace(-4, 4, 401)
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, fn in (("GELU", torch.nn.functional.gelu), ("ReLU", torch.relu), ("ELU", torch.nn.functional.elu)):
        ax.plot(x.numpy(), fn(x).numpy(), lw=1.8, label=name)
    ax.axhline(0, color="grey", lw=0.6)
    ax.axvline(0, color="grey", lw=0.6)
    ax.set_xlabel("input x (dimensionless)")
    ax.set_ylabel("activation f(x) (dimensionless)")
    ax.set_title("Activation functions: GELU(x) = x Φ(x), ReLU, ELU (α = 1)")
    ax.legend()
    ax.grid(alpha=0.3)
    return _png(fig)


def loss_overlay(rows_by_run: dict[str, list[dict]], ylabel: str = "training loss (per pixel)") -> bytes:
    """Figs 1.2, 1.7, 2.3 overlaid: per-iteration loss (thin) and each epoch's mean (dashed, markers)."""
    colors = _colors(rows_by_run)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, rows in rows_by_run.items():
        it = np.array([(r["step"], r["loss"]) for r in rows if r.get("type") == "iter"], dtype=float)
        ep = [r for r in rows if r.get("type") == "epoch"]
        steps_per_epoch = ep[0]["step"] if ep else max(it[:, 0])
        ax.plot(it[:, 0] / steps_per_epoch, it[:, 1], color=colors[name], lw=0.4, alpha=0.35)
        if ep:
            ax.plot([r["epoch"] for r in ep], [r["loss_mean"] for r in ep], "--o", color=colors[name], ms=3.5,
                    lw=1.4, label=f"{name} (epoch mean)")
        else:
            ax.plot([], [], color=colors[name], label=f"{name} (iterations; no epoch finished)")
    ax.set_xlabel("epoch (iterations scaled by steps per epoch)")
    ax.set_ylabel(ylabel)
    ax.set_yscale("log")
    ax.set_title("Training loss per iteration (thin) and per-epoch mean (dashed)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    return _png(fig)


def metric_vs_epoch(series: dict[str, list[tuple[int, float, float | None]]], *, ylabel: str, title: str) -> bytes:
    """Figs 1.5, 1.6, 1.10, 1.11, 2.4, 2.5 overlaid: (epoch, value, std or None) per run."""
    colors = _colors(series)
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, points in series.items():
        points = sorted(points)
        e = [p[0] for p in points]
        v = np.array([p[1] for p in points], dtype=float)
        ax.plot(e, v, "-o", color=colors[name], ms=4, label=name)
        if all(p[2] is not None for p in points):
            s = np.array([p[2] for p in points], dtype=float)
            ax.fill_between(e, v - s, v + s, color=colors[name], alpha=0.15)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)


def class_histograms(hists: dict[str, list[float]], *, title: str) -> bytes:
    """Share of generated digits per class as grouped bars; the dashed line is a uniform 10%."""
    colors = _colors(hists)
    k = len(hists)
    width = 0.8 / max(k, 1)
    fig, ax = plt.subplots(figsize=(8, 4))
    for i, (name, counts) in enumerate(hists.items()):
        c = np.asarray(counts, dtype=float)
        share = 100 * c / max(c.sum(), 1)
        ax.bar(np.arange(len(c)) - 0.4 + width * (i + 0.5), share, width, color=colors[name],
               label=f"{name} (n = {int(c.sum())})")
    ax.axhline(10, color="black", ls="--", lw=1, label="uniform (10%)")
    ax.set_xticks(range(10))
    ax.set_xlabel("digit class assigned by the MNIST classifier")
    ax.set_ylabel("share of generated images (%)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    return _png(fig)
