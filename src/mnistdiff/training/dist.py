"""Several processes, one training run: the launcher's environment, ranks, and the few collectives.

`torchrun` and `accelerate launch` both start N copies of the same command and tell each its place
through RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; nothing here launches anything.
Without those variables (or with WORLD_SIZE=1) every function is the single-process identity, so
`mnistdiff train` behaves, bit for bit, as it does without a launcher.

Semantics (loop.py): the config's batch_size is the *global* batch. Global batch k of an epoch is
perm[k*B:(k+1)*B] of the one per-epoch permutation, and rank r trains on its slice of it, with the
timesteps and noise the single process would have drawn for those very images; DistributedDataParallel
averages the gradients. So N processes take the optimisation steps one process would, to float rounding.
"""

from __future__ import annotations

import atexit
import os
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as tdist

from ..errors import UserError

# Rank 0 alone draws grids, computes metrics and may train the evaluation classifier on first use,
# while the others wait in the next collective; a launcher tears the group down as soon as any
# worker dies, so this timeout only bounds a collective that is truly stuck.
TIMEOUT = timedelta(hours=3)
SHARD_SEED_STRIDE = 1_000_003  # rank r's evaluation samples use seed + r * stride: distinct noise per rank


@dataclass(frozen=True)
class Context:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0


_CTX: Context | None = None


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError:
        raise UserError(f"environment variable {name}={value!r} is not an integer; "
                        "start several processes with torchrun or accelerate launch") from None


