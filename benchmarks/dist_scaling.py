"""Training throughput of 1 process against N processes under torchrun (gloo, CPU), same global batch.

    MNISTDIFF_DATA=/work/shared/data/mnist .venv/bin/python benchmarks/dist_scaling.py [--steps 40] [--repeats 2]

Each setting trains the seed CNN (Table 1.1 widths 16,32,32,16) for one epoch of `steps` global
batches of 128 with `mnistdiff train`, in a fresh run directory. The number reported is the epoch row's
images_per_s from RUN/metrics.jsonl: the training loop alone (from the first step to the last, all
ranks' images), without process start-up, data loading, the sample grid or checkpoints. Beside it, the
CPU seconds the whole command used (all its processes, start-up included): on a machine shared with
other jobs, more processes also win a larger share of the cores, which images/s alone would credit to
scaling. Settings are interleaved across repeats so drifting load hits them alike; the 1-minute load
average before each run is recorded too. Writes benchmarks/dist_scaling.{json,md}.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
BATCH = 128
# (label, processes, torch threads per process)
SETTINGS = [("1 process, 1 thread", 1, 1), ("1 process, 2 threads", 1, 2), ("2 processes, 1 thread each", 2, 1)]


def _children_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def train_once(procs: int, threads: int, steps: int, run: Path) -> tuple[float, float]:
    flags = ["train", "--run", str(run), "--subset", str(steps * BATCH), "--batch-size", str(BATCH),
             "--epochs", "1", "--T", "100", "--threads", str(threads), "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    if procs == 1:
        cmd = [sys.executable, "-m", "mnistdiff", *flags]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(procs),
               "-m", "mnistdiff", "--", *flags]
    cpu0 = _children_cpu_s()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    cpu_s = _children_cpu_s() - cpu0
    if r.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stderr[-2000:]}")
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return next(row["images_per_s"] for row in rows if row["type"] == "epoch"), cpu_s


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=40, help="global batches of 128 per measurement (default: 40)")
    p.add_argument("--repeats", type=int, default=2, help="measurements per setting (default: 2)")
    args = p.parse_args()
    results = {label: [] for label, _, _ in SETTINGS}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.repeats):
            for label, procs, threads in SETTINGS:
                load = os.getloadavg()[0]
                ips, cpu_s = train_once(procs, threads, args.steps, Path(tmp) / f"{procs}-{threads}-{rep}")
                results[label].append({"images_per_s": round(ips, 1), "cpu_s": round(cpu_s, 1),
                                       "load_before": round(load, 2)})
                print(f"{label}: {ips:.0f} images/s, {cpu_s:.0f} CPU s (load {load:.1f})", file=sys.stderr)
    out = {"date": datetime.datetime.now().isoformat(timespec="minutes"), "cores": os.cpu_count(),
           "steps": args.steps, "batch": BATCH, "results": results}
    (HERE / "dist_scaling.json").write_text(json.dumps(out, indent=2) + "\n")
    base = statistics.median(r["images_per_s"] for r in results[SETTINGS[0][0]])
    lines = ["# Multi-process scaling on CPU (gloo)", "",
             f"Measured {out['date']} on {out['cores']} CPU cores shared with other users, by "
             f"`benchmarks/dist_scaling.py --steps {args.steps} --repeats {args.repeats}`: the seed CNN, global "
             f"batch {BATCH}, one epoch of {args.steps} steps per measurement; images/s is the epoch row of "
             "RUN/metrics.jsonl (the training loop only). 2 processes run under "
             "`torchrun --standalone --nproc_per_node 2`, each on half of every global batch.", "",
             "| setting | images/s (each run) | median | vs 1 process, 1 thread | CPU s of the command (each run) "
             "| load average before |",
             "|---|---|---|---|---|---|"]
    for label, runs_ in results.items():
        med = statistics.median(r["images_per_s"] for r in runs_)
        lines.append(f"| {label} | {', '.join(str(r['images_per_s']) for r in runs_)} | {med:.0f} | "
                     f"{med / base:.2f}x | {', '.join(str(r['cpu_s']) for r in runs_)} | "
                     f"{', '.join(str(r['load_before']) for r in runs_)} |")
    (HERE / "dist_scaling.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
