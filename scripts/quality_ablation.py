"""Quality levers on and off at an equal training budget -> results/ablations/quality-ablation.{md,json}.

    .venv/bin/python scripts/quality_ablation.py                  # every row; trains what is missing
    .venv/bin/python scripts/quality_ablation.py --only edm ddpm  # some rows (and the runs they need)
    .venv/bin/python scripts/quality_ablation.py --list           # the rows and what each changes

Every training config is one epoch of the 60,000 training digits (469 steps of 128, the `make run`
budget) with one torch thread, trained once into RUNS/<train> (an interrupted one resumes). Each row
then draws N samples (default 2,000, seed 0) with its sampler and is measured on them: KID and FID
against the first N test digits (Inception-v3 2015-12-05 pool3; KID is unbiased at small N, so rows
compare; FID at N = 2,000 is biased upwards and only ranks), the MNIST classifier's IS, the background
level (mean grey of the top 4 rows; test digits 1.23) and the share of saturated samples (more than
half the pixels >= 128). Measured rows are kept in the JSON and not measured again unless --force.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from mnistdiff import config as C, experiment
from mnistdiff.sampling import guidance as G
from mnistdiff.errors import UserError, run_script
from mnistdiff.evaluation.evaluator import Evaluator
from mnistdiff.sampling.generate import generate
from mnistdiff.sampling.load import load_trained
from mnistdiff.training.loop import train
from mnistdiff import machine
from mnistdiff.training import rundir
from mnistdiff.evaluation import statistics

EDM = {"degradation": "edm", "prediction": "x0", "min_snr": 0.0}
COND = {**EDM, "p_mean": -0.4, "p_std": 1.4, "conditional": True}  # make run's recipe
# Batch and learning rate of COND (tag -> batch, lr); warm-up over the same 12,800 images as BASE's 100 steps of 128.
BATCH_LR = {"lr2": (128, 2e-3), "bs64": (64, 1e-3), "bs64-lr2": (64, 2e-3), "bs32": (32, 1e-3), "bs32-lr2": (32, 2e-3),
            "bs16": (16, 1e-3)}
# name -> overrides of BASE: the DDPM that was `make run`'s quick-unet before this ablation (the ddpm-unet
# preset of that time for 1 epoch: UNet 16/32/64 + attention, EMA 0.999, batch 128, lr 1e-3 with 100 warm-up steps and
# cosine decay, eps-prediction with min-SNR-5 on linear betas; spelled out, as the preset has moved on).
DDPM_UNET = {"batch_size": 32, "lr": 2e-3, "lr_warmup": 800, "conditional": True, "prediction": "v", "schedule": "cosine",
             "min_snr": 0.0}
BASE = {"epochs": 1, "batch_size": 128, "lr": 1e-3, "lr_warmup": 100, "sample_epochs": (), "conditional": False,
        "prediction": "eps", "schedule": "linear", "min_snr": 5.0}
TRAINS: dict[str, dict] = {
    "ddpm": {},
    "ddpm-minsnr0": {"min_snr": 0.0},
    "ddpm-v-cosine": {"prediction": "v", "schedule": "cosine", "min_snr": 0.0},
    "ddpm-v-cosine-cond": {"prediction": "v", "schedule": "cosine", "min_snr": 0.0, "conditional": True},
    "ddpm-v-cosine-ss": {"prediction": "v", "schedule": "cosine", "min_snr": 0.0, "scale_shift": True},
    "edm": EDM,
    "edm-wide": {**EDM, "hidden": (32, 64, 64)},
    "edm-bs64": {**EDM, "batch_size": 64, "lr_warmup": 200},
    "edm-sd03": {**EDM, "sigma_data": 0.3},
    "edm-pmean": {**EDM, "p_mean": -0.4, "p_std": 1.4},
    "edm-pmean-cond": COND,
    **{f"edm-pmean-cond-{tag}": {**COND, "batch_size": b, "lr": lr, "lr_warmup": 12_800 // b}
       for tag, (b, lr) in BATCH_LR.items()},
    # The precision A/B: the ddpm-unet recipe (spelled out, as BASE is) for one epoch, fp32 against bf16 at
    # equal steps (1,875 of 32); on a CPU without AVX512-BF16 the bf16 row trains ~16x slower (emulated).
    **{f"ddpm-unet-{p}": {**DDPM_UNET, "precision": p} for p in ("fp32", "bf16")},
}
BALANCED = ",".join(map(str, range(10)))  # a conditional row's digits: 0..9 cycled, n / 10 of each
# (row, training config, what the row changes, sampler, sampler options (+ digit, guidance), weights)
ROWS: list[tuple[str, str, str, str, dict, str]] = [
    ("ddpm", "ddpm", "baseline: DDPM eps, min-SNR 5 (make run's quick-unet before this table)", "ddim", {"steps": 50, "clip": True}, "ema"),
    ("ddpm-noclip", "ddpm", "sampler: DDIM without x0 clipping", "ddim", {"steps": 50}, "ema"),
    ("ddpm-raw", "ddpm", "EMA off (the last weights)", "ddim", {"steps": 50, "clip": True}, "raw"),
    ("ddpm-minsnr0", "ddpm-minsnr0", "loss weighting: min-SNR off", "ddim", {"steps": 50, "clip": True}, "ema"),
    ("ddpm-v-cosine", "ddpm-v-cosine", "target v, cosine schedule, no min-SNR", "ddim", {"steps": 50, "clip": True}, "ema"),
    ("ddpm-v-cosine-ddim20", "ddpm-v-cosine", "sampler: DDIM, 20 net calls", "ddim", {"steps": 20, "clip": True}, "ema"),
    ("ddpm-v-cosine-dpm20", "ddpm-v-cosine", "sampler: DPM-Solver++(2M), 20 net calls", "dpm++2m", {"steps": 20, "clip": True}, "ema"),
    ("ddpm-v-cosine-cond", "ddpm-v-cosine-cond", "class-conditional (label dropout 0.1), balanced digits, guidance 0.5",
     "ddim", {"steps": 50, "clip": True, "digit": BALANCED, "guidance": 0.5}, "ema"),
    ("ddpm-v-cosine-ss", "ddpm-v-cosine-ss", "as ddpm-v-cosine, the UNet's embedding as scale and shift after each GroupNorm", "ddim", {"steps": 50, "clip": True}, "ema"),
    ("edm", "edm", "parametrisation: EDM preconditioning + log-normal sigma (Karras et al.)", "heun", {"steps": 18}, "ema"),
    ("edm-heun10", "edm", "sampler: Heun, 10 steps (19 net calls)", "heun", {"steps": 10}, "ema"),
    ("edm-dpm20", "edm", "sampler: DPM-Solver++(2M), 20 net calls", "dpm++2m", {"steps": 20}, "ema"),
    ("edm-dpm10", "edm", "sampler: DPM-Solver++(2M), 10 net calls", "dpm++2m", {"steps": 10}, "ema"),
    ("edm-wide", "edm-wide", "width: UNet 32/64/64 instead of 16/32/64", "heun", {"steps": 18}, "ema"),
    ("edm-bs64", "edm-bs64", "batch 64 (938 steps) instead of 128", "heun", {"steps": 18}, "ema"),
    ("edm-pmean", "edm-pmean", "noise levels: log sigma ~ N(-0.4, 1.4^2) instead of N(-1.2, 1.2^2)", "heun", {"steps": 18}, "ema"),
    ("edm-pmean-cond-g1", "edm-pmean-cond", "as edm-pmean, class-conditional (label dropout 0.1), balanced digits, guidance 1",
     "heun", {"steps": 18, "digit": BALANCED, "guidance": 1.0}, "ema"),
    ("edm-pmean-cond-g3", "edm-pmean-cond", "as edm-pmean-cond-g1 with guidance 3",
     "heun", {"steps": 18, "digit": BALANCED, "guidance": 3.0}, "ema"),
    *[(f"edm-pmean-cond-{tag}-g1", f"edm-pmean-cond-{tag}",
       f"as edm-pmean-cond-g1 with batch {b} ({-(-60_000 // b):,} steps) at learning rate {lr:g}",
       "heun", {"steps": 18, "digit": BALANCED, "guidance": 1.0}, "ema") for tag, (b, lr) in BATCH_LR.items()],
    *[(f"ddpm-unet-{p}", f"ddpm-unet-{p}", f"precision: the ddpm-unet recipe for 1 epoch (1,875 steps of 32), {p}",
       "ddim", {"steps": 50, "clip": True, "digit": BALANCED, "guidance": 0.5}, "ema") for p in ("fp32", "bf16")],
    ("edm-sd03", "edm-sd03", "sigma_data 0.3 (MNIST's pixel std in [-0.5, 0.5]) instead of 0.5", "heun", {"steps": 18}, "ema"),
]


def train_config(name: str) -> C.Config:
    return C.validate(C.apply(C.preset("ddpm-unet"), {**BASE, **TRAINS[name], "threads": 1}))


def ensure_trained(name: str, runs_dir: Path, data_dir) -> Path:
    run = runs_dir / name
    cfg = train_config(name)
    if run.exists():
        saved = C.from_dict(json.loads((run / "config.json").read_text()))
        if saved.to_dict() != machine.resolve_precision(cfg)[0].to_dict():  # config.json says what auto chose
            raise UserError(f"{run} was trained with another config than row {name!r} asks; move it away")
        done = max((r["epoch"] for r in rundir.read_metrics(run) if r["type"] == "epoch"), default=0)
        if done < cfg.train.epochs:
            train(cfg, run, resume=True, data_dir=data_dir, progress=False)
    else:
        train(cfg, run, data_dir=data_dir, progress=False)
    return run


def measure(row, run: Path, n: int, evaluator: Evaluator, data_dir, runtime: str) -> dict:
    name, train_name, what, sampler, options, weights = row
    options = dict(options)
    digits, guidance = G.labels(options.pop("digit", None), n), options.pop("guidance", 0.0)
    cfg, net, process = load_trained(run, weights=weights, runtime=runtime, batch_size=500)
    t0 = time.perf_counter()
    images = generate(net, process, cfg, n, seed=0, sampler=sampler, run=run, data_dir=data_dir,
                      sampler_options=options, digits=digits, guidance=guidance)
    sampling_s = time.perf_counter() - t0
    (run / "eval").mkdir(exist_ok=True)
    np.save(run / "eval" / f"ablation-{name}-n{n}.npy", images.numpy())
    result = evaluator.evaluate(images)
    epochs = [r for r in rundir.read_metrics(run) if r["type"] == "epoch"]
    return {"row": name, "train": train_name, "changes": what, "overrides": {k: list(v) if isinstance(v, tuple) else v
                                                                            for k, v in TRAINS[train_name].items()},
            "sampler": sampler, "sampler_options": row[4], "weights": weights, "n": n,
            "kid": result["kid"], "kid_std": result["kid_std"], "fid": result["fid"],
            "classifier_is": result["classifier_is"], "fd_classifier": result["fd_classifier"],
            "background": statistics.background_level(images), "saturated": statistics.saturated_share(images),
            "train_minutes": round(sum(r["time_s"] for r in epochs) / 60, 2),
            "steps": max((r["step"] for r in epochs), default=0),
            "sampling_images_per_s": round(n / sampling_s, 2), "date": time.strftime("%Y-%m-%d"),
            "cpu": experiment.machine()["cpu"], "precision": cfg.train.precision}


def markdown(rows: list[dict], machine: dict, n: int) -> str:
    lines = ["# Quality ablation at the `make run` budget", "",
             "Written by `scripts/quality_ablation.py`; do not edit by hand. " + __doc__.split("\n\n")[2].replace("\n", " "),
             "", f"Machines: {machine['cpu_count']} logical CPUs, torch {machine['torch']}; each row names the CPU and "
             "the training precision it was measured with. Training minutes are the run's own epoch times "
             "(metrics.jsonl), taken while other jobs shared the 2 cores, so compare them only between rows of one "
             "CPU.", "",
             f"| row | what changes | sampler | KID x1000 (n={n:,}) | FID (n={n:,}) | classifier IS | "
             "background | saturated % | train min | samples/s | trained on |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        opts = ", ".join(f"{k}={'0..9' if k == 'digit' else v}" for k, v in r["sampler_options"].items())
        lines.append(f"| {r['row']} | {r['changes']}{' (raw weights)' if r['weights'] == 'raw' else ''} | "
                     f"{r['sampler']} {opts} | {1000 * r['kid']:.1f} +- {1000 * r['kid_std']:.1f} | {r['fid']:.1f} | "
                     f"{r['classifier_is']:.2f} | {r['background']:.2f} | {100 * r['saturated']:.1f} | "
                     f"{r['train_minutes']:.1f} | {r['sampling_images_per_s']:.1f} | {r['cpu']}, {r['precision']} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", metavar="ROW", help="measure these rows (default: all)")
    ap.add_argument("--list", action="store_true", help="print the rows and exit")
    ap.add_argument("-n", type=int, default=2000, help="samples per row and test digits for KID/FID (default: 2000)")
    ap.add_argument("--runs", type=Path, default=Path("runs/ablation"), help="where the training runs live")
    ap.add_argument("--out", type=Path, default=Path("results"))
    ap.add_argument("--runtime", default="auto", choices=["torch", "openvino", "auto"])
    ap.add_argument("--force", action="store_true", help="measure rows again even when the JSON has them")
    ap.add_argument("--data-dir")
    args = ap.parse_args(argv)
    if args.list:
        for r in ROWS:
            print(f"{r[0]:16} train {r[1]:14} {r[3]} {r[4]} {r[5]}: {r[2]}")
        return 0
    names = [r[0] for r in ROWS]
    unknown = sorted(set(args.only or ()) - set(names))
    if unknown or args.n < 10:
        print(f"error: unknown row {unknown[0]!r}; --list shows them" if unknown else "error: -n must be >= 10",
              file=sys.stderr)
        return 2
    out_json = args.out / "quality-ablation.json"

    def measured_rows() -> dict:
        if not out_json.exists():
            return {}
        saved = json.loads(out_json.read_text())
        # Rows measured before rows named their machine: all on the file's machine, an AVX2-only CPU whose
        # precision (the default, and later auto) was fp32.
        return {r["row"]: {"cpu": saved["machine"]["cpu"], "precision": "fp32", **r} for r in saved["rows"]}

    done = measured_rows()
    evaluator = None
    for row in ROWS:
        if args.only and row[0] not in args.only or (row[0] in done and not args.force and done[row[0]]["n"] == args.n):
            continue
        print(f"row {row[0]}: {row[2]}", file=sys.stderr)
        run = ensure_trained(row[1], args.runs, args.data_dir)  # before the Inception reference: training is the long part
        evaluator = evaluator or Evaluator(metrics="all", n_ref=args.n, data_dir=args.data_dir, runtime=args.runtime)
        measured = measure(row, run, args.n, evaluator, args.data_dir, args.runtime)
        # Read again: another instance (--only other rows) may have written meanwhile.
        done = measured_rows()
        done[row[0]] = measured
        ordered = [done[r] for r in names if r in done]
        args.out.mkdir(parents=True, exist_ok=True)
        out_json.write_text(json.dumps({"machine": experiment.machine(), "rows": ordered}, indent=2) + "\n")
        (args.out / "quality-ablation.md").write_text(markdown(ordered, experiment.machine(), args.n))
        print(markdown(ordered, experiment.machine(), args.n))
    return 0


if __name__ == "__main__":
    run_script(main)
