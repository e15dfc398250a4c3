"""What the report reads out of a run: hyperparameter rows, metric series by epoch, final metrics.

Readers are generic over the rows' fields: any numeric field of a `type="eval"` row in
metrics.jsonl is a series against epoch (a field `<name>_std` is its spread), and any number in
RUN/eval/*.json is a final metric. Known names get a label, a direction and a protocol; unknown
ones are still shown, under their own name, so new metrics need no change here.
"""

from __future__ import annotations

from pathlib import Path

from .. import config as C

NOT = "not measured"


def _process_class(cfg: C.Config):
    from .. import processes

    return processes.PROCESSES.get(cfg.process.degradation)  # None: a process this version does not know


def process_name(cfg: C.Config) -> str:
    cls = _process_class(cfg)
    return cls.label(cfg.process) if cls else f"{cfg.process.degradation} (unknown to this version)"


def timesteps(cfg: C.Config) -> str:
    """The process's own T (cold averaging derives it from the group), else the configured one."""
    try:
        return str(_process_class(cfg).from_config(cfg.process).T)
    except Exception:  # a process this version cannot rebuild: show the configured T instead
        return str(cfg.process.T)


def _if_used(field: str, value):
    """A config value as a row, or "not used" when the run's process does not read that field."""
    def row(c: C.Config) -> str:
        cls = _process_class(c)
        return value(c) if cls is None or field in cls.uses else "not used"
    return row


# (row label as in the report's tables, value from the config)
HYPERPARAMETERS = [
    ("Process", process_name),
    ("β's (linear schedule)", _if_used("beta1", lambda c: f"({c.process.beta1:g}, {c.process.beta2:g})")),
    ("Row/Column schedule", _if_used("order", lambda c: c.process.order)),
    ("Number of timesteps", timesteps),
    ("Learning rate", lambda c: f"{c.train.lr:g}"),
    ("Number of hidden layers & units", lambda c: "(" + ", ".join(map(str, c.model.hidden)) + ")"),
    ("Batch size", lambda c: str(c.train.batch_size)),
    ("Activation function", lambda c: c.model.act.upper()),
    ("Network predicts / loss", lambda c: f"{c.process.prediction} / {c.process.loss.upper()}"),
    ("Epochs", lambda c: str(c.train.epochs)),
    ("Training images", lambda c: str(c.train.subset) if c.train.subset else "60000 (all)"),
    ("Seed", lambda c: str(c.train.seed)),
]
_SHOWN = {"degradation", "schedule", "beta1", "beta2", "order", "group", "T", "lr", "hidden", "batch_size", "act",
          "prediction", "loss", "epochs", "subset", "seed"}


def other_settings(cfg: C.Config) -> str:
    # The report's own runs trained in fp32; a run's config.json holds what precision=auto chose.
    base, mine = C.apply(C.Config(), {"precision": "fp32"}).to_dict(), cfg.to_dict()
    diff = [f"{k}={v}" for s in mine for k, v in mine[s].items()
            if k not in _SHOWN and base.get(s, {}).get(k) != v]
    return ", ".join(diff) or "none"


# name -> (label, unit and direction, protocol when the run states none); the names evaluate.py writes,
# the only ones for each metric in metrics.jsonl, RUN/eval/*.json and the report
KNOWN = {
    "fid": ("FID", "lower is better", "Fréchet distance of Inception-v3 pool3 features (2048-d) against "
                                      "real MNIST test digits"),
    "inception_is": ("Inception Score", "higher is better", "exp E KL(p(y|x) || p(y)) of Inception-v3 logits"),
    "kid": ("KID", "lower is better", "kernel inception distance, Inception-v3 pool3 features, cubic kernel"),
    "classifier_is": ("Classifier IS", "higher is better, 10 at most",
                      "Inception Score with the MNIST classifier's 10-way softmax in place of Inception's"),
    "fd_classifier": ("Fréchet distance (classifier features)", "lower is better",
                       "Fréchet distance of the MNIST classifier's penultimate features against real test digits"),
    "class_imbalance": ("Class imbalance", "0 balanced, 0.9 one digit only",
                        "total variation distance of the predicted-class histogram from uniform"),
    "fid_floor": ("FID floor (real test vs real train)", "lower is better", "FID between two sets of real digits"),
    "kid_floor": ("KID floor (real test vs real train)", "lower is better", "KID between two sets of real digits"),
    "fd_classifier_floor": ("Classifier-feature floor (real test vs train)", "lower is better",
                             "classifier-feature Fréchet distance between two sets of real digits"),
}
REQUIRED_SERIES = ("fid", "inception_is")  # the report plots these against epoch: say so when missing
_NOT_METRICS = {"type", "step", "epoch", "time_s", "n", "n_samples", "seed", "images_per_s", "metrics_s",
                "sampling_s", "train_count", "count", "floor_count"}


