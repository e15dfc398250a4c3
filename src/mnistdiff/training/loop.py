"""The training loop: one loop for every process (DDPM or cold), with exact resume.

Determinism: the data order of epoch e is a function of (seed, e); timesteps and noise come from a
generator reseeded at each epoch start and saved in mid-epoch checkpoints. So a run killed at any
moment and resumed from its last checkpoint replays exactly what an uninterrupted run would do.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from .. import config as C, data, files, machine, nets, processes
from ..errors import UserError
from ..progress import Estimate, Progress
from . import checkpoint, dist, optim
from .ema import EMA
from .hooks import EpochEnd, EpochHook
from . import rundir
from .checkpoint import store


class NonFiniteLoss(UserError):
    pass


@dataclass
class State:
    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps completed (global)
    step_in_epoch: int = 0  # steps of the current, unfinished epoch
    epoch_loss_sum: float = 0.0
    best_loss: float = math.inf


def build(cfg: C.Config):
    """(net, process) of a new run from its config, the net's initial weights drawn from the run's seed."""
    torch.manual_seed(cfg.train.seed)
    return nets.build(cfg.model), processes.build(cfg.process)


def autocast(cfg: C.Config, device: torch.device):
    """bf16 autocast on the device the run trains on (CPU or GPU), when precision asks for it."""
    if cfg.train.precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def training_set(cfg: C.Config, data_dir) -> tuple[torch.Tensor, torch.Tensor]:
    """(images, labels) the run trains on: the train split, or its seeded subset."""
    split = data.load_split("train", data_dir)
    if cfg.train.subset > len(split):
        raise UserError(f"subset={cfg.train.subset} is more than the {len(split)} images of the train split; "
                        f"pass --subset {len(split)} or fewer (0: all of them)")
    idx = data.subset_indices(len(split), cfg.train.subset, cfg.train.seed)
    return split.images[idx], split.labels[idx]


def training_images(cfg: C.Config, data_dir) -> torch.Tensor:
    return training_set(cfg, data_dir)[0]


def with_labels(net, y: torch.Tensor | None):
    """net(x, t) as the losses call it, for a conditional net given this batch's labels."""
    return net if y is None else lambda x, t: net(x, t, y)


def _train_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 7_919 + epoch + 1)


def save_checkpoint(run: Path, cfg: C.Config, net, opt, state: State, gen: torch.Generator,
                    *, ema: EMA | None = None, best: bool = False, snapshot: bool = False) -> None:
    """Everything a bit-exact resume needs: weights (and their EMA), optimizer, every RNG, the counters,
    the config."""
    opt_tensors, opt_meta = checkpoint.optimizer_tensors(opt)
    ema_tensors = checkpoint.model_tensors(ema.module, checkpoint.EMA_PREFIX) if ema else {}
    tensors = optim.contiguous({**checkpoint.model_tensors(net), **ema_tensors, **opt_tensors,
                               "rng/torch": torch.get_rng_state(), "rng/train": gen.get_state()})
    meta = {**vars(state), "optimizer": opt_meta, "rng": checkpoint.rng_state()}
    if snapshot:  # the epoch's whole checkpoint: sampled, evaluated, or resumed from like any other
        store.save_snapshot(run, state.epoch, tensors=tensors, config=cfg.saved(), state=meta)
    elif best:
        store.save_best(run, tensors=tensors, config=cfg.saved(), state=meta)
    else:
        store.save_rotating(run, tensors=tensors, config=cfg.saved(), state=meta)


def restore(run: Path, cfg: C.Config, net, opt, ema: EMA | None = None) -> tuple[State, torch.Generator] | None:
    """Load the newest good checkpoint into net and opt; None if the run was killed before its first."""
    recorded = C.without_resumable(C.from_dict(C.load_file(run / "config.json"))) \
        if (run / "config.json").is_file() else None
    found = store.load_latest(run, warn=lambda m: dist.is_main() and print(m, file=sys.stderr),
                             foreign=lambda d: None if recorded in (None, C.without_resumable(C.from_dict(d))) else
                             f"made with another configuration than {run}/config.json")
    if found is None:
        return None
    path, (tensors, saved_cfg, meta) = found
    cfg, _ = _resolve_precision(cfg, Path(run), True, "cpu")  # `auto`: what the run recorded
    if C.without_resumable(C.from_dict(saved_cfg)) != C.without_resumable(cfg):
        raise UserError(f"checkpoint {path} was made with a different configuration than {run}/config.json; "
                        "resume with the run's own config (only --epochs and --precision may change)")
    checkpoint.load_model(net, tensors)
    if ema is not None:
        checkpoint.load_model(ema.module, tensors, checkpoint.EMA_PREFIX)
    checkpoint.load_optimizer(opt, tensors, meta["optimizer"])
    checkpoint.set_rng_state(meta["rng"], tensors["rng/torch"])
    gen = torch.Generator()
    gen.set_state(tensors["rng/train"])
    state = State(**{k: meta[k] for k in vars(State())})
    return state, gen


