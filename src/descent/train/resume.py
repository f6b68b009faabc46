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

import os
import zipfile
from pathlib import Path
from typing import Any

import torch

from descent import schedules as sch
from descent.errors import InputError


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


def write_atomically(payload: dict[str, Any], path: Path) -> None:
    """torch.save to a temporary file unique to this process, then renamed into place: a crash
    never leaves half a checkpoint, and two writers never share a temporary file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(payload, temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def read(path: Path) -> dict[str, Any]:
    """A checkpoint's payload, read onto the CPU without running pickled code; one line naming
    the file when it is missing or unreadable."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no checkpoint to resume from")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated, random bytes, another pickle: all unreadable here
        if not zipfile.is_zipfile(path):
            reason = "truncated, or not a file torch.save wrote"
        elif "Weights only load failed" in str(error):
            reason = "it holds objects other than tensors and plain values"
        else:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        raise InputError(f"{path}: not a readable descent checkpoint ({reason})") from None
    if not isinstance(payload, dict) or not payload.keys() >= REQUIRED:
        raise InputError(
            f"{path}: not a checkpoint of this descent Trainer (it lacks "
            f"{', '.join(sorted(REQUIRED - set(payload if isinstance(payload, dict) else ())))})"
        )
    return payload


#: What every checkpoint the Trainer writes holds.
REQUIRED = {"model", "optimizer", "scheduler", "scaler", "data", "ranks", "state"}
