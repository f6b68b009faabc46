"""Every rule reaches the minimum of an ill-conditioned quadratic and of Rosenbrock within a stated
tolerance and step budget; Momentum and NAG beat plain descent on a ravine."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from descent import optim

Loss = Callable[[torch.Tensor], torch.Tensor]

# J(x) = ½ xᵀ diag(1, 50) x: condition number 50, minimum 0 at the origin.
CURVATURE = torch.tensor([1.0, 50.0], dtype=torch.float64)


def quadratic(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (CURVATURE * x * x).sum()


def rosenbrock(x: torch.Tensor) -> torch.Tensor:
    return (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2


def minimize(name: str, loss: Loss, start: list[float], steps: int, **kw: Any) -> torch.Tensor:
    x = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    opt = optim.create(name, [x], **kw)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        value = loss(x)
        value.backward()
        return value

    for _ in range(steps):
        opt.step(closure)
    return x.detach()


def halving(lr: float, every: int) -> Callable[[int], float]:
    return lambda n: lr * 0.5 ** (n // every)


# (hyperparameters, step budget, tolerance on |x − x*|); the adaptive rules oscillate at a scale
# set by η near the minimum, so they get a decaying schedule.
QUADRATIC: dict[str, tuple[dict[str, Any], int, float]] = {
    "sgd": ({"lr": 0.035}, 500, 1e-6),
    "momentum": ({"lr": 0.02, "momentum": 0.8}, 500, 1e-6),
    "nesterov": ({"lr": 0.02, "momentum": 0.8}, 500, 1e-6),
    "adagrad": ({"lr": 0.5}, 2000, 1e-6),
    "adadelta": ({"lr": halving(1.0, 500)}, 3000, 1e-6),
    "rmsprop": ({"lr": halving(0.05, 200)}, 2000, 1e-4),
    "adam": ({"lr": halving(0.1, 200)}, 2000, 1e-4),
    "adamax": ({"lr": halving(0.1, 200)}, 2000, 1e-4),
    "nadam": ({"lr": halving(0.1, 200)}, 2000, 1e-4),
    "amsgrad": ({"lr": halving(0.1, 200)}, 2000, 1e-4),
    "adamw": ({"lr": halving(0.1, 200), "weight_decay": 0.0}, 2000, 1e-4),
}

ROSENBROCK: dict[str, tuple[dict[str, Any], int, float]] = {
    "sgd": ({"lr": 1.5e-3}, 20_000, 1e-3),
    "momentum": ({"lr": 5e-4, "momentum": 0.9}, 10_000, 1e-3),
    "nesterov": ({"lr": 5e-4, "momentum": 0.9}, 10_000, 1e-3),
    "adagrad": ({"lr": 0.5}, 10_000, 1e-3),
    "adadelta": ({"lr": halving(1.0, 2000)}, 10_000, 1e-2),
    "rmsprop": ({"lr": halving(0.01, 1500)}, 10_000, 1e-2),
    "adam": ({"lr": halving(0.05, 1500)}, 10_000, 1e-3),
    "adamax": ({"lr": halving(0.05, 1500)}, 10_000, 1e-3),
    "nadam": ({"lr": halving(0.05, 1500)}, 10_000, 1e-3),
    "amsgrad": ({"lr": halving(0.05, 1500)}, 10_000, 1e-3),
    "adamw": ({"lr": halving(0.05, 1500), "weight_decay": 0.0}, 10_000, 1e-3),
}


@pytest.mark.parametrize("name", list(QUADRATIC))
def test_reaches_minimum_of_ill_conditioned_quadratic(name: str) -> None:
    kwargs, steps, tol = QUADRATIC[name]
    x = minimize(name, quadratic, [1.0, 1.0], steps, **kwargs)
    assert float(x.norm()) < tol


@pytest.mark.parametrize("name", list(ROSENBROCK))
def test_reaches_minimum_of_rosenbrock(name: str) -> None:
    kwargs, steps, tol = ROSENBROCK[name]
    x = minimize(name, rosenbrock, [-1.2, 1.0], steps, **kwargs)
    assert float((x - torch.tensor([1.0, 1.0], dtype=torch.float64)).norm()) < tol


def steps_to_reach(name: str, tol: float, **kw: Any) -> int:
    """Updates until a ravine J(x) = ½(x₀² + 100 x₁²) falls below tol (its largest stable plain
    step is 0.02: we use 0.009 for all three)."""
    ravine = torch.tensor([1.0, 100.0], dtype=torch.float64)
    x = torch.tensor([1.0, 0.1], dtype=torch.float64, requires_grad=True)
    opt = optim.create(name, [x], lr=0.009, **kw)
    for n in range(1, 20_000):
        opt.zero_grad()
        value = 0.5 * (ravine * x * x).sum()
        value.backward()
        opt.step()
        if value.item() < tol:
            return n
    return 20_000


def test_momentum_and_nag_beat_plain_descent_on_a_ravine() -> None:
    plain = steps_to_reach("sgd", 1e-8)
    heavy_ball = steps_to_reach("momentum", 1e-8, momentum=0.9)
    nag = steps_to_reach("nesterov", 1e-8, momentum=0.9)
    assert heavy_ball < plain / 3
    assert nag < plain / 3
    assert nag <= heavy_ball
