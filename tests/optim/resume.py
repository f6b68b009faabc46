"""The resume check every rule's tests share: train 30 updates straight, then the same 30 with a
save and load of the optimizer's state dict in between, and compare bit for bit."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence

import torch


def assert_resume_is_exact(
    make: Callable[[list[torch.Tensor]], torch.optim.Optimizer],
    shapes: Sequence[tuple[int, ...]],
    split: int = 12,
    steps: int = 30,
) -> None:
    """``make(params)`` builds the optimizer (with a schedule as its lr, to check the schedule's
    position resumes too); parameters of ``shapes`` are drawn under seed 0 and get the gradient
    cos(θ + k + i) at update k for parameter i."""
    torch.manual_seed(0)
    params = [torch.randn(*shape, requires_grad=True) for shape in shapes]
    start = [p.detach().clone() for p in params]

    def train(opt: torch.optim.Optimizer, updates: range) -> None:
        for k in updates:
            for i, p in enumerate(params):
                p.grad = torch.cos(p.detach() + k + i)
            opt.step()

    train(make(params), range(steps))
    uninterrupted = [p.detach().clone() for p in params]
    with torch.no_grad():
        for p, s in zip(params, start, strict=True):
            p.copy_(s)
    opt = make(params)
    train(opt, range(split))
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    resumed = make(params)
    resumed.load_state_dict(torch.load(buffer, weights_only=False))
    train(resumed, range(split, steps))
    for p, u in zip(params, uninterrupted, strict=True):
        assert torch.equal(p.detach(), u)