def train(cfg: C.Config, run: Path, *, resume: bool = False, data_dir=None, progress: bool = True,
          hooks: Sequence[EpochHook] = (), stop_after_steps: int | None = None, note: str | None = None) -> State:
    """Train cfg into the run directory `run` (new, or resumed from its last checkpoint). note: a line for the
    user, said (with the precision auto chose) once the run is sure to start, so a refusal stays one line.

    Writes what resume and the log need: checkpoints (and the --sample-epochs snapshots), metrics.jsonl,
    RUN/degradation.json. Anything else an epoch's end calls for (the grid, the per-epoch evaluation, the
    figures) is one of `hooks`, called on every rank with an EpochEnd (mnistdiff.hooks wires the usual ones)."""
    C.validate(cfg)
    dist.local_batch(cfg.train.batch_size, dist.launched_world())  # before waiting for the other ranks
    ctx = dist.init()  # under torchrun / accelerate launch: this process's rank (dist.py)
    progress = progress and ctx.is_main
    run = Path(run)
    cfg, why = _resolve_precision(cfg, run, resume, ctx.device.type)
    images, labels = training_set(cfg, data_dir)  # data errors surface before anything is written
    if resume and run.is_dir():  # a resume that could not save its checkpoints is refused before it trains
        for folder in (run, run / store.CKPT_DIR):
            rundir.ensure_writable(folder)
    if not resume:
        dist.on_main(lambda: (rundir.create(run, cfg.to_json()), processes.write_description(
            run / "degradation.json", processes.build(cfg.process))), ctx)
    if ctx.is_main:  # said once the run is sure to start: a refusal stays one line
        for line in (note, why and f"precision auto: {cfg.train.precision} ({why})"):
            if line:
                print(line, file=sys.stderr)
    with dist.held_by_main(rundir.locked(run), ctx):
        return _train_locked(cfg, run, images, resume, progress, tuple(hooks), stop_after_steps, data_dir,
                             labels=labels if cfg.model.conditional else None)


def _resolve_precision(cfg: C.Config, run: Path, resume: bool, device_type: str):
    """(cfg, why): precision auto made concrete, so config.json records it; a resume keeps the recorded one."""
    if cfg.train.precision != "auto":
        return cfg, None
    if resume and (run / "config.json").is_file():
        recorded = C.from_dict(C.load_file(run / "config.json")).train.precision
        return C.apply(cfg, {"precision": recorded}), None
    return machine.resolve_precision(cfg, device_type)


