"""`mnistdiff report RUN... -o DIR`: the study as one self-contained HTML page plus a Markdown twin.

Everything comes from the run directories (config.json, metrics.jsonl, samples/, figures/, eval/),
so a report can be rebuilt at any time without re-running anything. Whatever a run lacks is shown
as "not measured", never as an empty plot.
"""

from __future__ import annotations

import json
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import __version__, config as C
from ..errors import UserError
from . import figures as F, readers as M
from .render import Gallery, Heading, Image, Missing, Table, Text, to_html, to_markdown
from ..training import rundir

MARKER = ".mnistdiff-report"  # written into every report folder: only those may be overwritten
MAX_GRIDS = 6  # epoch grids shown side by side per run


@dataclass
class RunData:
    name: str
    path: Path
    config: C.Config
    rows: list[dict]
    evals: dict[str, dict] = field(default_factory=dict)  # eval/<name>.json
    record: dict | None = None  # experiment.json, when the run was made by `mnistdiff experiment`

    def of_type(self, kind: str) -> list[dict]:
        return [r for r in self.rows if r.get("type") == kind]

    @property
    def epochs_done(self) -> int:
        return max((r["epoch"] for r in self.of_type("epoch")), default=0)

    @property
    def is_cold(self) -> bool:
        from ..processes import PROCESSES

        cls = PROCESSES.get(self.config.process.degradation)
        return cls is not None and not cls.stochastic


def load_run(path: str | Path) -> RunData:
    path = Path(path)
    if not (path / "config.json").is_file():
        raise UserError(f"{path} is not a run directory (no config.json); pass directories made by "
                        "`mnistdiff train` or `mnistdiff experiment`")
    try:
        cfg = C.from_dict(json.loads((path / "config.json").read_text()))
        rows = rundir.read_metrics(path) + rundir.epoch_evals(path)  # evaluations during training, and of snapshots
        evals = {p.stem: json.loads(p.read_text()) for p in sorted((path / "eval").glob("*.json"))}
        record = json.loads((path / "experiment.json").read_text()) if (path / "experiment.json").is_file() else None
    except (ValueError, OSError, UserError) as e:
        raise UserError(f"cannot read run {path}: {e}") from None
    return RunData(path.name, path, cfg, rows, evals, record)


def collect(paths: list[str | Path]) -> list[RunData]:
    """Load every run before anything is written; runs sharing a folder name get their parent's too."""
    files = [p for p in paths if Path(p).is_file()]
    for p in files:  # `runs/*` may catch a log file next to the runs: not worth stopping for
        print(f"skipping {p}: a file, not a run directory", file=sys.stderr)
    paths = [p for p in paths if p not in files]
    if not paths:
        raise UserError("give at least one run directory, e.g. `mnistdiff report runs/* -o report`")
    data = [load_run(p) for p in paths]
    names = [d.name for d in data]
    for d in data:
        if names.count(d.name) > 1:
            d.name = f"{d.path.parent.name}/{d.name}"
    if len({d.name for d in data}) < len(data):
        raise UserError("the same run directory is given twice; list each run once")
    return data


# -- sections ---------------------------------------------------------------------------------------

def _slug(*parts) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", "-".join(map(str, parts))).strip("-").lower()


def overview(runs: list[RunData]) -> list:
    rows = []
    for r in runs:
        start = (r.of_type("start") or [{}])[0]
        ep = r.of_type("epoch")
        secs = sum(e.get("time_s", 0) for e in ep)
        speed = f"{sum(e.get('images_per_s', 0) for e in ep) / len(ep):.0f}" if ep else "not measured"
        made = f"plan {r.record['plan']}" if r.record else "mnistdiff train"
        rows.append([r.name, str(r.path), M.process_name(r.config), f"{r.epochs_done} of {r.config.train.epochs}",
                     f"{start.get('n_train', 'not recorded')}", f"{secs / 60:.1f}" if ep else M.NOT,
                     speed, M.wall_minutes(r), made])
    machines = M.machines(runs)
    return [Heading("Runs"),
            Table("runs", ["Run", "Directory", "Process", "Epochs done", "Training images", "Training loop (min)",
                           "Training speed (images/s)", "Wall time (min): train + sample/eval", "Made by"], rows,
                  "Training loop time and speed: sums and means of the per-epoch rows in metrics.jsonl (epoch "
                  "grids excluded). Wall time: as recorded by `mnistdiff experiment` in experiment.json."),
            Text("Machine: " + ("; ".join(machines) if machines
                                else "not recorded (`mnistdiff experiment` writes RUN/experiment.json when "
                                     "a run's training finishes)."))]


