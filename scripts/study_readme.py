"""Write results/report-study/README.md: the report's numbers next to ours, from the saved runs.

    python scripts/study_readme.py [results/report-study]

Reads each run folder that `scripts/report_study.sh save` wrote (config.json, metrics.jsonl, eval/epochs.jsonl,
eval/final.json) and machines.jsonl; a run still training is shown with the epochs it has. The HTML report
(`mnistdiff report`) beside it holds the figures.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from mnistdiff import config as C
from mnistdiff.errors import UserError, run_script
from mnistdiff.report import readers as M
from mnistdiff.training import rundir

# The report's own numbers (../seed/report-mnist-diffusion.txt): where each stands, its final loss, FID and
# Inception Score of generated and of real digits ("" where the report gives none).
REPORT = {
    "ddpm-default": dict(where="Section 1.2, Figs 1.5-1.6", epochs=100, loss="", fid="98.74", is_gen="1.38 ± 0.12",
                         is_real=""),
    "ddpm-testing2": dict(where="Section 1.3, Figs 1.10-1.11", epochs=100, loss="", fid="95.35", is_gen="1.5 ± 0.13",
                          is_real=""),
    "cold-row-random": dict(where="Section 2.2, Figs 2.4-2.5", epochs=80, loss="", fid="108.5", is_gen="1.9 ± 0.18",
                            is_real="1.7 ± 0.24"),
    "cold-col-random": dict(where="Table 3.3 (captioned rows, placed under Fig 3.3's columns)", epochs=60,
                            loss="0.0078", fid="115.9", is_gen="1.31 ± 0.2", is_real="1.26 ± 0.16"),
    "cold-row-random-g4": dict(where="Table 3.2", epochs=80, loss="0.0108", fid="189.84", is_gen="1.97 ± 0.32",
                               is_real="1.79 ± 0.23"),
    "cold-col-random-g4": dict(where="Table 3.1", epochs=60, loss="0.013", fid="195.3", is_gen="1.44", is_real=""),
}
SETTINGS = [("Table 1.1", "ddpm-default"), ("Table 1.2", "ddpm-testing2"), ("Table 2.1", "cold-row-random")]


def _read_json(path: Path):
    return json.loads(path.read_text()) if path.is_file() else None


def _fmt(value, std=None, digits=4) -> str:
    if value is None:
        return "not yet"
    return f"{value:.{digits}g}" + (f" ± {std:.2g}" if std is not None else "")


def run_rows(folder: Path) -> dict:
    rows = rundir.read_metrics(folder)
    epochs = [r for r in rows if r["type"] == "epoch"]
    evals = rundir.epoch_evals(folder)
    return {"cfg": C.from_dict(C.load_file(folder / "config.json")), "epochs": epochs, "evals": evals,
            "final": _read_json(folder / "eval" / "final.json"),
            "train_s": sum(e.get("time_s", 0) for e in epochs),
            "eval_s": sum(r.get("time_s", 0) for r in evals)}


# The report's Tables 1.1, 1.2 and 2.1, by the row labels of the HTML report's hyperparameter table.
REPORT_SETTINGS = {
    "β's (linear schedule)": ("(0.0001, 0.02)", "(0.0001, 0.02)", "not used"),
    "Row/Column schedule": ("not used", "not used", "random"),
    "Number of timesteps": ("1000", "1500", "28"),
    "Learning rate": ("0.0002", "0.0004", "0.0002"),
    "Number of hidden layers & units": ("(16, 32, 32, 16)",) * 3,
    "Batch size": ("128",) * 3,
    "Activation function": ("GELU",) * 3,
    "Epochs": ("100", "100", "80"),
}


def settings_table(found: dict) -> list[str]:
    out = ["| Hyperparameter | " + " | ".join(f"{t} (report) | {n} (ours)" for t, n in SETTINGS) + " |",
           "|---|" + "---|---|" * len(SETTINGS)]
    for label, get in M.HYPERPARAMETERS:
        if label not in REPORT_SETTINGS:
            continue
        cells = []
        for (_, name), theirs in zip(SETTINGS, REPORT_SETTINGS[label]):
            cells += [theirs, get(found[name]["cfg"]) if name in found else "not started"]
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    return out


def finals_table(found: dict) -> list[str]:
    out = ["| Run | Report's | Epochs (report / ours) | Final loss (report / ours) | FID (report / ours) | KID (ours) "
           "| IS of generated digits: report's Inception / our classifier | IS of real digits: report's / ours |",
           "|---|---|---|---|---|---|---|---|"]
    for name, rep in REPORT.items():
        got = found.get(name)
        epochs = got["epochs"] if got else []
        loss = epochs[-1]["loss_mean"] if epochs else None
        final = got["final"] if got else None
        fid = kid = is_gen = is_real = "not yet"
        if final:
            fid = f"{final['fid']:.2f} ({final['n']} vs {final['protocol']['real']['count']})"
            kid = _fmt(final["kid"], final["kid_std"])
            is_gen = _fmt(final["classifier_is"], final["classifier_is_std"], 3)
            if "real" in final:
                is_real = _fmt(final["real"]["classifier_is"], final["real"]["classifier_is_std"], 3)
        done = f"{len(epochs)}" + ("" if got and len(epochs) >= got["cfg"].train.epochs else " (training)")
        out.append(f"| {name} | {rep['where']} | {rep['epochs']} / {done if got else 'not started'} | "
                   f"{rep['loss'] or 'not given'} / {_fmt(loss)} | {rep['fid']} / {fid} | {kid} | "
                   f"{rep['is_gen']} / {is_gen} | {rep['is_real'] or 'not given'} / {is_real} |")
    return out


def count_table(found: dict) -> list[str]:
    """FID of random subsets of each final evaluation's samples, and its copy rate (evaluate --memorisation)."""
    finals = {name: got["final"] for name, got in found.items() if got["final"]}
    if not finals:
        return ["No run has its final evaluation yet."]
    counts = sorted({int(c) for f in finals.values() for c in f.get("fid_by_count", {})} |
                    {f["n"] for f in finals.values()})
    out = ["| Run | " + " | ".join(f"FID at {c:,}" for c in counts) + " | copy rate (pixels / classifier) |",
           "|---|" + "---:|" * len(counts) + "---:|"]
    for name, f in finals.items():
        fids = {**{int(c): v for c, v in f.get("fid_by_count", {}).items()}, f["n"]: f["fid"]}
        mem = f.get("memorisation")
        copies = (f"{100 * mem['pixel']['copy_rate']:.2f}% / {100 * mem['classifier']['copy_rate']:.2f}%"
                  if mem else "not measured")
        out.append(f"| {name} | " + " | ".join(_fmt(fids.get(c)) if c in fids else "-" for c in counts)
                   + f" | {copies} |")
    return out