def label(key: str) -> tuple[str, str]:
    name, unit, _ = KNOWN.get(key, (key.replace("_", " "), "", ""))
    return name, ("dimensionless" + (f"; {unit}" if unit else ""))


def _numeric(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def epoch_series(rows: list[dict]) -> dict[str, list[tuple[int, float, float | None]]]:
    """{metric: [(epoch, value, std or None)]} from the eval rows of metrics.jsonl."""
    out: dict[str, list] = {}
    for r in rows:
        if r.get("type") != "eval" or "epoch" not in r:
            continue
        for k, v in r.items():
            if k in _NOT_METRICS or k.endswith("_std") or not _numeric(v):
                continue
            std = r.get(f"{k}_std")
            out.setdefault(k, []).append((int(r["epoch"]), float(v), float(std) if _numeric(std) else None))
    return out


def ordered_keys(keys: set[str], required=()) -> list[str]:
    known = [k for k in KNOWN if k in keys or k in required]
    return known + sorted(keys - set(known))


def series_protocol(runs, key: str) -> str:
    """How the per-epoch values were made, from each run's config (evaluate.py's per-epoch protocol)."""
    texts = set()
    for run in runs:
        tc = run.config.train
        rows = [r for r in run.of_type("eval") if key in r]
        for source in {r.get("source", "training") for r in rows}:
            n = {r.get("n") for r in rows if r.get("source", "training") == source}
            n = n.pop() if len(n) == 1 else getattr(tc, "n_eval", None)
            ref = getattr(tc, "eval_ref", None)
            where = "of the epoch's snapshot (evaluate --snapshots)" if source == "snapshot" else "during training"
            texts.add(f"{n} samples of the run's default sampler per evaluation {where}, against the first {ref} "
                      "MNIST test digits" if n and ref else "as logged by the run")
    return KNOWN.get(key, ("", "", ""))[2] + ("; " if key in KNOWN else "") + "; ".join(sorted(texts))


def _fmt(v: float, std=None) -> str:
    return f"{v:.4g}" + (f" ± {std:.2g}" if _numeric(std) else "")


def _setting(d: dict) -> tuple[str, str]:
    """(sampler, start) of an eval JSON's samples."""
    s = d.get("samples", {}) if isinstance(d.get("samples"), dict) else {}
    return str(s.get("sampler", "?")), str(s.get("start", "?"))


def _eval_protocol(d: dict, key: str) -> str:
    """The protocol of one metric of an eval JSON: what was sampled, against what, and how it was computed."""
    s, p = d.get("samples", {}), d.get("protocol", {})
    p = p if isinstance(p, dict) else {"": str(p)}
    real = p.get("real", {}) if isinstance(p.get("real"), dict) else {}
    how = p.get(key) if isinstance(p.get(key), str) else KNOWN.get(key, ("", "", "see the run's eval JSON"))[2]
    what = (f"n = {s.get('n', '?')} samples ({s.get('sampler', '?')}, {s.get('start', '?')} start, seed "
            f"{s.get('seed', '?')}, {s.get('checkpoint', '?')} checkpoint) vs the first {real.get('count', '?')} "
            f"{real.get('split', '?')} digits")
    return f"{what}: {how}"


def final_values(run) -> tuple[dict[str, str], dict[str, str]]:
    """{metric: formatted value} and {metric: protocol} for one run (Tables 3.1-3.3)."""
    values, protocols = {}, {}
    ep = run.of_type("epoch")
    if ep:
        values["Final loss"] = f"{ep[-1]['loss_mean']:.4g}"
        protocols["Final loss"] = (f"mean training {run.config.process.loss.upper()} over the iterations of "
                                   "the last epoch (metrics.jsonl)")
    process = _process_class(run.config)  # None: a process this version does not know, whose settings are all named
    main = (process.default_sampler, process.default_start) if process else None
    for name, d in sorted(run.evals.items(), key=lambda kv: _setting(kv[1]) != main):
        setting = _setting(d)
        suffix = "" if setting == main else f" ({setting[0]}, {setting[1]} start)"
        for group, prefix in ((d, ""), (d.get("real") if isinstance(d.get("real"), dict) else {}, "real: ")):
            for k, v in group.items():
                if k in _NOT_METRICS or k.endswith("_std") or not _numeric(v):
                    continue
                metric = f"{prefix}{label(k)[0]}{suffix}"
                if metric in values:  # a second evaluation of the same setting: keep the first, name the other
                    metric = f"{metric} [{name}]"
                values[metric] = _fmt(v, group.get(f"{k}_std"))
                protocols[metric] = _eval_protocol(d, k) if not prefix else \
                    f"real digits, no model: {KNOWN.get(k, ('', '', 'see the eval JSON'))[2]}"
    return values, protocols


def final_table(runs) -> list[list[str]]:
    per_run = [final_values(r) for r in runs]
    metrics = []
    for values, _ in per_run:
        metrics += [m for m in values if m not in metrics]
    rows = []
    for m in metrics:
        protos = sorted({p[m] for _, p in per_run if m in p})
        rows.append([m] + [v.get(m, NOT) for v, _ in per_run] + [" | ".join(protos)])
    for key in REQUIRED_SERIES:
        if label(key)[0] not in metrics:
            rows.append([label(key)[0]] + [NOT] * len(runs) + [KNOWN[key][2]])
    return rows


def class_histogram(run) -> list[float] | None:
    """Counts of generated digits per class: final evaluation first, else the last eval row."""
    for d in run.evals.values():
        for k, v in d.items():
            if "hist" in k and isinstance(v, list) and len(v) == 10:
                return v
    for r in reversed(run.of_type("eval")):
        for k, v in r.items():
            if "hist" in k and isinstance(v, list) and len(v) == 10:
                return v
    return None


def figure_caption(path: Path) -> str:
    """What a run's figure shows: its caption in the folder's manifest (manifest.record_caption), else its name."""
    from .manifest import captions

    return captions(Path(path).parent).get(Path(path).name) or Path(path).stem.replace("_", " ").replace("-", " ")


def machines(runs) -> list[str]:
    """One line per machine that trained or evaluated these runs (from experiment.json), with its runs."""
    seen: dict[str, set] = {}
    for r in runs:
        for s in (r.record or {}).get("sessions", []):
            m = s.get("machine", {})
            key = (f"{m.get('cpu', '?')}, {m.get('cpu_count', '?')} logical CPUs, torch {m.get('torch', '?')} "
                   f"with {m.get('torch_threads', '?')} threads, Python {m.get('python', '?')}")
            seen.setdefault(key, set()).add(r.name)
    return [f"{k} ({', '.join(sorted(v))})" for k, v in seen.items()]


def wall_minutes(run) -> str:
    """Wall time recorded by `mnistdiff experiment`: training + the stages after it (sampling, evaluation)."""
    sessions = (run.record or {}).get("sessions", [])
    if not sessions:
        return NOT
    train = sum(s["wall_s"] for s in sessions if s["stage"] == "train")
    return f"{train / 60:.1f} + {sum(s['wall_s'] for s in sessions) / 60 - train / 60:.1f}"


INCEPTION_KEYS = {"fid", "kid", "inception_is"}


def why_missing(run, key: str) -> str:
    """Why a run has no per-epoch values of a metric, read from its config and rows."""
    tc = run.config.train
    evals = run.of_type("eval")
    if not getattr(tc, "eval_every", 0) and not evals:
        return "evaluation during training off, and no snapshot evaluated (`mnistdiff evaluate RUN --snapshots`)"
    if key in INCEPTION_KEYS and (all("fid" not in r for r in evals) if evals else
                                  getattr(tc, "eval_metrics", "all") == "classifier"):
        return "classifier metrics only"
    if not run.of_type("eval"):
        return "no evaluation reached yet"
    if key == "inception_is":
        return "Inception logit weights (torch-fidelity) absent: see the classifier IS"
    return "not logged"

