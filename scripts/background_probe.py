"""What the background level of an EDM run's samples answers to at sampling time: Heun's step count, its
stochastic churn and the guidance weight, each on the same starting noise -> a Markdown table.

    .venv/bin/python scripts/background_probe.py runs/quick-unet -n 500 --digit 0,1,2,3,4,5,6,7,8,9 \\
        --guidance 0 1 3 --churn 0 5 --steps 18 40

Per combination: N samples (seed 0, EMA weights) measured by the background level (mean grey of the top 4
rows; test digits 1.23), the share of those pixels that are not 0 (haze lights most of them, a stray
stroke few), the mean grey of the lit ones, and the MNIST classifier's IS (10 splits, so at small N it
reads lower than at 10,000). Sampling only: no Inception features, ~1-2 minutes per 500 samples on 2 cores.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

from mnistdiff.sampling import guidance as G
from mnistdiff.errors import UserError, run_script
from mnistdiff.evaluation.evaluator import Evaluator
from mnistdiff.sampling.generate import generate
from mnistdiff.sampling.load import load_trained
from mnistdiff.evaluation import statistics


def probe(run: Path, n: int, digit: str | None, guidances, churns, steps_list, data_dir=None) -> list[dict]:
    cfg, net, process = load_trained(run, weights="ema", runtime="torch", batch_size=min(n, 500))
    if process.family != "sigma":
        raise UserError(f"{run} is not an EDM run (--degradation edm): the probe varies Heun's options")
    digits = G.labels(digit, n)
    for w in guidances:
        G.check(cfg.model.conditional, digits, w)
    clf = Evaluator(metrics="classifier", n_ref=10_000, data_dir=data_dir, progress=False)
    rows = []
    for w, churn, steps in itertools.product(guidances, churns, steps_list):
        images = generate(net, process, cfg, n, seed=0, sampler="heun", data_dir=data_dir, digits=digits,
                          guidance=w, sampler_options={"steps": steps, "churn": churn})
        top = images[:, :4].float()
        lit = top[top > 0]
        rows.append({"guidance": w, "churn": churn, "steps": steps, "background": statistics.background_level(images),
                     "lit_share": (top > 0).float().mean().item(),
                     "lit_mean": lit.mean().item() if lit.numel() else 0.0,
                     "classifier_is": clf.evaluate(images)["classifier_is"]})
        print(f"w={w:g} churn={churn:g} steps={steps}: background {rows[-1]['background']:.2f}", file=sys.stderr)
    return rows


def markdown(run: Path, n: int, digit: str | None, rows: list[dict]) -> str:
    lines = [f"`scripts/background_probe.py {run}`: {n} samples per row, seed 0, heun"
             + (f", digits {digit}" if digit else ""), "",
             "| guidance w | churn | steps | background | top-row pixels lit | their mean grey | classifier IS |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['guidance']:g} | {r['churn']:g} | {r['steps']} | {r['background']:.2f} | "
              f"{100 * r['lit_share']:.1f}% | {r['lit_mean']:.1f} | {r['classifier_is']:.2f} |" for r in rows]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("-n", type=int, default=500)
    ap.add_argument("--digit", help="conditional runs: the digits, e.g. 0,1,2,3,4,5,6,7,8,9")
    ap.add_argument("--guidance", type=float, nargs="+", default=[0.0])
    ap.add_argument("--churn", type=float, nargs="+", default=[0.0])
    ap.add_argument("--steps", type=int, nargs="+", default=[18])
    ap.add_argument("--out", type=Path, help="also write the table to this .md file")
    ap.add_argument("--data-dir")
    args = ap.parse_args(argv)
    if args.n < 10:
        raise UserError(f"-n {args.n} must be >= 10 (the classifier IS takes 10 splits)")
    rows = probe(args.run, args.n, args.digit, args.guidance, args.churn, args.steps, args.data_dir)
    table = markdown(args.run, args.n, args.digit, rows)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    run_script(main)