def curves(found: dict) -> list[str]:
    out = []
    for name, got in found.items():
        if not got["evals"]:
            continue
        r0 = got["evals"][0]
        out += ["", f"**{name}**: {r0['n']} samples per snapshot ({r0['sampler']} sampler, {r0['start']} start, "
                f"seed {r0['seed']}) against the first {got['cfg'].train.eval_ref} test digits.", "",
                "| Epoch | FID | KID | Classifier IS | Class imbalance |", "|---:|---:|---:|---:|---:|"]
        for r in got["evals"]:
            out.append(f"| {r['epoch']} | {_fmt(r.get('fid'))} | {_fmt(r.get('kid'), r.get('kid_std'))} | "
                       f"{_fmt(r['classifier_is'], r['classifier_is_std'], 3)} | {r['class_imbalance']:.3f} |")
    return out


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "results/report-study")
    if not root.is_dir():
        raise UserError(f"{root} is not a folder; run `scripts/report_study.sh save` first")
    found = {name: run_rows(root / name) for name in REPORT if (root / name / "config.json").is_file()}
    machines = [json.loads(line) for line in (root / "machines.jsonl").read_text().splitlines()] \
        if (root / "machines.jsonl").is_file() else []
    train_h = sum(g["train_s"] for g in found.values()) / 3600
    eval_h = sum(g["eval_s"] + ((g["final"] or {}).get("timing", {}).get("total_s", 0)) for g in found.values()) / 3600
    lines = [
        "# The report's study at full length",
        "",
        "Generated by `python scripts/study_readme.py` from the run folders here; do not edit by hand.",
        "The six runs of the report, trained and evaluated by `scripts/report_study.sh` (one CPU thread per job,",
        "resumed across machines from the checkpoints saved here), next to the report's own numbers.",
        "",
        "Protocol. During training, a snapshot is kept every 10 epochs for the DDPM runs and every 2 for the cold",
        "runs (and at epoch 1 and the last); `mnistdiff evaluate RUN --snapshots -n 500` scores those of every 20",
        "epochs of a DDPM run and every 4 of a cold one with the run's own sampler (ancestral sampling over all T",
        "steps for DDPM, Algorithm 2 from the fitted Gaussian-mixture start for cold runs) against the first",
        "10,000 test digits: FID and KID on Inception-v3 pool3 features, and",
        "the Inception Score computed with an MNIST classifier in place of Inception (no Inception weights with",
        "logits can be installed offline; the report's IS values are Inception's, so the two IS columns measure the",
        "same idea on different networks). The final evaluation (`eval/final.json`) draws 2,000 samples of a DDPM run",
        "and 10,000 of a cold run. KID is unbiased at any sample count; FID is not (it falls as the count grows), so",
        "FIDs of different counts do not compare. The report does not state its sample counts. Where the CPU has",
        "native bf16, the CNN samples in bf16 (`--precision auto`: measured to score as fp32 does, 3.5x faster;",
        "results/ablations/precision-ddpm-default-e40.md); each row records its precision.",
        "",
        f"Time so far: {train_h:.1f} h of training loop and {eval_h:.1f} h of evaluation (wall clock of one-thread jobs,",
        "longer where they shared the cores with others). Machines:",
        "",
        *[f"- {m['date']}: {m['cpu']} ({m['precision']} training); epochs reached: "
          + (", ".join(f"{k} {v}" for k, v in m["epochs"].items()) or "none") for m in machines],
        "",
        "## Final metrics (the report's Tables 3.1-3.3 and the final values in its text)",
        "",
        *finals_table(found),
        "",
        "## How the sample count moves FID, and whether the runs copy their training digits",
        "",
        "FID of nested random subsets of each final evaluation's samples, against the same 10,000 test digits: the",
        "per-epoch rows below use 500. The copy rate is the share of samples nearer a training digit than 99% of",
        "the test digits are (about 1% for digits the model did not copy; docs/evaluation.md).",
        "",
        *count_table(found),
        "",
        "## Settings (Tables 1.1, 1.2, 2.1)",
        "",
        *settings_table(found),
        "",
        "## Metrics per epoch (Figs 1.5-1.6, 1.10-1.11, 2.4-2.5)",
        *curves(found),
        "",
        "## Figures",
        "",
        "The report's figures regenerated from these runs (loss curves with epoch means, grids at epochs 1, 20, 40,",
        "60 and the last, FID and IS per epoch, the cold 4-panel figures) are in the HTML report, `report/index.html`",
        "(`scripts/report_study.sh publish` rebuilds it with `mnistdiff report ... --grid-epochs 1,20,40,60,80,100`).",
        "",
    ]
    (root / "README.md").write_text("\n".join(lines))
    print(f"wrote {root / 'README.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run_script(main)
