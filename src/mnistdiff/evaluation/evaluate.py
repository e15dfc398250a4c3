"""`mnistdiff evaluate RUN`: one checked request (check_request), then samples of a trained run scored by an
Evaluator into RUN/eval/NAME.json, with the samples (.npy) beside it."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from .. import config as C, data, files
from ..config import MAX_EVAL
from ..errors import BadArgument, UserError, check_int
from .. import machine
from ..processes import starts
from ..sampling import samplers
from .evaluator import METRIC_SETS, Evaluator
from ..training import rundir
from ..training import checkpoint
from ..training.checkpoint import store

MAX_INCEPTION_BATCH = 1024  # images per Inception batch: 1024 x 3 x 299 x 299 floats is ~1.1 GB


def check_request(cfg: C.Config, process=None, *, n: int = 10_000, seed: int = 0, which: str = "last",
                  sampler: str | None = None, start: str | None = None, split: str = "test", n_ref: int = 10_000,
                  metrics: str = "all", name: str | None = None, batch_size: int = 64, sample_batch_size: int = 500,
                  sampler_options: dict | None = None, weights: str = "ema", runtime: str = "torch", digit=None,
                  guidance: float = 0.0, precision: str = "fp32", start_options: dict | None = None,
                  **_) -> tuple[str, str, dict, torch.Tensor | None, str]:
    """Every option of an evaluation checked against the run's config, before anything is loaded or trained
    (an experiment plan checks its evaluate stages with it before its first run trains).
    Returns (sampler, start, sampler_options, digits, result name) with the defaults filled in."""
    from ..sampling import guidance as G
    from .. import processes
    from ..sampling import runtime as RT
    from ..sampling.load import WEIGHTS
    from ..sampling.generate import check_counts
    from ..sampling.spec import resolve

    check_int("-n", n, 10, MAX_EVAL, "-n 10000 (IS uses 10 splits and FID a covariance)")
    check_int("--seed", seed, 0, 2 ** 63 - 1)
    check_int("--batch-size", batch_size, 1, MAX_INCEPTION_BATCH, "--batch-size 64")
    check_int("--n-ref", n_ref, 2, 60_000 if split == "train" else 10_000, "--n-ref 10000")
    check_counts(n, sample_batch_size, seed=seed)
    choices = [("--checkpoint", which, store.CHECKPOINT_NAMES), ("--split", split, data.SPLITS),
               ("--metrics", metrics, METRIC_SETS), ("--weights", weights, WEIGHTS),
               ("--runtime", runtime, RT.RUNTIMES), ("--sampler", sampler, samplers.SAMPLERS),
               ("--start", start, starts.STARTS), ("--precision", precision, machine.INFERENCE_PRECISIONS)]
    for flag, value, allowed in choices:
        if value is not None and value not in allowed:  # None: the run's default
            raise BadArgument(f"unknown {flag} {value!r}; choose one of: {', '.join(allowed)}")
    if name is not None and (not isinstance(name, str) or not name or name in (".", "..") or "/" in name
                             or "\\" in name or "\0" in name or name.startswith(".")
                             or len(name.encode(errors="replace")) > 200):
        raise BadArgument(f"--name {name!r} must be a plain file name (no folders, not hidden): results go to "
                          "RUN/eval/NAME.json")
    if precision == "bf16" and runtime == "openvino":
        raise BadArgument("--precision bf16 runs the net in torch's bf16 autocast; pass --runtime torch or auto")
    process = process or processes.build(cfg.process)
    spec = resolve(cfg, process, n, sampler=sampler, start=start, sampler_options=sampler_options,
                   digits=G.labels(digit, n), guidance=guidance)
    sampler, start, sampler_options, digits, tag = spec.sampler, spec.start, spec.sampler_options, spec.digits, spec.tag
    name = name or f"{tag}-{starts.tag(start, start_options)}{G.file_tag(digit, guidance)}-n{n}-seed{seed}-{which}" + \
        ("-raw" if weights == "raw" else "") + ("-bf16" if machine.inference_precision(precision, cfg.model.net)[0]
                                                == "bf16" else "")
    return sampler, start, sampler_options, digits, name


def evaluate_run(run, *, n: int = 10_000, seed: int = 0, which: str = "last", sampler: str | None = None,
                 start: str | None = None, split: str = "test", n_ref: int = 10_000, metrics: str = "all",
                 real_rows: bool = False, name: str | None = None, batch_size: int = 64,
                 sample_batch_size: int = 500, cache=None, inception_weights=None, inception_logits=None,
                 data_dir=None, progress: bool = True, sampler_options: dict | None = None,
                 weights: str = "ema", runtime: str = "torch", digit=None,
                 guidance: float | None = None, precision: str = "fp32", memorisation: bool = False,
                 start_options: dict | None = None) -> tuple[Path, dict]:
    """The final evaluation: n samples of a trained run (or a shipped model: shipped/NAME/eval/) ->
    RUN/eval/<name>.json (+ .npy samples, class chart). Settings left unset (None) are a shipped model's own.
    digit, guidance: what a conditional run draws (guidance.labels; "0,1,2,3,4,5,6,7,8,9" a balanced set);
    start_options: a fitted start's (components for gmm)."""
    from ..sampling.load import load_trained
    from ..sampling import shipped

    model = shipped.resolve(run)
    if model is None:
        run = Path(run)
        if not run.exists():
            known = shipped.also_known()
            raise UserError(f"{run} does not exist; pass a run directory made by `mnistdiff train`{known}")
        if not (run / "config.json").is_file():
            raise UserError(f"{run} is not a run directory (no config.json); pass one made by `mnistdiff train`")
        config = C.load_file(run / "config.json")
    else:  # results go to shipped/NAME/eval/, laid out as a run's
        config, run = checkpoint.load(shipped.weights(model))[1], shipped.folder(run, model)
        if which != "last":
            raise BadArgument(f"the shipped model {model} has one set of weights; drop --checkpoint {which}")
    chosen = shipped.fill(shipped.sampling_defaults(model), sampler=sampler, sampler_options=sampler_options,
                          start=start, start_options=start_options, guidance=guidance, digits=digit)
    sampler, sampler_options, start, start_options, guidance = (chosen[k] for k in shipped.SAMPLING_KEYS)
    request = dict(n=n, seed=seed, which=which, sampler=sampler, start=start, split=split, n_ref=n_ref,
                   metrics=metrics, name=name, batch_size=batch_size, sample_batch_size=sample_batch_size,
                   sampler_options=sampler_options, weights=weights, runtime=runtime, digit=digit, guidance=guidance,
                   precision=precision, start_options=start_options)
    check_request(C.from_dict(config), **request)  # before loading anything
    source = shipped.weights(model) if model else store.checkpoint_path(run, which)
    source = files.sha256_file(source) if source.is_file() else None  # before loading: training may replace it
    cfg, net, process = load_trained(model or run, which, weights, runtime=runtime, cache=cache,
                                         batch_size=min(n, sample_batch_size), precision=precision)
    sampler, start, sampler_options, digits, name = check_request(cfg, process, **request)
    precision = machine.inference_precision(precision, cfg.model.net)[0]
    out = run / "eval" / f"{name}.json"
    # One evaluation per result name at a time: a second one is refused now, not overwritten hours later.
    rundir.ensure_writable(run)
    with rundir.locked(run, what=f"evaluation named {name!r}", name=f".eval-{name}.lock"):
        _refuse_existing(out)
        made_eval_dir = not out.parent.exists()
        rundir.ensure_writable(out.parent)  # refused now rather than after hours of sampling
        if made_eval_dir:
            out.parent.rmdir()  # made again with the results: a failed evaluation leaves no empty eval/
        result = _measure(run, out, net, process, cfg, n, seed=seed, which=which, sampler=sampler, start=start,
                          sampler_options=sampler_options, digits=digits, digit=digit, guidance=guidance,
                          start_options=start_options, weights=weights, precision=precision, real_rows=real_rows,
                          memorisation=memorisation, sample_batch_size=sample_batch_size,
                          data_dir=data_dir, progress=progress, weights_sha256=source,
                          evaluator=dict(metrics=metrics, split=split, n_ref=n_ref, cache=cache, data_dir=data_dir,
                                         inception_weights=inception_weights, inception_logits=inception_logits,
                                         batch_size=batch_size, progress=progress, runtime=runtime))
    return out, result


