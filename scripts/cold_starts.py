"""Fitted starts of an unconditional cold run side by side -> results/ablations/cold-starts.{md,json}.

    .venv/bin/python scripts/cold_starts.py runs/cold-row-unet --components 10 50 100 --noise 0 0.05

For a cold process the start x_T is all the sampler is given: every sample is a deterministic function of
it (Algorithm 2 of Bansal et al. 2022). So the mixture fitted to the final values of training digits
(processes/starts.py) bounds what the net can draw. Each row is scripts/quality_results.py on N samples (default
2,000, seed 0) with one start: GMM components x start noise (the std of pixel noise added to x_T). KID
and FID against the first N test digits (Inception-v3 2015-12-05 pool3; KID is unbiased at small N, so
rows compare; FID at N = 2,000 is biased upwards and only ranks), the MNIST classifier's IS on the N
samples, the largest gap between a digit's share of the samples and of the test set, and the background
level. The samples are kept in RUN/eval/, so a rerun reuses them.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
from pathlib import Path

from mnistdiff import experiment
from mnistdiff.errors import UserError, run_script


def _quality_results():
    spec = importlib.util.spec_from_file_location("quality_results", Path(__file__).with_name("quality_results.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def measure(run: Path, n: int, components: list[int], noises: list[float], runtime: str, data_dir) -> list[dict]:
    qr, rows = _quality_results(), []
    with tempfile.TemporaryDirectory() as tmp:
        for c in components:
            for s in noises:
                argv = [str(run), "-n", str(n), "--n-fid", str(n), "--components", str(c), "--start-noise", str(s),
                        "--runtime", runtime, "--out", tmp, "--name", "row"] + (["--data-dir", data_dir] if data_dir else [])
                qr.main(argv)
                r = json.loads((Path(tmp) / "row.json").read_text())
                rows.append({"components": c, "noise": s, "n": n, **{k: r[k] for k in (
                    "kid", "kid_std", "fid", "classifier_is", "max_class_share_gap_pp", "background", "saturated_share",
                    "sampler", "epochs_done", "train_minutes")}})
    return rows


def markdown(run: Path, rows: list[dict], machine: dict) -> str:
    n = rows[0]["n"]
    lines = [f"# Fitted starts of `{run}`", "", "Written by `scripts/cold_starts.py`; do not edit by hand. "
             + __doc__.split("\n\n")[2].replace("\n", " "), "",
             f"Run: `{run}`, {rows[0]['epochs_done']} epochs ({rows[0]['train_minutes']:.1f} min of training loop), "
             f"sampler {rows[0]['sampler']}; measured on {machine['cpu']}, {machine['cpu_count']} logical CPUs, "
             f"torch {machine['torch']}.", "",
             f"| GMM components | start noise | KID x1000 (n={n:,}) | FID (n={n:,}) | classifier IS | largest share gap "
             "(points) | background | saturated % |", "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['components']} | {r['noise']:g} | {1000 * r['kid']:.1f} +- {1000 * r['kid_std']:.1f} | "
                     f"{r['fid']:.1f} | {r['classifier_is']:.2f} | {r['max_class_share_gap_pp']:.2f} | "
                     f"{r['background']:.2f} | {100 * r['saturated_share']:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("-n", type=int, default=2000, help="samples per row and test digits for KID/FID (default: 2000)")
    ap.add_argument("--components", type=int, nargs="+", default=[10], help="GMM components (default: 10)")
    ap.add_argument("--noise", type=float, nargs="+", default=[0.0], help="start noise std (default: 0)")
    ap.add_argument("--out", type=Path, default=Path("results"))
    ap.add_argument("--runtime", default="auto", choices=["torch", "openvino", "auto"])
    ap.add_argument("--data-dir")
    args = ap.parse_args(argv)
    if args.n < 10 or min(args.components) < 1 or min(args.noise) < 0:
        raise UserError("-n must be >= 10, --components >= 1 and --noise >= 0, e.g. --components 10 50 --noise 0 0.05")
    rows = measure(args.run, args.n, args.components, args.noise, args.runtime, args.data_dir)
    machine = experiment.machine()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cold-starts.json").write_text(json.dumps({"run": str(args.run), "machine": machine, "rows": rows},
                                                          indent=2) + "\n")
    md = markdown(args.run, rows, machine)
    (args.out / "cold-starts.md").write_text(md)
    print(md, file=sys.stdout)
    return 0


if __name__ == "__main__":
    run_script(main)
