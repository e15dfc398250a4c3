"""Class-conditional runs over guidance weights -> results/conditional.{md,json} and results/img/.

For each run (trained from ddpm-unet-cond and ddpm-default-cond, or any conditional run), measures
the guidance table (mnistdiff.guidance_eval: digit agreement, classifier IS, Inception FID/KID,
per-digit KID; one 10 x 10 grid per w) unless the run already has one of the same size, then writes
the tables and the grids. Usage:

    python scripts/conditional_results.py runs/ddpm-unet-cond runs/ddpm-default-cond -n 10000   # the protocol
    python scripts/conditional_results.py RUN -n 1000 --weights 0 2 --metrics classifier          # quicker
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from mnistdiff.evaluation import guidance_table as GT
from mnistdiff.evaluation.guidance_sweep import measure
from mnistdiff.experiment import machine
from mnistdiff.errors import UserError
from mnistdiff.machine import cpu_flags

ROOT = Path(__file__).resolve().parents[1]
TARGET = 0.99  # the share of samples the classifier labels as the digit asked for, at the best w


def strip(result: dict, run: Path) -> Image.Image:
    """The run's grids side by side, in the order of the weights, 8 px apart."""
    grids = [np.asarray(Image.open(GT.grid_path(run, r["w"]))) for r in result["rows"]]
    h = max(g.shape[0] for g in grids)
    gap = np.full((h, 8), 255, np.uint8)
    return Image.fromarray(np.concatenate([x for g in grids for x in (g, gap)][:-1], axis=1), mode="L")


def markdown(results: dict[str, dict], args, images: dict[str, str]) -> str:
    m = machine()
    bf16 = "yes" if "avx512_bf16" in cpu_flags() else "no"
    lines = ["# Class-conditional generation and classifier-free guidance", "",
             "Written by `scripts/conditional_results.py`; do not edit by hand. Each run is sampled at every "
             "guidance weight w from the same starting noise: eps = (1 + w) eps(x, digit) - w eps(x, no label) "
             "(Ho & Salimans 2022). The sample set is balanced (n / 10 of each digit). Digit agreement: the share "
             "the MNIST classifier (mnistdiff's, 99%+ test accuracy) labels as the digit asked for; target "
             f">= {100 * TARGET:.0f}% at the best w. FID/KID: Inception-v3 2015-12-05 pool3 against the first "
             "test digits (their count is under each run; KID is unbiased at small n, FID below 10,000 samples "
             "is biased upwards and only ranks). "
             "Per-digit KID: each digit's samples against that digit's test images.", "",
             f"Machine: {m['cpu']}, {m['cpu_count']} logical CPUs (AVX512-BF16: {bf16}), torch {m['torch']}; "
             f"measured {time.strftime('%Y-%m-%d')}. Sampling speed is the run's own, taken while other jobs "
             "may have shared the cores.", ""]
    for name, res in results.items():
        best = max(res["rows"], key=lambda r: r["digit_agreement"])
        met = "met" if best["digit_agreement"] >= TARGET else "not met"
        lines += [f"## {name}", "",
                  f"Checkpoint `{res['checkpoint']}` after {res['epochs_trained']} of {res['epochs_planned']} "
                  f"planned epochs; {res['n']} samples per w against the first {res['protocol']['real']['count']} "
                  f"{res['protocol']['real']['split']} digits, seed {res['seed']}, sampler {res['sampler']} "
                  f"{res['sampler_options'] or ''}. Best digit agreement {100 * best['digit_agreement']:.1f}% at "
                  f"w = {best['w']:g}: the {100 * TARGET:.0f}% target is **{met}**.", "",
                  "| " + " | ".join(GT.HEADER) + " |", "|" + "---|" * len(GT.HEADER)]
        lines += ["| " + " | ".join(row) + " |" for row in GT.markdown_rows(res)]
        ws = ", ".join(f"{r['w']:g}" for r in res["rows"])
        lines += ["", f"![{name} at w = {ws}]({images[name]})", "",
                  f"Left to right: w = {ws}; in each grid row d is "
                  "digit d and the columns are ten starting noises, the same in every grid.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path, help="conditional run directories")
    p.add_argument("-n", type=int, default=10_000, help="samples per w, a multiple of 100 (default: 10000)")
    p.add_argument("--weights", type=float, nargs="+", default=list(GT.WEIGHTS), help="guidance weights")
    p.add_argument("--sampler", default="ddim", help="sampler (default: ddim, 50 steps, clipped x0)")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--metrics", default="all", choices=["all", "classifier"])
    p.add_argument("--n-ref", type=int, default=10_000, help="test digits of the Inception reference")
    p.add_argument("--runtime", default="auto", choices=["torch", "openvino", "auto"])
    p.add_argument("--force", action="store_true", help="measure again even where the run has a table")
    p.add_argument("--out", type=Path, default=ROOT / "results" / "conditional")
    p.add_argument("--data-dir")
    p.add_argument("--cache-dir")
    args = p.parse_args(argv)
    try:
        for run in args.runs:
            if not (run / "config.json").is_file():
                raise UserError(f"{run} is not a run directory (no config.json)")
        results, images = {}, {}
        for run in args.runs:
            have = GT.read(run)
            same = have is not None and have["n"] == args.n and [r["w"] for r in have["rows"]] == args.weights
            if same and not args.force:
                print(f"{run.name}: reusing {run / GT.FILE}", file=sys.stderr)
                results[run.name] = have
            else:
                options = {"steps": args.steps} if args.sampler in ("ddim", "heun", "dpm++2m") else {}
                if args.sampler == "ddim":
                    options["clip"] = True
                results[run.name] = measure(run, weights=args.weights, n=args.n, sampler=args.sampler,
                                               sampler_options=options, metrics=args.metrics, n_ref=args.n_ref,
                                               runtime=args.runtime, cache=args.cache_dir, data_dir=args.data_dir,
                                               force=True)
            img_dir = args.out.parent / "img"
            img_dir.mkdir(parents=True, exist_ok=True)
            path = img_dir / f"conditional-{run.name}.png"
            strip(results[run.name], run).save(path)
            images[run.name] = path.relative_to(args.out.parent).as_posix()
    except UserError as e:
        print(f"conditional_results: error: {e}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(results, args, images) + "\n")
    print(f"wrote {args.out.with_suffix('.md')} and {args.out.with_suffix('.json')}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