def hyperparameters(runs: list[RunData]) -> list:
    header = ["Hyperparameter"] + [r.name for r in runs]
    rows = [[label] + [fn(r.config) for r in runs] for label, fn in M.HYPERPARAMETERS]
    rows.append(["Other settings (differ from Table 1.1)"] + [M.other_settings(r.config) for r in runs])
    return [Heading("Hyperparameters"),
            Table("hyperparameters", header, rows,
                  "Tables 1.1, 1.2 and 2.1 of the report, one column per run, read from each run's config.json.")]


def training_loss(runs: list[RunData]) -> list:
    have = {r.name: r.rows for r in runs if r.of_type("iter")}
    out = [Heading("Training loss")]
    if have:
        norms = {r.config.process.loss for r in runs if r.name in have}
        ylabel = ("mean squared error per pixel" if norms == {"mse"} else "mean absolute error per pixel"
                  if norms == {"l1"} else "per-pixel loss (MSE or L1: see the hyperparameters)")
        out.append(Image("loss", F.loss_overlay(have, f"training loss: {ylabel}"),
                         "Figs 1.2, 1.7, 2.3 overlaid: loss at every iteration "
                         "and the mean of each epoch, per run (log scale).", "training loss per iteration and epoch"))
    missing = [r.name for r in runs if r.name not in have]
    if missing:
        out.append(Missing(f"training loss for {', '.join(missing)} (no iteration rows in metrics.jsonl)."))
    return out


def _grid_epochs(r: RunData, chosen: list[int] | None) -> list[int]:
    saved = sorted(int(p.stem.split("_")[1]) for p in (r.path / "samples").glob("epoch_*.png"))
    final = r.epochs_done
    picked = [e for e in saved if e != final and (chosen is None or e in chosen)]
    if len(picked) > MAX_GRIDS:  # keep the first and the last, spread the rest
        step = (len(picked) - 1) / (MAX_GRIDS - 1)
        picked = [picked[round(i * step)] for i in range(MAX_GRIDS)]
    return picked


def sample_grids(runs: list[RunData], chosen: list[int] | None) -> list:
    out = [Heading("Samples during training"),
           Text("Each grid holds 16 samples drawn from the same fixed starting point at every epoch "
                "(seed + 12345), so grids of one run differ only by training (Figs 1.3, 1.8, 2.1).")]
    finals, lacking = [], []
    for r in runs:
        epochs = _grid_epochs(r, chosen)
        if epochs:
            grid = lambda e: (r.path / "samples" / f"epoch_{e:04d}.png").read_bytes()  # noqa: E731
            out.append(Gallery([Image(_slug(r.name, "epoch", e), grid(e), f"Epoch {e}", f"{r.name} at epoch {e}")
                                for e in epochs],
                               f"{r.name}: samples at epochs {', '.join(map(str, epochs))}."))
        else:
            out.append(Missing(f"{r.name}: no sample grids saved before the final epoch."))
        final = r.path / "samples" / f"epoch_{r.epochs_done:04d}.png"
        extra = sorted((r.path / "samples").glob("sample-*.png"))
        if r.epochs_done and final.is_file():
            unfinished = "" if r.epochs_done >= r.config.train.epochs else \
                f" (latest; {r.config.train.epochs} planned)"
            finals.append(Image(_slug(r.name, "final"), final.read_bytes(), f"{r.name}: epoch {r.epochs_done}"
                                + unfinished))
        else:
            lacking.append(r.name)
        finals += [Image(_slug(r.name, p.stem), p.read_bytes(), f"{r.name}: {p.stem}") for p in extra]
    out += [Heading("Final samples"), Text("Samples of each run's last epoch (Figs 1.4, 1.9) and any grids written "
                                           "later by `mnistdiff sample` (file name: sampler, count, seed).")]
    out += [Gallery(finals)] if finals else []
    return out + ([Missing(f"final samples of {', '.join(lacking)} (no epoch grid of the last finished epoch).")]
                  if lacking else [])


