"""Do bf16 samples score as fp32's? The same seeds sampled both ways from one run, measured alike.

    python scripts/precision_agreement.py RUN [-n 2000] [--sampler ...] [--digit 0,1,...,9 --guidance 0.5]
        -> results/ablations/precision-<run>.{md,json}

bf16 passes where every difference is inside the metric's own noise: KID within its standard deviation over
subsets, the classifier IS within its standard deviation over splits (FID is shown, but it is biased at small
counts, so equal counts compare). machine.BF16_SAMPLING_MEASURED lists the networks that passed, which is what
`--precision auto` follows. The sampling speed of each is the evaluation's own timing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mnistdiff.evaluation import evaluate as E
from mnistdiff.errors import run_script
from mnistdiff import machine


def verdict(fp32: dict, bf16: dict) -> dict:
    """Each metric's difference against its noise; passes when every difference is within it."""
    rows = {}
    for key in ("kid", "classifier_is"):
        if key in fp32:
            noise = max(fp32[f"{key}_std"], bf16[f"{key}_std"])
            rows[key] = {"fp32": fp32[key], "bf16": bf16[key], "difference": bf16[key] - fp32[key], "noise": noise,
                         "within": abs(bf16[key] - fp32[key]) <= noise}
    if "fid" in fp32:
        rows["fid"] = {"fp32": fp32["fid"], "bf16": bf16["fid"], "difference": bf16["fid"] - fp32["fid"],
                       "relative": (bf16["fid"] - fp32["fid"]) / fp32["fid"]}
    return {"metrics": rows, "passes": all(r.get("within", True) for r in rows.values())}


def markdown(run: Path, out: dict) -> str:
    lines = [f"# bf16 against fp32 sampling: {run.name}", "",
             f"Written by `scripts/precision_agreement.py {run}`; do not edit by hand.", "",
             f"- {out['n']} samples each, the same seeds; {out['cpu']}", "",
             "| metric | fp32 | bf16 | difference | noise | within |", "|---|---:|---:|---:|---:|---|"]
    for key, r in out["verdict"]["metrics"].items():
        lines.append(f"| {key} | {r['fp32']:.5g} | {r['bf16']:.5g} | {r['difference']:+.3g} | "
                     f"{r.get('noise', float('nan')):.3g} | {r.get('within', '-')} |")
    s = out["sampling_s"]
    lines += ["", f"Sampling: {s['fp32']:.1f} s in fp32, {s['bf16']:.1f} s in bf16 ({s['fp32'] / s['bf16']:.2f}x).",
              "", f"**bf16 {'passes' if out['verdict']['passes'] else 'does not pass'}**: "
              + ("every difference is inside its noise." if out["verdict"]["passes"] else
                 "a difference is outside its noise; auto keeps fp32 for this net."), ""]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path)
    p.add_argument("-n", type=int, default=2000)
    p.add_argument("--sampler")
    p.add_argument("--steps", type=int)
    p.add_argument("--clip", action="store_true", default=None)
    p.add_argument("--digit")
    p.add_argument("--guidance", type=float, default=0.0)
    p.add_argument("--n-ref", type=int, default=10_000)
    p.add_argument("--metrics", default="all", choices=["all", "classifier"])
    p.add_argument("--cache-dir")
    p.add_argument("--out", type=Path, default=Path("results/ablations"))
    args = p.parse_args()
    results = {}
    for precision in ("fp32", "bf16"):
        _, results[precision] = E.evaluate_run(
            args.run, n=args.n, sampler=args.sampler, sampler_options={"steps": args.steps, "clip": args.clip},
            digit=args.digit, guidance=args.guidance, n_ref=args.n_ref, metrics=args.metrics, cache=args.cache_dir,
            precision=precision, runtime="torch", name=f"precision-{precision}-n{args.n}", progress=False)
    cpu = machine.cpu_model()
    out = {"run": str(args.run), "n": args.n, "cpu": f"{cpu}, native bf16: {machine.auto_precision('cpu')[0] == 'bf16'}",
           "verdict": verdict(results["fp32"], results["bf16"]),
           "sampling_s": {k: r["timing"]["sampling_s"] for k, r in results.items()}}
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"precision-{args.run.name}"
    stem.with_suffix(".json").write_text(json.dumps(out, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(args.run, out))
    print(f"wrote {stem}.md (bf16 {'passes' if out['verdict']['passes'] else 'does not pass'})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run_script(main)
