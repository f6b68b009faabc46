"""What a Trainer checkpoint holds, how it is written and how a run continues from it.

The payload: the model, the optimizer, the schedule, the gradient scaler, the data's batch order
and position, every rank's random generators and running sums, and the counters and history
(:func:`save_run`, :func:`restore_run`), in plain form.

Everything saved is a tensor, a number, a string, None, or a list or dict of these, so a
checkpoint loads with ``torch.load(path, weights_only=True)`` (no pickled code runs) and on any
device (tensors are read onto the CPU and copied to the parameters' device).

A torch optimizer driven by a schedule keeps the schedule in its scheduler; a schedule is saved in
its dict form when it has one (descent's schedules do) and rebuilt from it; for a plain function
only the position is saved and the function given to the resumed Trainer is used, as descent's own
update rules do with their ``lr``.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from descent import schedules as sch
from descent.errors import InputError
from descent.train import checkpoint
from descent.train.distributed import gather_to_all, share_from_main
from descent.train.points import at_average
from descent.train.records import Running, State

if TYPE_CHECKING:
    from descent.train.data import TrainingData
    from descent.train.trainer import Trainer


#: What every checkpoint the Trainer writes holds (the keys :func:`save_run` writes).
REQUIRED = {"model", "optimizer", "scheduler", "scaler", "data", "ranks", "state"}


def save_run(trainer: Trainer, data: TrainingData, position: int, running: Running) -> None:
    """Model, optimizer, schedule position, batch order and position in the epoch, every
    rank's random generators and running sums, counters and history, and the state of each
    callback that has one (``state_dict``/``load_state_dict``), to the trainer's
    ``checkpoint_path`` (nothing without a logdir); rank 0 writes."""
    path, context = trainer.checkpoint_path, trainer.context
    if path is None:
        return
    ranks = gather_to_all(context, {"rng": rng_state(trainer.device), "running": running.state()})
    with at_average(trainer.optimizer):
        if not context.is_main:
            return
        scheduler, scaler = trainer.scheduler, trainer.scaler
        payload = {
            "model": trainer.model.state_dict(),
            "optimizer": trainer.optimizer.state_dict(),
            "scheduler": scheduler_state(scheduler) if scheduler else None,
            "scaler": scaler.state_dict() if scaler else None,
            "data": data.state_dict(position),
            "ranks": ranks,
            "state": asdict(trainer.state),
            # a callback with state (the curvature monitor's warm start) continues from it
            "callbacks": [
                callback.state_dict() if hasattr(callback, "state_dict") else None
                for callback in trainer.callbacks
            ],
        }
        checkpoint.save(payload, path)


def restore_run(trainer: Trainer, data: TrainingData, running: Running) -> int:
    """Restore everything from the trainer's ``last.pt`` (read by rank 0, shared with the
    others); return the position in the epoch to continue from."""
    path, context = trainer.checkpoint_path, trainer.context
    if path is None:
        raise InputError("resume needs logdir (the run folder holding checkpoints/last.pt)")
    payload = share_from_main(context, read(path) if context.is_main else None)
    try:
        trainer.model.load_state_dict(payload["model"])
        trainer.optimizer.load_state_dict(payload["optimizer"])
    except (RuntimeError, KeyError, ValueError) as error:
        first = str(error).strip().splitlines()
        raise InputError(
            f"{path}: does not fit this model and optimizer ({' '.join(first[:3])})"
        ) from None
    if trainer.scheduler is not None and payload["scheduler"] is not None:
        load_scheduler_state(trainer.scheduler, payload["scheduler"])
    if trainer.scaler is not None and payload["scaler"]:
        trainer.scaler.load_state_dict(payload["scaler"])
    data.load_state_dict(payload["data"])
    ranks = payload["ranks"]
    same_world = len(ranks) == context.world_size
    mine = ranks[context.rank] if same_world else ranks[0]
    load_rng_state(mine["rng"], trainer.device)
    # Another number of processes: each starts the epoch's sums afresh (they were per rank).
    running.load(mine["running"] if same_world else 0 * mine["running"])
    trainer.state = State(**payload["state"])
    # "callbacks" is absent from checkpoints written before callbacks' state was saved
    for callback, saved in zip(trainer.callbacks, payload.get("callbacks") or (), strict=False):
        if saved is not None and hasattr(callback, "load_state_dict"):
            callback.load_state_dict(saved)
    data_state = payload["data"]
    return int(
        data_state["sampler"]["position"] if "sampler" in data_state else data_state["position"]
    )


def scheduler_state(scheduler: sch.ScheduleLR) -> dict[str, Any]:
    """The update number and each group's schedule as a dict (None: a plain function)."""
    forms = []
    for schedule in scheduler.schedules:
        to_dict = getattr(schedule, "to_dict", None)
        forms.append(to_dict() if callable(to_dict) else None)
    return {"last_epoch": int(scheduler.last_epoch), "schedules": forms}


def load_scheduler_state(scheduler: sch.ScheduleLR, state: dict[str, Any]) -> None:
    """Continue ``scheduler`` at the saved update number, with the saved schedules where they
    were saved and the given ones elsewhere."""
    forms = state["schedules"]
    if len(forms) != len(scheduler.schedules):
        raise InputError(
            f"the checkpoint's optimizer had {len(forms)} parameter group(s), this one has "
            f"{len(scheduler.schedules)}"
        )
    for index, form in enumerate(forms):
        if form is not None:
            scheduler.schedules[index] = sch.from_dict(form)
    scheduler.last_epoch = int(state["last_epoch"])
    for group, schedule in zip(scheduler.optimizer.param_groups, scheduler.schedules, strict=True):
        group["lr"] = float(schedule(scheduler.last_epoch))


def rng_state(device: torch.device) -> dict[str, Any]:
    """This process's random generators: the CPU's and, on a GPU, the device's."""
    return {
        "cpu": torch.random.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
    }


def load_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.random.set_rng_state(state["cpu"])
    if device.type == "cuda" and state.get("cuda") is not None:
        torch.cuda.set_rng_state(state["cuda"], device)


def read(path: Path) -> dict[str, Any]:
    """A Trainer checkpoint's payload, read onto the CPU through :func:`checkpoint.load` (the one
    reader: weights only, one line naming the file when it is unreadable or crafted)."""
    payload = checkpoint.load(path, map_location="cpu", required=("model", "state"))
    missing = REQUIRED - payload.keys()
    if missing:
        # The first release saved "batches" and "torch_rng" where this one saves "data" and
        # "ranks" (per-process RNG and running sums, for data-parallel runs).
        earlier = "batches" in payload
        raise InputError(
            f"{path}: "
            + (
                "written by descent 0.1, whose checkpoint layout this release cannot continue; "
                "start the run anew (its config.yaml still works) or finish it with descent 0.1"
                if earlier
                else "not a checkpoint of this descent Trainer (it lacks "
                f"{', '.join(sorted(missing))})"
            )
        )
    return payload
