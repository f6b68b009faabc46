"""Saving and resuming a descent rule: what :meth:`DescentOptimizer.state_dict` and
:meth:`~DescentOptimizer.load_state_dict` add to torch's.

- A schedule given as ``lr`` is saved as its dict form (``to_dict``) and rebuilt on load; a plain
  callable is saved as an opaque mark, and the optimizer it is loaded into must have been built with
  the same schedule.
- Each saved state tensor comes back in the dtype descent keeps it in (torch casts them all to the
  parameter's dtype), so a resumed run continues bit for bit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import Tensor

from descent.errors import InputError

if TYPE_CHECKING:
    from descent.optim.base import DescentOptimizer

_SCHEDULE_MARK = "__schedule__"
_OPAQUE_SCHEDULE = "<callable>"


def encode_schedules(groups: list[dict[str, Any]]) -> None:
    """Replace each schedule ``lr`` of the saved ``groups`` by its dict form (or the mark)."""
    for group in groups:
        lr = group["lr"]
        if callable(lr):
            to_dict = getattr(lr, "to_dict", None)
            group["lr"] = {_SCHEDULE_MARK: to_dict()} if to_dict else _OPAQUE_SCHEDULE


def decode_schedules(groups: list[dict[str, Any]], current_lrs: list[Any]) -> None:
    """Rebuild the schedules of loaded ``groups``; an opaque one takes the optimizer's current
    schedule (``current_lrs``, one per group)."""
    for group, current in zip(groups, current_lrs, strict=True):
        lr = group["lr"]
        if isinstance(lr, dict) and _SCHEDULE_MARK in lr:
            from descent.schedules import from_dict

            group["lr"] = from_dict(lr[_SCHEDULE_MARK])
        elif isinstance(lr, str) and lr == _OPAQUE_SCHEDULE:
            if not callable(current):
                raise InputError(
                    "the saved optimizer used a schedule that could not be saved (a plain "
                    "callable without to_dict); build the optimizer with the same schedule "
                    "as lr before loading its state"
                )
            group["lr"] = current


def restore_dtypes(optimizer: DescentOptimizer, state_dict: dict[str, Any]) -> None:
    """Put each saved state tensor back on its parameter's device in the dtype descent keeps."""
    saved_ids = [i for group in state_dict["param_groups"] for i in group["params"]]
    params = (p for group in optimizer.param_groups for p in group["params"])
    by_id = dict(zip(saved_ids, params, strict=True))
    groups = {id(p): g for g in optimizer.param_groups for p in g["params"]}
    for saved_id, saved_state in state_dict["state"].items():
        param = by_id.get(saved_id)
        if param is None:
            continue
        state = optimizer.state[param]
        for key, value in saved_state.items():
            if isinstance(value, Tensor):
                dtype = optimizer.loaded_dtype(param, groups[id(param)], key, value)
                state[key] = value.to(device=param.device, dtype=dtype)
