"""Ship a trained run as a model that samples by name (`mnistdiff sample NAME`, `mnistdiff.load(NAME)`).

    python scripts/ship_model.py RUN NAME --description "..." [--sampling '{"sampler": "ddim", ...}']
                                 [-n 2000] [--digit 0,1,2,3,4,5,6,7,8,9]

Writes src/mnistdiff/assets/models/NAME.safetensors (the run's EMA weights and config, no optimiser state:
sampling.shipped.export) and NAME.json, the card: what the model is, how it was trained (from RUN's config and
metrics.jsonl), its sampling defaults, and what this script measured on the shipped file itself
(`mnistdiff evaluate shipped:NAME -n N --memorisation`, against the 10,000 test digits; the evaluation JSON stays in
shipped/NAME/eval/). An existing model of that name is replaced only with --replace.

--measured RUN/eval/X.json takes the run's own evaluation instead of sampling again (hours for a 1000-step DDPM on
a CPU): it must be of the very weights shipped (the SHA-256 of RUN/checkpoints/last.safetensors, EMA where kept),
with --memorisation, at least 2,000 samples, and the sampler and start of the card.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

from mnistdiff import config as C, files, machine, processes
from mnistdiff.evaluation.evaluate import evaluate_run
from mnistdiff.sampling import shipped
from mnistdiff.sampling.spec import resolve
from mnistdiff.training import checkpoint, rundir
from mnistdiff.training.checkpoint import store

MIN_N = 2000  # samples behind a card's FID: FID's bias at small counts is larger than the gaps between models


def training_record(run: Path) -> dict:
    cfg = C.from_dict(C.load_file(run / "config.json"))
    epochs = [r for r in rundir.read_metrics(run) if r.get("type") == "epoch"]
    start = next((r for r in rundir.read_metrics(run) if r.get("type") == "start"), {})
    switches = [r for r in rundir.read_metrics(run) if r.get("type") == "event" and r.get("event") == "precision"]
    return {"epochs": cfg.train.epochs, "images": cfg.train.epochs * (cfg.train.subset or 60_000),
            "minutes": round(sum(r["time_s"] for r in epochs) / 60, 1),
            "final_loss": round(epochs[-1]["loss_mean"], 5) if epochs else None,
            "precision": start.get("precision", cfg.train.precision) + "".join(
                f", {r['after']} from epoch {r['epoch'] + 1}" for r in switches),
            "seed": cfg.train.seed}


def measured(result: dict, command: str) -> dict:
    mem = result["memorisation"]
    return {"command": command, "date": time.strftime("%Y-%m-%d", time.gmtime()),
            "cpu": f"{machine.cpu_model()}, {os.cpu_count()} cores", "n": result["samples"]["n"],
            "n_ref": result["protocol"]["real"]["count"], "seed": result["samples"]["seed"],
            "sampler": result["samples"]["sampler"], "sampler_options": result["samples"]["sampler_options"],
            "start": result["samples"]["start"], "fid": result["fid"], "kid": result["kid"],
            "kid_std": result["kid_std"], "classifier_is": result["classifier_is"],
            "classifier_is_std": result["classifier_is_std"], "fd_classifier": result["fd_classifier"],
            "class_histogram": result["class_histogram"],
            **({"digit_agreement": result["digit_agreement"]} if "digit_agreement" in result else {}),
            "copy_rate_pixel": mem["pixel"]["copy_rate"], "copy_rate_classifier": mem["classifier"]["copy_rate"],
            "memorisation": mem, "precision": result["samples"]["precision"],
            "protocol": ("FID and KID: Inception-v3 pool3 features of the n samples against the first n_ref MNIST "
                         "test digits (FID is biased upwards at small n: compare equal counts only); classifier IS "
                         "and Frechet distance: the shipped MNIST classifier's; copy rate: the share of samples "
                         "nearer a training digit than 99% of test digits are (about 1% for new digits)")}


def run_evaluation(run: Path, path: Path, sampling: dict, digit: str | None) -> tuple[dict, str]:
    """(result, the command that made it) of RUN's own evaluation, refused (SystemExit) unless it measured what the
    card will describe: the weights shipped, the card's sampling, the digits asked for, and a copy rate."""
    result = json.loads(Path(path).read_text())
    s = result["samples"]
    last = store.checkpoint_path(run, "last")
    cfg = C.from_dict(C.load_file(run / "config.json"))
    card = resolve(cfg, processes.build(cfg.process), s["n"], sampler=sampling.get("sampler"),
                   start=sampling.get("start"), sampler_options=sampling.get("sampler_options"))
    checks = {"of this run's last checkpoint (--checkpoint last)": s["checkpoint"] == "last",
              "of the weights shipped (EMA where the run kept them: --weights ema)": s["weights"] == "ema",
              f"of the current {last} (its SHA-256)": s.get("weights_sha256") == files.sha256_file(last),
              f"of at least {MIN_N} samples": s["n"] >= MIN_N,
              "with --memorisation": "memorisation" in result,
              f"of the digits {digit}": s.get("digit") == digit,
              f"with the card's sampler {card.tag}": (s["sampler"], s["sampler_options"]) == (
                  card.sampler, card.sampler_options),
              f"from the card's start {card.start}": (s["start"], s.get("start_options")) == (
                  card.start, sampling.get("start_options")),
              "with the card's guidance": s.get("guidance") == sampling.get("guidance", s.get("guidance"))}
    failed = [what for what, ok in checks.items() if not ok]
    if failed:
        sys.exit(f"--measured {path}: the evaluation is not {failed[0]}; evaluate again or ship without --measured")
    flags = f" --seed {s['seed']}" * (s["seed"] != 0) + f" --sample-batch-size {s['batch_size']}" * (
        s.get("batch_size", 500) != 500) + f" --digit {digit}" * bool(digit)
    return result, f"mnistdiff evaluate {run} -n {s['n']}{flags} --memorisation"


