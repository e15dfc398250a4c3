"""FID / KID of a trained run against the number of net calls of its samplers: DDIM steps (Song et al.
2021) by default, with 1000-step ancestral DDPM as the reference row, so users can pick a step count;
--samplers ddim,dpm++2m adds DPM-Solver++(2M) (Lu et al. 2022) at the same net calls (an EDM run:
heun,dpm++2m).

    MNISTDIFF_DATA=/work/shared/data/mnist .venv/bin/python benchmarks/ddim_steps.py runs/quick -n 500
    .venv/bin/python benchmarks/ddim_steps.py runs/ddpm-unet --samplers ddim,dpm++2m --clip --no-ddpm --name solver_steps

Writes benchmarks/NAME.json and benchmarks/NAME.md (NAME: ddim_steps unless --name). Every row uses the same n starting
points (same seed), the same real reference images and the same Inception features (evaluation/evaluator.py).
FID from a few hundred samples is biased upwards (it falls as n grows): compare rows, not papers.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

from mnistdiff.sampling import samplers as S
from mnistdiff.errors import UserError
from mnistdiff.evaluation.evaluator import Evaluator
from mnistdiff.sampling.generate import generate
from mnistdiff.sampling.load import load_trained

HERE = Path(__file__).resolve().parent


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="a trained gaussian (DDPM) run directory")
    p.add_argument("-n", type=int, default=500, help="samples per row (default: 500)")
    p.add_argument("--n-ref", type=int, default=2000, help="real test images in the reference (default: 2000)")
    p.add_argument("--steps", default="10,20,50,100,1000", help="step counts (default: 10,20,50,100,1000)")
    p.add_argument("--samplers", default="ddim", help="samplers, each at every step count (default: ddim; e.g. "
                   "ddim,dpm++2m; heun,dpm++2m for an EDM run)")
    p.add_argument("--clip", action="store_true", help="clamp each x0 estimate to the data range (ddim, dpm++2m)")
    p.add_argument("--runtime", default="auto", choices=["torch", "openvino", "auto"],
                   help="inference runtime of the sampling net and Inception (default: auto, as the CLI)")
    p.add_argument("--name", default="ddim_steps", help="output file name, without .json/.md (default: ddim_steps)")
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
        names = args.samplers.split(",")
        unknown = [s for s in names if s not in S.SAMPLERS or "steps" not in S.SAMPLERS[s].options]
        if unknown or not args.name or "/" in args.name:
            raise UserError(f"--samplers {args.samplers!r} must list samplers with steps ({', '.join(n for n, s in S.SAMPLERS.items() if 'steps' in s.options)}) "
                            f"and --name {args.name!r} be a plain file name")
        cfg, net, degradation = load_trained(args.run, runtime=args.runtime, batch_size=min(args.n, 500))
        for name in names + ([] if args.no_ddpm else ["ddpm"]):
            S.check_compatible(name, degradation)  # e.g. ddim on an EDM run: --samplers heun,dpm++2m --no-ddpm
        if args.clip and "heun" in names:
            raise UserError("--clip is for ddim and dpm++2m; the heun sampler does not clip")
    except UserError as e:
        print(f"ddim_steps.py: error: {e}", file=sys.stderr)
        return 2
    ev = Evaluator(metrics="all", n_ref=args.n_ref, progress=True, runtime=args.runtime)
    rows = []
    extra = {"ddim": {"eta": args.eta}}
    clip = {"clip": True} if args.clip else {}
    plan = [(name, {"steps": s, **extra.get(name, {}), **clip}) for name in names for s in steps]
    if not args.no_ddpm:
        plan.append(("ddpm", {}))
    for sampler, options in plan:
        t0 = time.perf_counter()
        images = generate(net, degradation, cfg, args.n, seed=args.seed, sampler=sampler, sampler_options=options)
        sampling_s = time.perf_counter() - t0
        result = ev.evaluate(images)
        calls = 2 * options["steps"] - 1 if sampler == "heun" else options.get("steps", degradation.T)
        row = {"sampler": sampler, **options, "net_calls": calls,
               "sampling_s": round(sampling_s, 1), "images_per_s": round(args.n / sampling_s, 3),
               **{k: result[k] for k in ("fid", "kid", "kid_std", "fd_classifier") if k in result}}
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    meta = {"run": str(args.run), "n": args.n, "n_ref": args.n_ref, "seed": args.seed, "eta": args.eta,
            "date": datetime.datetime.now().isoformat(timespec="minutes"), "protocol": ev.protocol()}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2, default=str) + "\n")
    lines = ["# FID / KID against sampling steps\n",
             f"Run `{args.run}`, {args.n} samples per row (seed {args.seed}), against the first {args.n_ref} MNIST "
             f"test images; Inception-v3 pool3 features (mnistdiff.evaluation.features). Measured {meta['date']} by "
             f"`python benchmarks/ddim_steps.py {' '.join(argv if argv is not None else sys.argv[1:])}`. FID of {args.n} "
             "samples is biased upwards: compare rows.\n",
             "| sampler | net calls | eta | clip | FID | KID (x1000) | images/s |", "| --- | ---: | ---: | --- | ---: | ---: | ---: |"]
    for r in rows:
        kid = f"{1000 * r['kid']:.2f} +- {1000 * r['kid_std']:.2f}" if "kid" in r else "-"
        fid = f"{r['fid']:.2f}" if "fid" in r else "-"
        lines.append(f"| {r['sampler']} | {r['net_calls']} | {r.get('eta', '-')} | {'yes' if r.get('clip') else 'no'} "
                     f"| {fid} | {kid} | {r['images_per_s']:.2f} |")
    (out / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
