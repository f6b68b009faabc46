"""Checkpoints: the one place descent writes and reads them.

A checkpoint holds only tensors and plain Python values (dicts, lists, strings, numbers, None):
the model's and optimizer's state dicts, torch's RNG state and the batch generator's state as
tensors, a schedule in its dict form, counters as ints. So :func:`load` reads it with
``torch.load(weights_only=True)``: unpickling a checkpoint can build tensors and containers and
nothing else, and a file that asks for any other Python object (a crafted ``last.pt`` whose pickle
would call ``os.system``) is refused with one line naming the file and the object it asked for,
before any of it runs.

Writing is atomic and safe against concurrent writers: the payload goes to a temporary file whose
name is unique to the process, which is then renamed over the target (a crash never leaves half a
file, two processes never share a temporary).

Checkpoints of earlier releases: a run that drove a torch optimizer with a descent schedule saved
the schedule object itself (``scheduler.schedules``). Those files are still read with
``weights_only=True``, with descent's own schedule classes allowed (frozen dataclasses of numbers:
rebuilding one runs no code), and the schedule objects are turned into their dict forms on
reading, as this release saves them. The next save writes the current format. Any other object is
refused.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from descent.errors import InputError

#: what every descent checkpoint holds, at least
REQUIRED_KEYS = ("model", "state")
_UNSUPPORTED_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")


class CheckpointError(InputError):
    """A checkpoint that cannot be read, or that asks for more than tensors and plain values."""


def one_line(error: BaseException) -> str:
    """An exception's whole message on one line (state-dict mismatches span many lines, and the
    first alone, "Error(s) in loading state_dict for MLP:", says nothing)."""
    text = " ".join(str(error).split())
    return text or type(error).__name__


def temporary_path(path: Path) -> Path:
    """A temporary file next to ``path``, unique to this process and call (two writers into the
    same folder never share one)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def write_bytes_atomically(path: Path, write: Any) -> Path:
    """Call ``write(temporary_path)`` and rename the result over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_path(path)
    try:
        write(temporary)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def save(payload: dict[str, Any], path: str | Path) -> Path:
    """Write ``payload`` to ``path`` atomically. The payload must load with weights_only=True:
    tensors, dicts, lists, tuples, strings, numbers, None (a schedule as its ``to_dict()``)."""
    import torch

    return write_bytes_atomically(Path(path), lambda temporary: torch.save(payload, temporary))


def copy(source: str | Path, target: str | Path) -> Path:
    """Copy a checkpoint file atomically (best.pt from the last.pt just written)."""
    return write_bytes_atomically(
        Path(target), lambda temporary: shutil.copyfile(source, temporary)
    )


def _legacy_globals() -> list[Any]:
    """Objects an earlier release pickled into checkpoints that are safe to rebuild: descent's
    schedule classes (frozen dataclasses of numbers, lists and other schedules)."""
    from descent import schedules

    return [
        value
        for value in vars(schedules).values()
        if isinstance(value, type) and issubclass(value, schedules.Schedule)
    ]


def _plain_schedules(payload: dict[str, Any]) -> dict[str, Any]:
    """The current format of a checkpoint read from an earlier release: schedule objects a torch
    scheduler's state held become their dict forms (what this release saves)."""
    scheduler = payload.get("scheduler")
    if isinstance(scheduler, dict) and isinstance(scheduler.get("schedules"), list):
        scheduler["schedules"] = [
            item.to_dict() if hasattr(item, "to_dict") else item for item in scheduler["schedules"]
        ]
    return payload


def _torch_load(path: Path, map_location: Any, allowed: Iterable[Any] = ()) -> Any:
    import torch

    allowed = list(allowed)
    if not allowed:
        return torch.load(path, map_location=map_location, weights_only=True)
    scoped = getattr(torch.serialization, "safe_globals", None)  # torch ≥ 2.5
    if scoped is None:  # torch 2.4: allowed process-wide (descent's schedule classes only)
        torch.serialization.add_safe_globals(allowed)
        return torch.load(path, map_location=map_location, weights_only=True)
    with scoped(allowed):
        return torch.load(path, map_location=map_location, weights_only=True)


def load(
    path: str | Path,
    *,
    map_location: Any = None,
    required: Iterable[str] = REQUIRED_KEYS,
) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``: only tensors and plain values are rebuilt.

    Raises :class:`CheckpointError` (one line naming the file) for a missing, truncated, corrupt or
    foreign file, and for a file that asks for any other Python object (naming that object)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        try:
            payload = _torch_load(path, map_location)
            legacy = False
        except Exception as error:
            needed = _UNSUPPORTED_GLOBAL.search(str(error))
            legacy_names = {f"{g.__module__}.{g.__qualname__}" for g in _legacy_globals()}
            if needed is None or needed.group(1) not in legacy_names:
                raise
            payload = _torch_load(path, map_location, _legacy_globals())
            legacy = True
    except Exception as error:
        needed = _UNSUPPORTED_GLOBAL.search(str(error))
        if needed is not None:
            raise CheckpointError(
                f"{path}: refused: the file asks for the Python object {needed.group(1)}, and a "
                "descent checkpoint holds only tensors and plain values (it was not written by "
                "descent, or was altered)"
            ) from None
        reason = one_line(error)
        if "Weights only load failed" in reason:
            reason = "it holds objects other than tensors and plain values"
        raise CheckpointError(
            f"{path}: not a readable descent checkpoint ({type(error).__name__}: {reason[:300]})"
        ) from None
    if not isinstance(payload, dict):
        raise CheckpointError(
            f"{path}: not a descent checkpoint (it holds a {type(payload).__name__}, not a dict)"
        )
    missing = [key for key in required if key not in payload]
    if missing:
        raise CheckpointError(
            f"{path}: not a descent checkpoint (no {', '.join(map(repr, missing))} entry)"
        )
    return _plain_schedules(payload) if legacy else payload


__all__ = [
    "CheckpointError",
    "copy",
    "load",
    "one_line",
    "save",
]
