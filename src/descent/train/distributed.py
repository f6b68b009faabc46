"""Data-parallel training on torch.distributed.

Every process (a *rank*) holds a full copy of the model. Each global batch — drawn from the same
seeded shuffled order on every rank — is cut into ``world_size`` contiguous, disjoint parts; rank r
computes the gradient of its part, and DistributedDataParallel averages the gradients across ranks
during backward, so each rank takes the same step. To make the step exactly the full batch's, rank
r's mean loss over its n_r examples is weighted by n_r·W/n (W ranks, n the global batch): the
average over ranks is then Σ_r n_r·mean_r / n, the global batch's mean, also for a last batch that
does not divide evenly.

Processes are started by torch's own launcher (torchelastic, the machinery behind ``torchrun``):
``descent train --nproc N`` starts N local processes; several machines join through the
launcher's c10d rendezvous (docs/trainer.md has the commands). Backends: NCCL on CUDA GPUs, gloo on
the CPU. A process that dies ends the job: the launcher stops the others and
:func:`launch` raises :class:`DistributedError` naming the rank and its exit.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor


class DistributedError(RuntimeError):
    """A process of a data-parallel job failed; the message names the rank and how it ended."""


@dataclass(frozen=True)
class Context:
    """This process's place in the job: rank r of world_size (1: not distributed)."""

    rank: int = 0
    world_size: int = 1

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes logs and checkpoints."""
        return self.rank == 0


def join(device: torch.device) -> Context:
    """The job this process belongs to: the initialized process group, or the one torch's
    launcher describes in the environment (WORLD_SIZE > 1), joined here; else a single process."""
    if dist.is_available() and dist.is_initialized():
        return Context(dist.get_rank(), dist.get_world_size())
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Context()
    if device.type == "cuda":
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
    else:
        dist.init_process_group("gloo")
    return Context(dist.get_rank(), dist.get_world_size())


def sum_across(context: Context, values: Tensor) -> Tensor:
    """``values`` summed over all ranks (a no-op in a single process)."""
    if context.active:
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def share_from_main(context: Context, value: Any) -> Any:
    """Rank 0's ``value`` on every rank (a checkpoint read by rank 0, for instance)."""
    if not context.active:
        return value
    holder = [value if context.is_main else None]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def gather_to_all(context: Context, value: Any) -> list[Any]:
    """Every rank's ``value``, in rank order, on every rank."""
    if not context.active:
        return [value]
    gathered: list[Any] = [None] * context.world_size
    dist.all_gather_object(gathered, value)
    return gathered


def batch_share(batch: Tensor, context: Context) -> Tensor:
    """Rank r's contiguous part of a global batch of indices (parts differ by at most one)."""
    if not context.active:
        return batch
    return batch.tensor_split(context.world_size)[context.rank]


def launch(
    nproc: int,
    entrypoint: Callable[..., Any],
    *args: Any,
    nnodes: int = 1,
    rdzv_endpoint: str | None = None,
    rdzv_id: str | None = None,
) -> Any:
    """Run ``entrypoint(*args)`` in ``nproc`` processes on this machine (``nnodes`` machines in
    all, meeting at ``rdzv_endpoint``) through torch's elastic launcher; return rank 0's result
    (None on machines that do not hold rank 0).

    ``entrypoint`` must be a module-level function (the processes are spawned)."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    if nnodes > 1 and not rdzv_endpoint:
        raise DistributedError(
            "training on several machines needs rdzv_endpoint (host:port of one of them)"
        )
    config = LaunchConfig(
        min_nodes=nnodes,
        max_nodes=nnodes,
        nproc_per_node=nproc,
        run_id=rdzv_id or str(uuid.uuid4()),
        rdzv_backend="c10d",
        rdzv_endpoint=rdzv_endpoint or "localhost:0",
        max_restarts=0,
        monitor_interval=0.1,
        start_method="spawn",
    )
    try:
        results = elastic_launch(config, _recorded)(entrypoint, *args)
    except ChildFailedError as error:
        raise DistributedError(describe_failure(error)) from None
    return results.get(0) if results else None


def _recorded(entrypoint: Callable[..., Any], *args: Any) -> Any:
    """``entrypoint(*args)`` with its exception written where the launcher reads it, so the
    message that ends the job carries the failing process's own error."""
    from torch.distributed.elastic.multiprocessing.errors import record

    return record(entrypoint)(*args)


def describe_failure(error: Any) -> str:
    """One sentence: which rank ended first and how (exit status or signal)."""
    rank, failure = error.get_first_failure()
    if failure.exitcode < 0:
        try:
            how = f"was killed by {signal.Signals(-failure.exitcode).name}"
        except ValueError:
            how = f"was killed by signal {-failure.exitcode}"
    else:
        how = f"exited with status {failure.exitcode}"
        message = failure.message
        while isinstance(message, dict):  # the error file's {"message": {"message": ...}}
            message = message.get("message", "")
        message = str(message or "").strip()
        if message and message != "<N/A>" and not message.startswith("To enable traceback"):
            how += f": {message.splitlines()[-1]}"
    return f"process {rank} of the data-parallel job {how}; the job was stopped"
