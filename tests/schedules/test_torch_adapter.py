"""ScheduleLR: a descent schedule driving a torch optimizer through torch's public scheduler API."""

from __future__ import annotations

import warnings

import pytest
import torch

from descent import schedules


def _sgd() -> torch.optim.SGD:
    return torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=1.0)


def test_each_step_sets_the_schedule_value() -> None:
    opt = _sgd()
    schedule = schedules.ExponentialDecay(0.1, decay_steps=1, decay_rate=0.5)
    scheduler = schedules.torch_scheduler(opt, schedule)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)
    for update in range(1, 5):
        opt.step()
        scheduler.step()
        assert opt.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5**update, rel=1e-12)


def test_step_with_an_explicit_epoch_jumps_to_its_value() -> None:
    """torch's step(epoch) (deprecated, still public) lands on schedule(epoch), not a product."""
    opt = _sgd()
    scheduler = schedules.torch_scheduler(opt, lambda n: 1.0 / (1 + n))
    opt.step()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's deprecation warning for the epoch argument
        scheduler.step(7)
    assert opt.param_groups[0]["lr"] == pytest.approx(1.0 / 8)
    assert scheduler.get_last_lr() == [pytest.approx(1.0 / 8)]
