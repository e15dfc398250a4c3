"""Every figure of mnistdiff, drawn from run-directory data: the run's own figures (RUN/figures/, through
`RunFigures`) and the report's (`mnistdiff report`) come from the same functions.

Image grids and panels (samples, epoch grids, cold-diffusion panels) take uint8 images; the plots
(loss, metrics against epoch, class histograms) take rows as read from metrics.jsonl and eval JSON
by run name, and return PNG bytes, so a figure can be rebuilt from the files alone. Runs without the
data are left out of a plot and named in the caption by the caller; a plot with no data is never drawn.
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import matplotlib
import numpy as np
import torch
# Figures are drawn on matplotlib's object API (Figure, savefig through Agg): no pyplot, no global backend,
# so nothing here depends on a display. Agg's C code loads with this module, not at the first figure.
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .. import files

DPI = 110


# -- image grids and panels ---------------------------------------------------------------------------

def contrast_stretch(x: torch.Tensor) -> torch.Tensor:
    """Each image's own min..max -> 0..255, for display only (the report's degraded panels: averaged
    MNIST rows are nearly black). Constant images stay mid-grey rather than dividing by zero."""
    x = x.detach().float().flatten(-2)
    lo, hi = x.min(-1, keepdim=True).values, x.max(-1, keepdim=True).values
    span = hi - lo
    y = torch.where(span > 1e-8, (x - lo) / span.clamp_min(1e-8), torch.full_like(x, 0.5))
    return (y * 255).round().to(torch.uint8).unflatten(-1, (28, 28))


def _subplots(*grid: int, figsize, **kwargs):
    """(figure, axes) as pyplot.subplots gives them, on a figure of its own Agg canvas."""
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(*grid, **kwargs)


def _save(fig, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")


def panels_figure(panels: list[tuple[str, torch.Tensor]], path: Path, nrow: int = 4,
                  title: str | None = None) -> None:
    """Side-by-side grids of uint8 (N, 28, 28) images, one titled panel each (the report's Figs 2.2, 2.6)."""
    fig, axes = _subplots(1, len(panels), figsize=(2.8 * len(panels), 3.2))
    for ax, (name, images) in zip(np.atleast_1d(axes), panels):
        ax.imshow(files.grid_array(images, nrow), cmap="gray", vmin=0, vmax=255, interpolation="nearest")
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
    mosaic = files.grid_array(np.stack(cells), nrow=len(labels))
    fig, ax = _subplots(figsize=(0.5 * len(labels) + 1.2, 0.55 * len(rows) + 0.8))
    ax.imshow(mosaic, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    ax.set_yticks([2 + 30 * i + 14 for i in range(len(rows))], [name for name, _ in rows], fontsize=7)
    ax.set_xticks([2 + 30 * j + 14 for j in range(len(labels))], labels, fontsize=6, rotation=90)
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    if title:
        ax.set_title(title, fontsize=9)
    _save(fig, path)



# -- plots of run data, as PNG bytes --------------------------------------------------------------------

def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def write_png(png: bytes, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png)


def _colors(names):
    cycle = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    return {n: cycle[i % len(cycle)] for i, n in enumerate(names)}


def activation_figure() -> bytes:
    """Fig 1.1: GELU (the seed CNN's activation) against ReLU and ELU."""
    import torch

    x = torch.linspace(-4, 4, 401)
    fig, ax = _subplots(figsize=(6, 4))
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
    fig, ax = _subplots(figsize=(8, 4.5))
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


Series = dict[str, list[tuple[int, float, float | None]]]  # run name -> (epoch, value, std or None)


def metric_vs_epoch(series: Series, *, ylabel: str, title: str) -> bytes:
    """Figs 1.5, 1.6, 1.10, 1.11, 2.4, 2.5 overlaid: (epoch, value, std or None) per run."""
    return metric_panels([series], ylabels=[ylabel], titles=[title])


def metric_panels(panels: list[Series], *, ylabels: list[str], titles: list[str]) -> bytes:
    """Several metrics side by side, each against epoch with its runs overlaid (band: one std where logged)."""
    fig, axes = _subplots(1, len(panels), figsize=(7 if len(panels) == 1 else 4.5 * len(panels), 4), squeeze=False)
    for ax, series, ylabel, title in zip(axes[0], panels, ylabels, titles):
        _metric_axes(ax, series, ylabel, title)
    return _png(fig)


def _metric_axes(ax, series: Series, ylabel: str, title: str) -> None:
    colors = _colors(series)
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


def class_histograms(hists: dict[str, list[float]], *, title: str) -> bytes:
    """Share of generated digits per class as grouped bars; the dashed line is a uniform 10%."""
    colors = _colors(hists)
    k = len(hists)
    width = 0.8 / max(k, 1)
    fig, ax = _subplots(figsize=(8, 4))
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


# -- the run directory's figures --------------------------------------------------------------------------

# name in RUN/figures/ -> the metrics.jsonl 'eval' keys it plots against epoch, one panel each
EVAL_FIGURES = {"fid.png": ("fid", "fd_classifier"), "kid.png": ("kid",), "is.png": ("inception_is", "classifier_is")}
RUN_FIGURES = {"loss.png", "classes.png", *EVAL_FIGURES}  # what write_run_figures draws (the report redraws them overlaid)


def write_run_figures(run: Path) -> list[Path]:
    """RUN/figures/: the training loss, and the per-epoch evaluation's metrics and latest class histogram,
    drawn by the report's own functions for this one run. Returns the paths written."""
    from ..training.rundir import read_metrics
    from .readers import label  # the report's names of the metrics

    rows = read_metrics(run)
    figures, name, out = Path(run) / "figures", Path(run).name, []
    if any(r.get("type") == "iter" for r in rows):
        write_png(loss_overlay({name: rows}), figures / "loss.png")
        out.append(figures / "loss.png")
    ev = [r for r in rows if r.get("type") == "eval"]
    if not ev:
        return out
    for stem, keys in EVAL_FIGURES.items():
        shown = [k for k in keys if all(k in r for r in ev)]
        if shown:
            series = [{name: [(r["epoch"], r[k], r.get(f"{k}_std")) for r in ev]} for k in shown]
            write_png(metric_panels(series, ylabels=[label(k)[0] for k in shown],
                                    titles=[f"{label(k)[0]} of {ev[-1]['n']} samples per epoch" for k in shown]),
                      figures / stem)
            out.append(figures / stem)
    write_png(class_histograms({name: ev[-1]["class_histogram"]},
                               title=f"Classes of {ev[-1]['n']} samples at epoch {ev[-1]['epoch']} "
                                     f"(imbalance {ev[-1]['class_imbalance']:.3f})"), figures / "classes.png")
    return out + [figures / "classes.png"]


class RunFigures:
    """Epoch hook that keeps RUN/figures/ current: after the last epoch, and at most once a minute before it
    (a redraw costs ~1 s, dominant for tiny epochs). Main process only."""

    def __init__(self, every_s: float = 60.0):
        self.every_s, self.last = every_s, -float("inf")

    def __call__(self, end) -> None:
        if end.is_main and (end.final or time.perf_counter() - self.last > self.every_s):
            write_run_figures(end.run)
            self.last = time.perf_counter()


def write_class_chart(out: Path, result: dict) -> Path:
    """RUN/eval/NAME-classes.png beside an evaluation's NAME.json: the class histogram of its samples."""
    run, n = Path(result["samples"]["run"]).name, result["samples"]["n"]
    path = Path(out).with_name(f"{Path(out).stem}-classes.png")
    write_png(class_histograms({run: result["class_histogram"]},
                               title=f"Classes of {n} samples of {run} (imbalance {result['class_imbalance']:.3f})"),
              path)
    return path