def metrics_by_epoch(runs: list[RunData]) -> list:
    out = [Heading("Metrics during training")]
    series = {r.name: M.epoch_series(r.rows) for r in runs}
    for key in M.ordered_keys({k for s in series.values() for k in s}, required=M.REQUIRED_SERIES):
        have = {n: s[key] for n, s in series.items() if s.get(key)}
        label, unit = M.label(key)
        reasons = "; ".join(f"{r.name}: {M.why_missing(r, key)}" for r in runs if not series[r.name].get(key))
        if not have:
            out.append(Missing(f"{label} against epoch ({reasons})."))
            continue
        out.append(Image(_slug("epoch", key), F.metric_vs_epoch(have, ylabel=f"{label} ({unit})",
                                                               title=f"{label} against epoch"),
                         f"{label} against epoch, runs overlaid; band: ± one std where logged. "
                         f"Protocol: {M.series_protocol(runs, key)}", f"{label} against epoch"))
        if len(have) < len(runs):
            out.append(Missing(f"{label} against epoch ({reasons})."))
    return out


def final_metrics(runs: list[RunData]) -> list:
    table = M.final_table(runs)
    out = [Heading("Final metrics")]
    out.append(Table("final-metrics", ["Metric"] + [r.name for r in runs] + ["Protocol"], table,
                     "Tables 3.1-3.3 of the report, one column per run. 'not measured': the run has no such value."))
    return out


def class_histograms(runs: list[RunData]) -> list:
    hists = {r.name: h for r in runs if (h := M.class_histogram(r)) is not None}
    out = [Heading("Class histograms of generated digits")]
    if hists:
        out.append(Image("class-histograms", F.class_histograms(hists, title="Generated digits per class"),
                         "Share of each digit among generated samples, as labelled by the MNIST classifier; "
                         "a model without class bias sits on the dashed 10% line.", "class histogram"))
    lacking = [r.name for r in runs if r.name not in hists]
    if lacking:
        out.append(Missing(f"class histogram for {', '.join(lacking)} (no classifier evaluation in the run)."))
    return out


def guidance(runs: list[RunData]) -> list:
    """Classifier-free guidance tables and grids (guidance_table.py), for the runs that have them."""
    from ..evaluation import guidance_table as GT

    tables = [(r, t) for r in runs if (t := GT.read(r.path)) is not None]
    if not tables:
        return []
    out = [Heading("Classifier-free guidance"),
           Text("Conditional runs sampled at several guidance weights w: (1 + w) net(x, digit) - w net(x, no label). "
                "Each row measures one balanced set (n / 10 images of each digit, the same starting noise for every "
                "w): the MNIST classifier's agreement with the digit asked for, its IS, Inception FID/KID against the "
                "test digits, and KID of each digit's samples against that digit's test images.")]
    for r, t in tables:
        real = t["protocol"]["real"]
        out.append(Table(_slug(r.name, "guidance"), GT.HEADER, GT.markdown_rows(t),
                         f"{r.name}, checkpoint {t['checkpoint']} after {t['epochs_trained']} of "
                         f"{t['epochs_planned']} epochs; {t['n']} samples per w (seed {t['seed']}, sampler "
                         f"{t['sampler']} {t['sampler_options'] or ''}) against the first {real['count']} "
                         f"{real['split']} images."))
        grids = [Image(_slug(r.name, "guidance", row["w"]), GT.grid_path(r.path, row["w"]).read_bytes(),
                       f"w = {row['w']:g}", f"{r.name}, guidance {row['w']:g}")
                 for row in t["rows"] if GT.grid_path(r.path, row["w"]).is_file()]
        out.append(Gallery(grids, f"{r.name}: rows are the digits 0-9, columns ten starting noises, one grid per w.")
                   if grids else Missing(f"{r.name}: the guidance grids are missing from {r.path / 'figures'}."))
    return out