def _refuse_existing(out: Path) -> None:
    for path in (out, out.with_suffix(".npy")):
        if path.exists() or path.is_symlink():
            raise UserError(f"{path} already exists; pass another --name or --seed (nothing was overwritten)")


def _measure(run: Path, out: Path, net, process, cfg, n: int, *, seed, which, sampler, start, sampler_options,
             digits, digit, guidance, weights, precision, real_rows, sample_batch_size, data_dir, progress,
             evaluator, memorisation=False, start_options=None, weights_sha256=None) -> dict:
    """Sample, measure and write RUN/eval/NAME.json with its .npy samples and class chart. With more than one
    sampling batch, each is kept in RUN/eval/NAME.partial/ until the result is written, and the same evaluation
    run again after an interruption samples only the batches still missing (partial.py)."""
    from ..sampling.generate import generate
    from ..sampling.partial import Partial

    name = out.stem
    t0 = time.perf_counter()
    ev = Evaluator(**evaluator)
    setup_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    partial = None
    if n > sample_batch_size and weights_sha256 is not None:
        partial = Partial(out.with_suffix(".partial"), dict(
            weights_sha256=weights_sha256, checkpoint=which, weights=weights, n=n, seed=seed,
            batch_size=sample_batch_size, sampler=sampler, sampler_options=sampler_options, start=start,
            start_options=start_options, digit=digit, guidance=guidance), precision)
    images = generate(net, process, cfg, n, seed=seed, sampler=sampler, start=start,
                      batch_size=sample_batch_size, run=run, data_dir=data_dir, progress=progress,
                      sampler_options=sampler_options, digits=digits, guidance=guidance,
                      start_options=start_options, partial=partial)
    sampling_s = time.perf_counter() - t1
    if progress:
        made = n - min(n, partial.resumed * sample_batch_size) if partial is not None else n
        rate = made / max(sampling_s, 1e-9)
        print(f"sampled {made} images in {sampling_s:.1f} s ({rate:.2f} images/s)", file=sys.stderr)
    result = ev.evaluate(images, digits)
    if real_rows:
        result["real"] = ev.real_rows()
    train = None
    if memorisation:
        from . import memorisation as MEM

        train = data.load_split("train", data_dir).images
        result["memorisation"] = MEM.measure(images, train, data.load_split("test", data_dir).images,
                                             embed=ev.classifier.embed)
    result["timing"].update(setup_s=round(setup_s, 2), sampling_s=round(sampling_s, 2),
                            total_s=round(time.perf_counter() - t0, 2))
    result["samples"] = {"run": str(run), "checkpoint": which, "sampler": sampler, "start": start, "n": n,
                         "seed": seed, "batch_size": sample_batch_size, "file": out.with_suffix(".npy").name,
                         "sampler_options": sampler_options,
                         **({"start_options": start_options} if start_options else {}),
                         "weights": weights, "weights_sha256": weights_sha256,
                         "precision": partial.precision() if partial is not None else precision,
                         **({"digit": digit, "guidance": guidance} if digits is not None else {}),
                         **({"resumed_batches": partial.resumed, "drawn": partial.drawn}
                            if partial is not None and partial.resumed else {})}
    result["protocol"] = ev.protocol()
    out.parent.mkdir(exist_ok=True)
    _refuse_existing(out)  # under the lock, but a user may have put a file there by hand meanwhile
    np.save(out.with_suffix(".npy"), images.numpy())
    if memorisation:
        files.save_grid(MEM.pairs_grid(images, train, result["memorisation"]), out.with_name(f"{name}-closest.png"),
                          nrow=MEM.CLOSEST)
    try:
        files.atomic_write_bytes(out, (json.dumps(result, indent=2) + "\n").encode(), new=True)
    except FileExistsError:
        raise UserError(f"{out} appeared while this evaluation ran; its result is kept, this one is in "
                        f"{out.with_suffix('.npy')}") from None
    if partial is not None:
        partial.discard()
    return result


