"""The scaffolding the per-rule tests share, so each test file states only what differs: a
seeded set of float64 parameters driven by a fixed gradient field (two optimizers run on it can be
compared step for step), a cosine learning-rate schedule (to check that the fast path and a resume
follow the lr's position), and the comparisons."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pytest
import torch

MakeOptimizer = Callable[[list[torch.Tensor]], torch.optim.Optimizer]
#: the gradient of parameter ``i`` (detached value ``p``) at update ``k``
GradientField = Callable[[torch.Tensor, int, int], torch.Tensor]


@dataclass(frozen=True)
class Cosine:
    """lr(n) = peak·(1 + cos(π·min(n, 40)/40))/2 + floor: half a cosine over 40 updates."""

    peak: float
    floor: float

    def __call__(self, n: int) -> float:
        return self.peak * (1 + math.cos(math.pi * min(n, 40) / 40)) / 2 + self.floor


def drifting(p: torch.Tensor, k: int, i: int) -> torch.Tensor:
    """sin(θ + 0.3k + i) + 0.1θ: a phase that drifts with the update."""
    return torch.sin(p + 0.3 * k + i) + 0.1 * p


def chirping(p: torch.Tensor, k: int, i: int) -> torch.Tensor:
    """sin(θ(k + 1) + i) + 0.1θ: a frequency that grows with the update."""
    return torch.sin(p * (k + 1) + i) + 0.1 * p


def run(
    make: MakeOptimizer,
    shapes: Sequence[tuple[int, ...]] = ((7, 3), (3,)),
    steps: int = 50,
    gradient: GradientField = drifting,
) -> list[torch.Tensor]:
    """The parameters after ``steps`` updates of ``make(params)`` from float64 parameters of
    ``shapes`` drawn under seed 0."""
    torch.manual_seed(0)
    params = [torch.randn(*shape, dtype=torch.float64).requires_grad_(True) for shape in shapes]
    opt = make(params)
    for k in range(steps):
        for i, p in enumerate(params):
            p.grad = gradient(p.detach(), k, i)
        opt.step()
    return [p.detach() for p in params]


def assert_all_close(
    ours: Sequence[torch.Tensor], theirs: Sequence[torch.Tensor], tol: float = 1e-12
) -> None:
    """Each tensor of ``ours`` equals its partner in ``theirs`` to ``tol`` (rtol and atol)."""
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)


def assert_fast_equals_reference(
    rule: Callable[..., torch.optim.Optimizer],
    kwargs: dict,
    shapes: Sequence[tuple[int, ...]] = ((7, 3), (3,)),
    gradient: GradientField = drifting,
) -> None:
    """``rule(params, **kwargs)`` (its default, fast implementation) and the same with
    ``impl="reference"`` follow one trajectory to 1e-12."""
    fast = run(lambda p: rule(p, **kwargs), shapes, gradient=gradient)
    reference = run(lambda p: rule(p, impl="reference", **kwargs), shapes, gradient=gradient)
    assert_all_close(fast, reference)


#: (kwargs, message) that every rule with Adam's two moments refuses: its β and ε are checked by
#: one function (descent.optim.adam.validate_moments); each rule's test adds its own rows
MOMENT_REJECTIONS: list[tuple[dict, str]] = [
    ({"betas": (0.9, 1.0)}, r"betas\[1\].*\[0, 1\)"),
    ({"eps": 0.0}, r"eps.*> 0"),
]


def assert_rejects(
    rule: Callable[..., torch.optim.Optimizer],
    kwargs: dict,
    message: str,
    shape: tuple[int, ...] = (2,),
) -> None:
    """Building ``rule`` on a zero parameter of ``shape`` with ``kwargs`` raises a ValueError
    whose text matches ``message``."""
    with pytest.raises(ValueError, match=message):
        rule([torch.zeros(*shape, requires_grad=True)], **kwargs)