def run_figures(runs: list[RunData]) -> list:
    """Figures each run saved itself: cold-diffusion panels (Figs 2.2, 2.6, 3.1-3.3), strips, metrics."""
    out = [Heading("Cold diffusion panels and other run figures")]
    for r in runs:
        pngs = [p for p in sorted((r.path / "figures").glob("*.png"))
                if p.name not in F.RUN_FIGURES and not p.name.startswith("guidance-w")]  # shown by guidance()
        for p in pngs:
            out.append(Image(_slug(r.name, "fig", p.stem), p.read_bytes(), f"{r.name}: {M.figure_caption(p)}"))
        if r.is_cold and not pngs:
            out.append(Missing(f"{r.name}: no cold-diffusion panels in {r.path / 'figures'}."))
    if len(out) == 1:
        out.append(Text("None of these runs saved figures besides the training loss."))
    return out


def processes(runs: list[RunData], data_dir=None) -> list:
    """One test digit through each degradation the runs use, forward and back (process.py)."""
    from . import process

    out = [Heading("The processes")]
    for name, who, png, why in process.for_runs(runs, data_dir):
        if png is None:
            out.append(Missing(f"{name} ({who}): no process figure: {why}"))
            continue
        out.append(Image(_slug("process", who), png,
                         f"{name}, drawn by {who}'s trained net from test digit {process.DIGIT}. x_t: the digit "
                         "degraded to time t (one fixed noise draw; degraded images are scaled for display only). "
                         "estimate: the net's x0 estimate from that x_t, one net call. reverse: the run's own "
                         "sampler started from the last column's x_T, read right to left, its result under t = 0; "
                         "from pure noise it draws a digit of its own.", f"{name}: forward and reverse"))
    return out


def build(runs: list[RunData], grid_epochs: list[int] | None = None, data_dir=None) -> list:
    blocks = [Text(f"Built {time.strftime('%Y-%m-%d %H:%M')} by mnistdiff {__version__} from "
                   f"{len(runs)} run director{'y' if len(runs) == 1 else 'ies'}: "
                   + ", ".join(str(r.path) for r in runs) + ".")]
    blocks += overview(runs)
    blocks += processes(runs, data_dir)
    blocks += [Heading("Activation functions"),
               Image("activations", F.activation_figure(), "Fig 1.1: GELU, used by the CNN, compared to ReLU and ELU.",
                     "GELU, ReLU and ELU")]
    for section in (hyperparameters, training_loss, lambda rs: sample_grids(rs, grid_epochs), metrics_by_epoch,
                    final_metrics, class_histograms, guidance, run_figures):
        blocks += section(runs)
    return blocks


# -- output -----------------------------------------------------------------------------------------

def _prepare(out: Path) -> None:
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MARKER).is_file())):
        raise UserError(f"{out} exists and is not a mnistdiff report; choose another -o directory "
                        "(only folders made by `mnistdiff report` are overwritten)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        for rel in _previous_images(out):  # stale images of the previous report; nothing else in img/
            (out / rel).unlink(missing_ok=True)
    except OSError as e:
        raise UserError(f"cannot write to {out} ({e.strerror}); choose a writable -o directory") from None


def _previous_images(out: Path) -> list[str]:
    """The img/ files the previous report listed in its marker (none for a marker without the list)."""
    try:
        files = json.loads((out / MARKER).read_text()).get("files", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [f for f in files if isinstance(f, str) and f.startswith("img/") and "/" not in f[4:]
            and f[4:] not in ("", ".", "..") and (out / f).is_file()]


def write_report(paths: list[str | Path], out: str | Path, *, title: str = "MNIST diffusion study",
                 grid_epochs: list[int] | None = None, data_dir=None) -> Path:
    """Build OUT/index.html and OUT/report.md (+ OUT/img/*.png); returns the HTML path."""
    runs = collect(paths)
    out = Path(out)
    blocks = build(runs, grid_epochs, data_dir)
    _prepare(out)
    md, files = to_markdown(title, blocks)
    (out / MARKER).write_text(json.dumps({"made_by": f"mnistdiff {__version__}",
                                          "runs": [str(r.path) for r in runs], "files": sorted(files)}) + "\n")
    for rel, png in files.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(png)
    (out / "report.md").write_text(md)
    (out / "index.html").write_text(to_html(title, blocks))
    return out / "index.html"