def device_for(local_rank: int) -> torch.device:
    """One GPU per process on a node (cuda:LOCAL_RANK) when CUDA is there, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def launched_world() -> int:
    """How many processes the launcher started (1 without one), known before joining the group."""
    return max(_env_int("WORLD_SIZE", 1), 1)


def init() -> Context:
    """The process's place in the run, from the launcher's environment; joins the group once."""
    global _CTX
    if _CTX is not None:
        return _CTX
    world, rank, local_rank = launched_world(), _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    if world <= 1:  # no group to join; still a GPU when there is one, as under a launcher
        _CTX = Context(local_rank=local_rank, device=device_for(local_rank))
        return _CTX
    if not (os.environ.get("MASTER_ADDR") and os.environ.get("MASTER_PORT")):
        raise UserError(f"WORLD_SIZE={world} but MASTER_ADDR/MASTER_PORT are not set; start the processes "
                        "with `torchrun --nproc_per_node N -m mnistdiff train ...`")
    device = device_for(local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not tdist.is_initialized():
        tdist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=TIMEOUT)
        atexit.register(_destroy)
    _CTX = Context(rank=rank, world=world, local_rank=local_rank, device=device)
    return _CTX


def _destroy() -> None:
    if tdist.is_initialized():
        tdist.destroy_process_group()


def context() -> Context:
    return init()


def is_main() -> bool:
    """Rank 0 (also before the group is joined: RANK is set by the launcher from the start)."""
    return (_CTX.rank if _CTX is not None else _env_int("RANK", 0)) == 0


def every_rank(message: str) -> UserError:
    """An error all ranks raise alike: the CLI prints it on rank 0 only, not once per process."""
    e = UserError(message)
    e.every_rank = True
    return e


def local_batch(global_batch: int, world: int) -> int:
    """Images per rank per step; the global batch must split evenly so every rank does equal work."""
    if global_batch % world:
        raise every_rank(f"batch_size={global_batch} does not split over {world} processes; pass a "
                        f"--batch-size divisible by {world} (it is the global batch, shared by all processes)")
    return global_batch // world


def shard(m: int, ctx: Context) -> slice:
    """This rank's contiguous part of a global batch of m images (the last batch of an epoch may be short)."""
    sizes = [m // ctx.world + (r < m % ctx.world) for r in range(ctx.world)]
    start = sum(sizes[:ctx.rank])
    return slice(start, start + sizes[ctx.rank])


def global_mean(per_sample: torch.Tensor, m: int, ctx: Context) -> tuple[torch.Tensor, float]:
    """(loss to backpropagate on this rank, the global batch's mean loss, equal on every rank).

    DDP averages gradients over ranks, so scaling this rank's sum by world/m makes the averaged
    gradient that of the global batch mean, even when the ranks hold different numbers of images.
    """
    if ctx.world == 1:
        loss = per_sample.mean()
        return loss, loss.item()
    total = per_sample.detach().sum().reshape(1).clone()
    tdist.all_reduce(total)
    return per_sample.sum() * (ctx.world / m), total.item() / m


def wrap(net: torch.nn.Module, ctx: Context) -> torch.nn.Module:
    """The module to run forward/backward through: DDP all-reduces the gradients across ranks.

    DDP also broadcasts rank 0's weights at construction, so a resumed or freshly seeded net is
    the same on every rank whatever happened before.
    """
    if ctx.world == 1:
        return net
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(net, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)


def on_cpu(net: torch.nn.Module) -> torch.nn.Module:
    """The net for sampling: samplers draw with CPU generators, so a GPU net is copied to the CPU."""
    if next(net.parameters()).device.type == "cpu":
        return net
    import copy

    return copy.deepcopy(net).cpu()


def barrier(ctx: Context) -> None:
    if ctx.world > 1:
        tdist.barrier(device_ids=[ctx.device.index]) if ctx.device.type == "cuda" else tdist.barrier()


def on_main(fn, ctx: Context):
    """Run fn on rank 0 only; all ranks then return together, or all raise rank 0's error.

    Without this, an error on rank 0 (run directory exists, lock held) would leave the other ranks
    waiting in their next collective instead of stopping with the same one-line message.
    """
    result, error = None, None
    if ctx.is_main:
        try:
            result = fn()
        except Exception as e:  # noqa: BLE001 - re-raised below, on every rank
            error = e
    if ctx.world > 1:
        box = [None if error is None else (str(error) if isinstance(error, UserError) else f"rank 0 failed: {error!r}")]
        tdist.broadcast_object_list(box, src=0)
        if box[0] is not None and error is None:
            raise every_rank(box[0])
    if error is not None:
        raise error
    return result


@contextmanager
def held_by_main(cm, ctx: Context):
    """Enter the context manager cm (e.g. the run's lock) on rank 0 only, for the life of the block."""
    with ExitStack() as stack:
        on_main(lambda: stack.enter_context(cm), ctx)
        yield


class _Nothing:
    """Stands for a file writer on ranks that write nothing: every method call does nothing."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


def main_only(obj, ctx: Context):
    return obj if ctx.is_main else _Nothing()


def gather_cat(x: torch.Tensor, ctx: Context) -> torch.Tensor | None:
    """Concatenate every rank's x (first dimensions may differ) in rank order on rank 0; None elsewhere."""
    if ctx.world == 1:
        return x
    dev = ctx.device
    n = torch.tensor([x.shape[0]], device=dev)
    counts = [torch.zeros_like(n) for _ in range(ctx.world)]
    tdist.all_gather(counts, n)
    counts = [int(c.item()) for c in counts]
    padded = torch.zeros((max(counts), *x.shape[1:]), dtype=x.dtype, device=dev)
    padded[:x.shape[0]] = x.to(dev)
    parts = [torch.empty_like(padded) for _ in range(ctx.world)]
    tdist.all_gather(parts, padded)  # all_gather, not gather: NCCL has no gather of unequal parts either
    if not ctx.is_main:
        return None
    return torch.cat([p[:c] for p, c in zip(parts, counts)]).cpu()


def generate_sharded(fn, n: int, seed: int, ctx: Context) -> torch.Tensor | None:
    """n samples split over the ranks, fn(count, seed) on each with its own seed, gathered on rank 0.

    One process gives fn(n, seed) exactly; N processes give a different (equally random) set of n.
    """
    if ctx.world == 1:
        return fn(n, seed)
    part = shard(n, ctx)
    count = part.stop - part.start
    mine = fn(count, seed + ctx.rank * SHARD_SEED_STRIDE) if count else None
    if mine is None:
        probe = fn(1, seed)  # shape and dtype of an empty part: only when n < world
        mine = probe[:0]
    return gather_cat(mine, ctx)