def report_lines(result: dict) -> list[str]:
    """The human-readable table `mnistdiff evaluate` prints: every number with what it was measured on."""
    s, p = result["samples"], result["protocol"]
    real = p["real"]
    lines = [f"{s['run']}: {s['n']} samples (checkpoint {s['checkpoint']}, sampler {s['sampler']}, start {s['start']}, "
             f"seed {s['seed']}) against the first {real['count']} {real['split']} images"]
    row = lambda label, value: lines.append(f"  {label:<58} {value}")  # noqa: E731
    if "fid" in result:
        row("FID (Inception-v3 2015-12-05 pool3, 2048-d)", f"{result['fid']:.3f}")
        if result.get("fid_by_count"):
            row("  FID of random subsets of the samples (count: FID)",
                ", ".join(f"{int(c):,}: {v:.2f}" for c, v in result["fid_by_count"].items()))
        row("KID (Inception pool3, cubic kernel, subset mean +- std)", f"{result['kid']:.5f} +- {result['kid_std']:.5f}")
        row("Inception IS (10 splits)", f"{result['inception_is']:.3f} +- {result['inception_is_std']:.3f}"
            if "inception_is" in result else "not computed: torch-fidelity's logit weights are absent")
    clf = p["classifier"]
    row(f"classifier IS (MNIST CNN, {100 * clf['test_accuracy']:.2f}% test accuracy, 10 splits)",
        f"{result['classifier_is']:.3f} +- {result['classifier_is_std']:.3f}")
    row("Frechet distance on the classifier's 128-d features", f"{result['fd_classifier']:.3f}")
    row("class histogram, digits 0-9", f"{result['class_histogram']} (imbalance {result['class_imbalance']:.3f})")
    if "digit_agreement" in result:
        row(f"classifier agrees with the digit asked for (--digit {s['digit']}, --guidance {s['guidance']:g})",
            f"{100 * result['digit_agreement']:.2f}%")
    if "memorisation" in result:
        m = result["memorisation"]
        for space in ("pixel", "classifier"):
            if space in m:
                r = m[space]
                row(f"copy rate ({space} space: nearer the training set than 99% of test digits; new digits ~1%)",
                    f"{100 * r['copy_rate']:.2f}% ({r['copies']} of {s['n']})")
                row("  nearest training digit, median distance: samples / test digits",
                    f"{r['sample_nearest_median']:.3f} / {r['test_nearest_median']:.3f}")
    if "real" in result:
        r = result["real"]
        row(f"real: classifier IS of the {real['split']} images", f"{r['classifier_is']:.3f} +- {r['classifier_is_std']:.3f}")
        if "inception_is" in r:
            row(f"real: Inception IS of the {real['split']} images", f"{r['inception_is']:.3f} +- {r['inception_is_std']:.3f}")
        if "fid_floor" in r:
            row(f"real: FID of {real['split']} vs {r['floor_split']}[:{r['floor_count']}] (the floor)",
                f"{r['fid_floor']:.3f}")
            row("real: KID of the same (the floor)", f"{r['kid_floor']:.5f} +- {r['kid_floor_std']:.5f}")
        row("real: classifier Frechet distance of the same", f"{r['fd_classifier_floor']:.3f}")
    t = result["timing"]
    ref = p.get("reference_cache", {})
    lines.append(f"  time: setup {t['setup_s']:.0f} s (reference features "
                 f"{'reused from cache' if ref.get('reused') else 'computed and cached' if ref else 'not needed'}), "
                 f"sampling {t['sampling_s']:.0f} s, metrics {t['metrics_s']:.0f} s, total {t['total_s']:.0f} s")
    return lines
