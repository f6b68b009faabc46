"""Driving torch's own optimizers with a descent schedule."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from descent.errors import InputError


class ScheduleLR(torch.optim.lr_scheduler.LRScheduler):
    """A torch LRScheduler that sets each group's lr to schedule(n) at update n.

    Call ``scheduler.step()`` after ``optimizer.step()``, as with any torch scheduler. The value is
    computed from the schedule's closed form (never by multiplying the previous lr), so there is no
    drift, no ordering warning to decode, and ``state_dict``/``load_state_dict`` resume exactly.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        schedules: Sequence[Callable[[int], float]],
        last_epoch: int = -1,
    ) -> None:
        if len(schedules) != len(optimizer.param_groups):
            raise InputError(
                f"one schedule per parameter group: the optimizer has "
                f"{len(optimizer.param_groups)} groups, got {len(schedules)} schedules"
            )
        self.schedules = list(schedules)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        # Already the closed form (a function of last_epoch alone), so torch's step(epoch) gets
        # the right value from it too; no private hook of torch's is overridden.
        return [float(schedule(self.last_epoch)) for schedule in self.schedules]


def torch_scheduler(
    optimizer: torch.optim.Optimizer,
    schedule: Callable[[int], float] | Sequence[Callable[[int], float]],
) -> ScheduleLR:
    """Drive any torch optimizer with a schedule (or one per parameter group)."""
    schedules = [schedule] * len(optimizer.param_groups) if callable(schedule) else list(schedule)
    return ScheduleLR(optimizer, schedules)