def _train_locked(cfg, run, images, resume, progress, hooks, stop_after_steps, data_dir=None,
                  labels=None) -> State:
    machine.set_threads(cfg.train.threads)
    tc = cfg.train
    ctx = dist.context()
    net, process = build(cfg)  # the same seed on every rank: the same initial weights
    net = net.to(ctx.device)
    # Every rank keeps the same average. Copied before the speed levers: a deep copy of a compiled
    # module could keep calling the original's forward.
    ema = EMA(net, tc.ema_decay) if tc.ema_decay else None
    net = optim.prepare(net, tc)  # speed levers (optim.py): layout, compile
    opt = optim.optimizer(net, tc)
    log = dist.main_only(rundir.MetricsLog(run / "metrics.jsonl"), ctx)  # only rank 0 writes files
    restored = restore(run, cfg, net, opt, ema) if resume else None  # every rank loads the same checkpoint
    model = dist.wrap(net, ctx)  # forward/backward through DDP; net itself is saved and sampled
    state, gen = _begin(run, cfg, net, log, restored, int(images.shape[0]), ctx)
    n, bs = images.shape[0], tc.batch_size
    steps_per_epoch = math.ceil(n / bs)
    lr_at = lambda step: optim.learning_rate(step, lr=tc.lr, warmup=tc.lr_warmup, decay=tc.lr_decay,  # noqa: E731
                                                 total=tc.epochs * steps_per_epoch)
    # Grids and evaluations sample from the EMA weights when there are any, as the process's samplers want.
    sampling_net = lambda: process.sampling_net(dist.on_cpu(ema.module if ema else net),  # noqa: E731
                                                cfg.process.prediction)
    estimate = Estimate(tc.epochs * steps_per_epoch - state.step, "training") if progress else None
    try:
        for epoch in range(state.epoch + 1, tc.epochs + 1):
            perm = data.epoch_permutation(n, tc.seed, epoch)
            if state.step_in_epoch == 0:
                gen = _train_generator(tc.seed, epoch)
                state.epoch_loss_sum = 0.0
            bar = Progress(steps_per_epoch, f"epoch {epoch}/{tc.epochs}", "step", initial=state.step_in_epoch,
                           enabled=progress)
            t0, seen = time.perf_counter(), 0
            net.train()
            for k in range(state.step_in_epoch, steps_per_epoch):
                batch = perm[k * bs:(k + 1) * bs]  # the global batch; this rank trains on its shard
                # Every rank draws the whole global batch's t and noise, then keeps its shard's: each
                # image gets what a single process would give it, whatever the number of ranks.
                t = process.sample_t(batch.shape[0], gen)
                noise = torch.randn((batch.shape[0], 1, *images.shape[1:]), generator=gen)
                mine = dist.shard(batch.shape[0], ctx)
                x0 = data.to_model_range(images[batch[mine]]).to(ctx.device)
                t, noise = t[mine].to(ctx.device), noise[mine].to(ctx.device)
                y = None
                if labels is not None:  # drawn after t and noise: an unconditional run's draws are as before
                    drop = torch.rand(batch.shape[0], generator=gen) < tc.label_dropout
                    y = torch.where(drop, nets.NULL_LABEL, labels[batch])[mine].to(ctx.device)
                with autocast(cfg, ctx.device):
                    per_sample = process.loss(with_labels(model, y), x0, t, noise,
                                              prediction=cfg.process.prediction, norm=cfg.process.loss,
                                              min_snr=cfg.process.min_snr)
                loss, value = dist.global_mean(per_sample, batch.shape[0], ctx)  # value: the global batch's
                if not math.isfinite(value):
                    log.write(type="event", event="nonfinite_loss", epoch=epoch, step=state.step + 1, loss=str(value))
                    log.flush()
                    raise NonFiniteLoss(f"loss became {value} at epoch {epoch}, step {state.step + 1}; the last good "
                                        f"checkpoint is kept in {run / 'checkpoints'}; lower --lr and resume")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if tc.grad_clip:
                    torch.nn.utils.clip_grad_norm_(net.parameters(), tc.grad_clip)
                for group in opt.param_groups:
                    group["lr"] = lr_at(state.step + 1)
                opt.step()
                state.step += 1
                if ema is not None:
                    ema.update(net, state.step)
                state.step_in_epoch = k + 1
                state.epoch_loss_sum += value
                seen += batch.shape[0]
                log.write(type="iter", epoch=epoch, step=state.step, loss=value)
                if estimate is not None:
                    estimate.step()
                bar.update(1, loss=f"{value:.4f}", img_s=f"{seen / (time.perf_counter() - t0):.0f}")
                if tc.checkpoint_every and state.step % tc.checkpoint_every == 0 and k + 1 < steps_per_epoch:
                    log.flush()
                    if ctx.is_main:
                        save_checkpoint(run, cfg, net, opt, state, gen, ema=ema)
                if stop_after_steps is not None and state.step >= stop_after_steps:
                    return state
            bar.close()
            elapsed = time.perf_counter() - t0
            mean = state.epoch_loss_sum / steps_per_epoch
            log.write(type="epoch", epoch=epoch, step=state.step, loss_mean=mean,
                      time_s=elapsed, images_per_s=seen / max(elapsed, 1e-9))
            log.flush()
            end = EpochEnd(cfg=cfg, run=run, epoch=epoch, step=state.step, process=process, log=log,
                           is_main=ctx.is_main, sampling_net=sampling_net, data_dir=data_dir, progress=progress)
            for hook in hooks:
                hook(end)
            state.epoch, state.step_in_epoch = epoch, 0
            is_best = mean < state.best_loss
            state.best_loss = min(state.best_loss, mean)
            log.flush()
            # best before last: a kill in between redoes this epoch and rewrites the same best.
            if is_best and ctx.is_main:
                save_checkpoint(run, cfg, net, opt, state, gen, ema=ema, best=True)
            if ctx.is_main:
                save_checkpoint(run, cfg, net, opt, state, gen, ema=ema)
                if epoch in tc.sample_epochs or epoch == tc.epochs:  # kept for the report and `evaluate`
                    save_checkpoint(run, cfg, net, opt, state, gen, ema=ema, snapshot=True)
            if progress:
                print(f"epoch {epoch}/{tc.epochs}: mean loss {mean:.5f}, {seen / elapsed:.0f} images/s, "
                      f"{elapsed:.1f} s", file=sys.stderr)
    finally:
        log.close()
    dist.barrier(ctx)  # every rank returns once rank 0's files are all written
    return state


def _begin(run: Path, cfg: C.Config, net, log, restored, n_train: int, ctx) -> tuple[State, torch.Generator]:
    """(state, generator) to train from: the restored ones (the log cut back to them, a change of precision
    recorded, config.json rewritten with what may change on resume), or a fresh start."""
    tc = cfg.train
    if restored:
        state, gen = restored
        log.truncate_to(state.step)
        before = C.from_dict(C.load_file(run / "config.json")).train.precision
        if before != tc.precision:  # a resume on a CPU of another kind (config.RESUMABLE)
            log.write(type="event", event="precision", epoch=state.epoch, step=state.step, before=before,
                      after=tc.precision)
            if ctx.is_main:
                print(f"precision {before} -> {tc.precision} from step {state.step}: from here the run is not "
                      "bit-identical to an uninterrupted one", file=sys.stderr)
        if ctx.is_main:  # --epochs or --precision may have changed
            files.atomic_write_bytes(run / "config.json", cfg.to_json().encode())
    else:  # a new run, or one killed before its first checkpoint: start from scratch
        state, gen = State(), _train_generator(tc.seed, 0)
        log.truncate_to(-1)
        log.write(type="start", step=0, n_train=n_train, parameters=nets.count_parameters(net),
                  precision=tc.precision)
    return state, gen
