"""Running past one process: ``torchrun`` ranks for training and evaluation (torch.distributed).

A command started by ``torchrun --nproc_per_node N -m softmass_core ...``
finds ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` in its environment;
:func:`init_from_env` joins the process group (``gloo`` on the CPU, ``nccl``
on GPUs) and returns this process's :class:`Ranks`.  A plain run gets
``Ranks(world_size=1, rank=0, ...)`` and every helper here is then a no-op,
so the single-process code path is unchanged.

Conventions every caller follows: rank 0 alone writes files and logs; the
other ranks wait at :func:`barrier`; a decision that could differ between
ranks (validation, time limits, a lock) is taken on rank 0 and sent to the
others with :func:`broadcast`.  :func:`shard_order` is the DistributedSampler
split of one shared permutation.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from softmass_core.errors import SoftmassError


@dataclass(frozen=True)
class Ranks:
    """Where this process stands: ``rank`` of ``world_size``, ``local_rank`` on its machine, the backend."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    local_world_size: int = 1
    backend: str | None = None

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        """True on rank 0, the only rank that writes files, holds locks and logs."""
        return self.rank == 0

    def record(self) -> dict[str, Any]:
        """The manifest's ``training.distributed``: ``{"world_size": N, "backend": "gloo" | "nccl"}``."""
        return {"world_size": self.world_size, "backend": self.backend}


SINGLE = Ranks()


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise SoftmassError(f"{name}={text!r} is not a whole number; start the run with torchrun.") from None


def launched_ranks() -> Ranks:
    """The ranks ``torchrun`` announced in the environment, without joining the group (backend unset)."""
    world = _env_int("WORLD_SIZE", 1)
    if world <= 1:
        return SINGLE
    rank, local = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    return Ranks(world, rank, local, _env_int("LOCAL_WORLD_SIZE", world))


def init_from_env(device: str = "cpu") -> Ranks:
    """Join the process group ``torchrun`` set up (once per process); :data:`SINGLE` in a plain run.

    ``device``: ``cpu`` (backend gloo) or ``cuda`` (backend nccl, and this
    process's GPU becomes ``cuda:LOCAL_RANK``).  ``auto`` picks cuda when GPUs
    are visible.
    """
    ranks = launched_ranks()
    if not ranks.distributed:
        return SINGLE
    import torch
    import torch.distributed as dist

    kind = str(device).split(":")[0]
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    if kind == "cuda":
        if torch.cuda.device_count() <= ranks.local_rank:
            raise SoftmassError(
                f"rank {ranks.rank} needs GPU {ranks.local_rank} but {torch.cuda.device_count()} are visible: give "
                "torchrun --nproc_per_node at most the number of GPUs, or use --device cpu."
            )
        torch.cuda.set_device(ranks.local_rank)
    backend = "nccl" if kind == "cuda" else "gloo"
    if dist.is_initialized():
        backend = str(dist.get_backend())
    else:  # ranks wait while rank 0 validates or writes: allow that an hour, not the default half hour
        dist.init_process_group(backend=backend, timeout=timedelta(hours=1))
    return Ranks(ranks.world_size, ranks.rank, ranks.local_rank, ranks.local_world_size, backend)


def barrier(ranks: Ranks) -> None:
    """Wait until every rank gets here (nothing to wait for in a plain run)."""
    if ranks.distributed:
        import torch.distributed as dist

        dist.barrier()


def broadcast(ranks: Ranks, value: Any) -> Any:
    """Rank 0's ``value`` (any picklable object) on every rank."""
    if not ranks.distributed:
        return value
    import torch.distributed as dist

    box = [value if ranks.main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_gather(ranks: Ranks, value: Any) -> list[Any]:
    """Every rank's ``value``, in rank order, on every rank (``[value]`` in a plain run)."""
    if not ranks.distributed:
        return [value]
    import torch.distributed as dist

    out: list[Any] = [None] * ranks.world_size
    dist.all_gather_object(out, value)
    return out


def all_reduce_sum(ranks: Ranks, tensor):
    """``tensor`` summed over every rank (in place; returned)."""
    if ranks.distributed:
        import torch.distributed as dist

        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def agreed(ranks: Ranks, error: str | None) -> None:
    """Raise rank 0's ``error`` (a message, or None when it succeeded) on every rank, as a SoftmassError."""
    message = broadcast(ranks, error)
    if message is not None:
        raise SoftmassError(message)


def main_first(ranks: Ranks, action: Callable[[], object]) -> None:
    """Run ``action`` on rank 0 only; a :class:`SoftmassError` it raises is raised on every rank.

    For the checks that must refuse a run before any work (a held lock, an ``--out`` that cannot be made): in one
    process the error propagates as it is; under torchrun every rank stops with the same one-line message.
    """
    error = None
    if ranks.main:
        try:
            action()
        except SoftmassError as exc:
            if not ranks.distributed:
                raise
            error = str(exc)
    agreed(ranks, error)


def shard_order(order, ranks: Ranks):
    """This rank's share of ``order`` (a 1-D array every rank drew alike), as DistributedSampler splits it.

    The order is padded with its own first items up to a multiple of the
    world size, then rank ``r`` takes items ``r, r + N, r + 2N, ...``: every
    rank gets the same number of items, so every rank runs the same number
    of steps (each step all-reduces the gradients).
    """
    if not ranks.distributed:
        return order
    import numpy as np

    order = np.asarray(order)
    pad = (-len(order)) % ranks.world_size
    if pad:
        order = np.concatenate([order, np.resize(order, pad)])
    return order[ranks.rank :: ranks.world_size]


def shard_size(n: int, ranks: Ranks) -> int:
    """How many of ``n`` items :func:`shard_order` gives each rank."""
    return -(-n // ranks.world_size)


def close(ranks: Ranks) -> None:
    """Leave the process group (end of a torchrun command); nothing in a plain run."""
    if ranks.distributed:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
