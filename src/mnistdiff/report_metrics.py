"""What the report reads out of a run: hyperparameter rows, metric series by epoch, final metrics.

Readers are generic over the rows' fields: any numeric field of a `type="eval"` row in
metrics.jsonl is a series against epoch (a field `<name>_std` is its spread), and any number in
RUN/eval/*.json is a final metric. Known names get a label, a direction and a protocol; unknown
ones are still shown, under their own name, so new metrics need no change here.
"""

from __future__ import annotations

import re

from . import config as C

NOT = "not measured"


def _cold_T(cfg: C.Config) -> int | None:
    try:
        from . import degradations
        return degradations.build(cfg.process).T
    except Exception:  # a degradation this version cannot rebuild: show the configured T instead
        return None


def process_name(cfg: C.Config) -> str:
    p = cfg.process
    if p.degradation == "gaussian":
        return f"DDPM (Gaussian noise, {p.schedule} betas)"
    return f"cold: {p.degradation}, {p.order} order" + (f", groups of {p.group}" if p.group > 1 else "")


def timesteps(cfg: C.Config) -> str:
    T = _cold_T(cfg) if cfg.process.degradation != "gaussian" else cfg.process.T
    return str(T if T is not None else cfg.process.T)


# (row label as in the report's tables, value from the config)
HYPERPARAMETERS = [
    ("Process", process_name),
    ("β's (linear schedule)", lambda c: f"({c.process.beta1:g}, {c.process.beta2:g})"
     if c.process.degradation == "gaussian" else "not used"),
    ("Row/Column schedule", lambda c: c.process.order if c.process.degradation != "gaussian" else "not used"),
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
    base, mine = C.Config().to_dict(), cfg.to_dict()
    diff = [f"{k}={v}" for s in mine for k, v in mine[s].items()
            if k not in _SHOWN and base.get(s, {}).get(k) != v]
    return ", ".join(diff) or "none"


# name -> (label, unit and direction, protocol when the run states none)
KNOWN = {
    "fid": ("FID", "lower is better", "Fréchet distance of Inception-v3 pool features (2048-d)"),
    "kid": ("KID", "lower is better", "kernel inception distance on Inception-v3 pool features"),
    "is": ("Inception Score", "higher is better", "exp E[KL(p(y|x) || p(y))] of Inception-v3 logits"),
    "inception_is": ("Inception Score", "higher is better", "exp E[KL(p(y|x) || p(y))] of Inception-v3 logits"),
    "classifier_is": ("Classifier IS", "higher is better, 10 at most",
                      "Inception Score computed with the MNIST classifier's logits"),
    "fd_classifier": ("Fréchet distance (classifier)", "lower is better",
                      "Fréchet distance of the MNIST classifier's penultimate features"),
}
REQUIRED_SERIES = ("fid", "is")  # the report plots these two against epoch: say so when they are missing
_NOT_METRICS = {"type", "step", "epoch", "time_s", "n", "n_samples", "seed", "images_per_s"}
SUPERSEDED_FIGURES = {"loss.png"}  # drawn again by the report, overlaid across runs


def label(key: str) -> tuple[str, str]:
    name, unit, _ = KNOWN.get(key, (key.replace("_", " "), "", ""))
    return name, ("dimensionless" + (f"; {unit}" if unit else ""))


def epoch_series(rows: list[dict]) -> dict[str, list[tuple[int, float, float | None]]]:
    """{metric: [(epoch, value, std or None)]} from the eval rows of metrics.jsonl."""
    out: dict[str, list] = {}
    for r in rows:
        if r.get("type") != "eval" or "epoch" not in r:
            continue
        for k, v in r.items():
            if k in _NOT_METRICS or k.endswith("_std") or isinstance(v, bool) or not isinstance(v, (int, float)):
                continue
            std = r.get(f"{k}_std")
            out.setdefault(k, []).append((int(r["epoch"]), float(v), float(std) if std is not None else None))
    return out


def ordered_keys(keys: set[str], required=()) -> list[str]:
    known = [k for k in KNOWN if k in keys or k in required]
    return known + sorted(keys - set(known))


def series_protocol(runs, key: str) -> str:
    texts = {str(r.get("protocol", {}).get(key) if isinstance(r.get("protocol"), dict) else r.get("protocol"))
             for run in runs for r in run.of_type("eval") if key in r and r.get("protocol")}
    return "; ".join(sorted(texts)) or KNOWN.get(key, ("", "", "as logged by the run"))[2]


def _flatten(d, prefix="") -> dict[str, float]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[f"{prefix}{k}"] = float(v)
    return out


def final_values(run) -> tuple[dict[str, str], dict[str, str]]:
    """{metric: formatted value} and {metric: protocol} for one run."""
    values, protocols = {}, {}
    ep = run.of_type("epoch")
    if ep:
        values["Final loss"] = f"{ep[-1]['loss_mean']:.4g}"
        protocols["Final loss"] = (f"mean training {run.config.process.loss.upper()} over the iterations of the last "
                                   "epoch (metrics.jsonl)")
    for name, d in run.evals.items():
        proto = d.get("protocol")
        flat = _flatten({k: v for k, v in d.items() if k != "protocol"})
        for k, v in flat.items():
            if k.split(".")[-1] in _NOT_METRICS or k.endswith("_std"):
                continue
            std = flat.get(f"{k}_std")
            metric = f"{name}: {label(k.split('.')[-1])[0]}" + (f" ({k.rsplit('.', 1)[0]})" if "." in k else "")
            values[metric] = f"{v:.4g}" + (f" ± {std:.2g}" if std is not None else "")
            protocols[metric] = str(proto.get(k, proto) if isinstance(proto, dict) else proto or KNOWN.get(
                k.split(".")[-1], ("", "", "see " + f"eval/{name}.json"))[2])
    return values, protocols


def final_table(runs) -> list[list[str]]:
    per_run = [final_values(r) for r in runs]
    metrics = []
    for values, _ in per_run:
        metrics += [m for m in values if m not in metrics]
    rows = []
    for m in metrics:
        protos = sorted({p[m] for _, p in per_run if m in p})
        rows.append([m] + [v.get(m, NOT) for v, _ in per_run] + ["; ".join(protos)])
    for key in REQUIRED_SERIES:
        if not any(label(key)[0] in m for m in metrics):
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


_CAPTIONS = [  # file stems written by cold_figures.py -> what the report called them
    (r"cold-conditional-(?P<s>.+)-seed(?P<seed>\d+)",
     "Original | Degraded | Direct prediction | Algorithmic generation, from fully degraded test images "
     "(conditional; sampler {s}, seed {seed}); the report's Figs 2.2, 3.1-3.3"),
    (r"cold-(?P<start>gmm|uniform)-(?P<s>.+)-seed(?P<seed>\d+)",
     "Degraded from a fitted distribution ({start}) | Algorithmic generation (unconditional; sampler {s}, "
     "seed {seed}); the report's Fig 2.6"),
    (r"cold-strip-seed(?P<seed>\d+)", "One test digit along t = 0..T: degraded (as stored and contrast-stretched), "
     "then the reverse chain and its predictions (seed {seed})"),
]


def figure_caption(stem: str) -> str:
    for pattern, text in _CAPTIONS:
        if m := re.fullmatch(pattern, stem):
            return text.format(**m.groupdict())
    return stem.replace("_", " ").replace("-", " ")


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