RESULTS = Path(__file__).resolve().parent.parent / "results"
INDEX = RESULTS / "shipped-models.md"


def closest(name: str) -> Path:
    """The figure of a model's samples nearest the training digits (above) and those digits (below)."""
    return RESULTS / "img" / f"shipped-{name}-closest.png"


def write_index() -> Path:
    """results/shipped-models.md: one row per card, from the cards alone."""
    rows = []
    for name in shipped.names():
        c = shipped.card(name)
        m, t = c.get("measured", {}), c["training"]
        if not m:
            continue
        rows.append(f"| `{name}` | {c['description']} | {t['epochs']} epoch{'s' * (t['epochs'] != 1)}, "
                    f"{t['minutes']} min ({t['precision']}) | {m['fid']:.2f} ({m['n']:,} vs {m['n_ref']:,}) | "
                    f"{m['kid']:.4f} ± {m['kid_std']:.4f} | {m['classifier_is']:.2f} | "
                    f"{100 * m['copy_rate_pixel']:.2f}% / {100 * m['copy_rate_classifier']:.2f}% | "
                    f"{c['weights']['bytes'] / 1e6:.1f} MB | `{m['command']}` on {m['cpu']}, {m['date']} |")
    figures = [f"![{n}: the samples nearest a training digit (top) and those digits (bottom)](img/{closest(n).name})"
               f"\n\n*{n}: the {len(shipped.card(n)['measured']['memorisation']['closest_pairs'])} samples nearest "
               "a training digit (top) and those training digits (bottom).*" for n in shipped.names()
               if "measured" in shipped.card(n) and closest(n).is_file()]
    protocol = next((shipped.card(n)["measured"]["protocol"] for n in shipped.names()
                     if "measured" in shipped.card(n)), "")
    INDEX.write_text(
        "# The shipped models\n\n"
        "The models `pip install mnistdiff` brings (`mnistdiff models`; "
        "[sampling](../docs/sampling.md#shipped-models)),"
        " each measured by `scripts/ship_model.py` with the sampling settings of its card: on the shipped file "
        "(`evaluate shipped:NAME`), or in the run's own evaluation of the same weights (`evaluate RUN`). "
        "This page is generated from the cards (`src/mnistdiff/assets/models/NAME.json`, which hold the full "
        "record: config, per-class histogram, memorisation distances).\n\n"
        "| model | what it is | training | FID | KID | classifier IS | copy rate (pixels / classifier) | file "
        "| measured by |\n|---|---|---|---:|---:|---:|---:|---:|---|\n" + "\n".join(rows) + "\n\n"
        f"{protocol}. Real test digits score a classifier IS of about 9.9.\n\n" + "\n\n".join(figures) + "\n")
    return INDEX


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", nargs="?")
    p.add_argument("name", nargs="?")
    p.add_argument("--description")
    p.add_argument("--sampling", default="{}", help="the card's sampling defaults as JSON (shipped.SAMPLING_KEYS)")
    p.add_argument("-n", type=int, default=2000)
    p.add_argument("--digit", help="digits of a conditional model's evaluation (e.g. 0,1,2,3,4,5,6,7,8,9)")
    p.add_argument("--preset", help="the preset the run was trained from (`mnistdiff train --preset NAME`)")
    p.add_argument("--replace", action="store_true")
    p.add_argument("--measured", metavar="EVAL_JSON", help="RUN's own evaluation of the same weights, in place of "
                   "sampling the shipped file again")
    p.add_argument("--index", action="store_true", help="only rewrite results/shipped-models.md from the cards")
    args = p.parse_args()
    if args.index:
        print(f"wrote {write_index()}")
        return 0
    if not (args.run and args.name and args.description):
        p.error("pass RUN NAME --description TEXT (or --index)")
    run = Path(args.run)
    sampling = json.loads(args.sampling)
    unknown = set(sampling) - set(shipped.SAMPLING_KEYS)
    if unknown:
        sys.exit(f"--sampling: unknown key(s) {', '.join(sorted(unknown))}; choose from {shipped.SAMPLING_KEYS}")
    weights, card_path = shipped.weights(args.name), shipped.MODELS / f"{args.name}.json"
    if (weights.exists() or card_path.exists()) and not args.replace:
        sys.exit(f"{weights} exists; pass --replace to ship {run} in its place")
    if args.measured:  # checked before anything is written
        result, command = run_evaluation(run, Path(args.measured), sampling, args.digit)
    shipped.MODELS.mkdir(parents=True, exist_ok=True)
    tmp = weights.with_suffix(".tmp.safetensors")
    tmp.unlink(missing_ok=True)
    shipped.export(run, tmp)
    os.replace(tmp, weights)
    tensors, cfg, _ = checkpoint.load(weights)
    flags = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in {"digit": args.digit}.items() if v)
    card = {"name": args.name, "description": args.description, "preset": args.preset, "config": cfg,
            "weights": {"file": weights.name, "bytes": weights.stat().st_size,
                        "sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
                        "parameters": sum(t.numel() for t in tensors.values()), "kind": "EMA" if cfg["train"]
                        ["ema_decay"] else "trained (the run kept no average)"},
            "training": training_record(run), "sampling": sampling,
            "sample": f"mnistdiff sample {args.name} -n 100" + (" --digit all" if cfg["model"]["conditional"] else "")}
    card_path.write_text(json.dumps(card, indent=2) + "\n")  # sampling defaults in place before measuring
    if args.measured:
        out = Path(args.measured)
    else:
        command = f"mnistdiff evaluate shipped:{args.name} -n {args.n} {flags} --memorisation".replace("  ", " ")
        out, result = evaluate_run(shipped.PREFIX + args.name, n=args.n, digit=args.digit, memorisation=True,
                                   runtime="auto", name=f"card-n{args.n}", progress=True)
    card["measured"] = {**measured(result, command), "eval": str(out)}
    shutil.copyfile(out.with_name(f"{out.stem}-closest.png"), closest(args.name))
    # The start the evaluation fitted (gmm): in the run's folder, or in shipped/NAME/ for a fresh measurement.
    fits = sorted(((run if args.measured else shipped.folder(None, args.name)) / "priors").glob("*.json"))
    if fits:
        shutil.rmtree(shipped.priors(args.name), ignore_errors=True)
        shipped.priors(args.name).mkdir()
        for fit in fits:
            shutil.copyfile(fit, shipped.priors(args.name) / fit.name)
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    write_index()
    print(f"wrote {weights} ({card['weights']['bytes'] / 1e6:.1f} MB) and {card_path}: FID {result['fid']:.2f}, "
          f"copy rate {100 * card['measured']['copy_rate_pixel']:.2f}% (pixels)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
