"""What a Trainer checkpoint holds beyond the model and optimizer, in plain form.

Everything saved is a tensor, a number, a string, None, or a list or dict of these, so a
checkpoint loads with ``torch.load(path, weights_only=True)`` (no pickled code runs) and on any
device (tensors are read onto the CPU and copied to the parameters' device).

A torch optimizer driven by a schedule keeps the schedule in its scheduler; a schedule is saved in
its dict form when it has one (descent's schedules do) and rebuilt from it; for a plain function
only the position is saved and the function given to the resumed Trainer is used, as descent's own
update rules do with their ``lr``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from descent import schedules as sch
from descent.errors import InputError
from descent.train import checkpoint


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


#: What every checkpoint the Trainer writes holds.
REQUIRED = {"model", "optimizer", "scheduler", "scaler", "data", "ranks", "state"}
