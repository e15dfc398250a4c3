"""FID / KID of a trained DDPM run against the number of DDIM steps (Song et al. 2021), with
1000-step ancestral DDPM as the reference row, so users can pick a step count.

    MNISTDIFF_DATA=/work/shared/data/mnist .venv/bin/python benchmarks/ddim_steps.py runs/quick -n 500

Writes benchmarks/ddim_steps.json and benchmarks/ddim_steps.md. Every row uses the same n starting
points (same seed), the same real reference images and the same Inception features (evaluate.py).
FID from a few hundred samples is biased upwards (it falls as n grows): compare rows, not papers.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

from mnistdiff.errors import UserError
from mnistdiff.evaluate import Evaluator
from mnistdiff.sample import generate, load_trained

HERE = Path(__file__).resolve().parent


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="a trained gaussian (DDPM) run directory")
    p.add_argument("-n", type=int, default=500, help="samples per row (default: 500)")
    p.add_argument("--n-ref", type=int, default=2000, help="real test images in the reference (default: 2000)")
    p.add_argument("--steps", default="10,20,50,100,1000", help="DDIM step counts (default: 10,20,50,100,1000)")
    p.add_argument("--eta", type=float, default=0.0, help="DDIM eta (default: 0, deterministic)")
    p.add_argument("--no-ddpm", action="store_true", help="skip the 1000-step ancestral DDPM row")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(HERE), help="folder for ddim_steps.json/.md")
    args = p.parse_args(argv)
    try:
        steps = [int(s) for s in args.steps.split(",")]
        if not steps or min(steps) < 1:
            raise ValueError
    except ValueError:
        print(f"ddim_steps.py: error: --steps {args.steps!r} must list positive integers, e.g. --steps 10,50",
              file=sys.stderr)
        return 2
    try:
        cfg, net, degradation = load_trained(args.run)
        if cfg.process.degradation != "gaussian":
            raise UserError(f"{args.run} is a {cfg.process.degradation} run; DDIM steps need a gaussian "
                            "(DDPM) run, e.g. runs/ddpm-unet")
    except UserError as e:
        print(f"ddim_steps.py: error: {e}", file=sys.stderr)
        return 2
    ev = Evaluator(metrics="all", n_ref=args.n_ref, progress=True)
    rows = []
    plan = [("ddim", {"steps": s, "eta": args.eta}) for s in steps]
    if not args.no_ddpm:
        plan.append(("ddpm", {}))
    for sampler, options in plan:
        t0 = time.perf_counter()
        images = generate(net, degradation, cfg, args.n, seed=args.seed, sampler=sampler, sampler_options=options)
        sampling_s = time.perf_counter() - t0
        result = ev.evaluate(images)
        row = {"sampler": sampler, **options, "net_calls": options.get("steps", degradation.T),
               "sampling_s": round(sampling_s, 1), "images_per_s": round(args.n / sampling_s, 3),
               **{k: result[k] for k in ("fid", "kid", "kid_std", "fd_classifier") if k in result}}
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    meta = {"run": str(args.run), "n": args.n, "n_ref": args.n_ref, "seed": args.seed, "eta": args.eta,
            "date": datetime.datetime.now().isoformat(timespec="minutes"), "protocol": ev.protocol()}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ddim_steps.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2, default=str) + "\n")
    lines = [f"# FID / KID against sampling steps\n",
             f"Run `{args.run}`, {args.n} samples per row (seed {args.seed}), against the first {args.n_ref} MNIST "
             f"test images; Inception-v3 pool3 features (mnistdiff.metrics). Measured {meta['date']} by "
             f"`python benchmarks/ddim_steps.py`. FID of {args.n} samples is biased upwards: compare rows.\n",
             "| sampler | steps (net calls) | eta | FID | KID (x1000) | images/s |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        kid = f"{1000 * r['kid']:.2f} +- {1000 * r['kid_std']:.2f}" if "kid" in r else "-"
        fid = f"{r['fid']:.2f}" if "fid" in r else "-"
        lines.append(f"| {r['sampler']} | {r['net_calls']} | {r.get('eta', '-')} | {fid} | {kid} | {r['images_per_s']:.2f} |")
    (out / "ddim_steps.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
