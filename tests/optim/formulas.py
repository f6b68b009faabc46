"""The update rules of docs/optimizers.md computed by hand: plain Python floats, one
coordinate at a time, written from the table and not from descent's code."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

# A rule: (list of gradients for one coordinate, starting θ, hyperparameters) -> θ after each step.
Trajectory = list[float]


def rule(steps: Callable[..., Iterator[float]]) -> Callable[..., Trajectory]:
    """A rule written as a generator of θ after each step, as the list of them."""

    @functools.wraps(steps)
    def trajectory(*args: Any, **kwargs: Any) -> Trajectory:
        return list(steps(*args, **kwargs))

    return trajectory


@rule
def sgd(theta: float, grads: Sequence[float], lr: float) -> Iterator[float]:
    for g in grads:
        theta = theta - lr * g
        yield theta


@rule
def momentum(
    theta: float, grads: Sequence[float], lr: float, gamma: float = 0.9, nesterov: bool = False
) -> Iterator[float]:
    """v ← γ v + η g; θ ← θ − v, or with ``nesterov`` the stored look-ahead form
    φ ← φ − (γ v + η g), g taken at φ."""
    v = 0.0
    for g in grads:
        v = gamma * v + lr * g
        theta = theta - (gamma * v + lr * g if nesterov else v)
        yield theta


@rule
def adagrad(
    theta: float, grads: Sequence[float], lr: float = 0.01, eps: float = 1e-8, g0: float = 0.0
) -> Iterator[float]:
    G = g0
    for g in grads:
        G = G + g * g
        theta = theta - lr * g / math.sqrt(G + eps)
        yield theta


@rule
def adadelta(
    theta: float, grads: Sequence[float], lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6
) -> Iterator[float]:
    Eg, Ed = 0.0, 0.0
    for g in grads:
        Eg = rho * Eg + (1 - rho) * g * g
        delta = -math.sqrt(Ed + eps) / math.sqrt(Eg + eps) * g
        Ed = rho * Ed + (1 - rho) * delta * delta
        theta = theta + lr * delta
        yield theta


@rule
def rmsprop(
    theta: float, grads: Sequence[float], lr: float = 1e-3, rho: float = 0.9, eps: float = 1e-8
) -> Iterator[float]:
    E = 0.0
    for g in grads:
        E = rho * E + (1 - rho) * g * g
        theta = theta - lr * g / math.sqrt(E + eps)
        yield theta


def adam_hyperparameters(kw: dict[str, float]) -> tuple[float, float, float]:
    """(β₁, β₂, ε) of the Adam family from a rule's keywords (0.9, 0.999, 1e-8 by default)."""
    return kw.get("b1", 0.9), kw.get("b2", 0.999), kw.get("eps", 1e-8)


def adam_moments(
    grads: Sequence[float], b1: float = 0.9, b2: float = 0.999
) -> Iterator[tuple[int, float, float, float]]:
    """(t, g, m, v) for t = 1, 2, …: m ← β₁m + (1−β₁)g, v ← β₂v + (1−β₂)g², from m = v = 0,
    the moments Adam, AdamW, NAdam and AMSGrad share; each rule below writes only its step."""
    m = v = 0.0
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        yield t, g, m, v


@rule
def adam(theta: float, grads: Sequence[float], lr: float = 1e-3, **kw: float) -> Iterator[float]:
    b1, b2, eps = adam_hyperparameters(kw)
    for t, _, m, v in adam_moments(grads, b1, b2):
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        theta = theta - lr * m_hat / (math.sqrt(v_hat) + eps)
        yield theta


@rule
def adamw(
    theta: float, grads: Sequence[float], lr: float = 1e-3, wd: float = 0.01, **kw: float
) -> Iterator[float]:
    b1, b2, eps = adam_hyperparameters(kw)
    for t, _, m, v in adam_moments(grads, b1, b2):
        theta = theta - lr * wd * theta
        theta = theta - lr * (m / (1 - b1**t)) / (math.sqrt(v / (1 - b2**t)) + eps)
        yield theta


@rule
def adamax(theta: float, grads: Sequence[float], lr: float = 2e-3, **kw: float) -> Iterator[float]:
    b1, b2, eps = adam_hyperparameters(kw)
    m = u = 0.0
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        u = max(b2 * u, abs(g))
        theta = theta - lr / (1 - b1**t) * m / (u + eps)
        yield theta


@rule
def nadam(theta: float, grads: Sequence[float], lr: float = 1e-3, **kw: float) -> Iterator[float]:
    b1, b2, eps = adam_hyperparameters(kw)
    for t, g, m, v in adam_moments(grads, b1, b2):
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        theta = theta - lr * (b1 * m_hat + (1 - b1) * g / (1 - b1**t)) / (math.sqrt(v_hat) + eps)
        yield theta


@rule
def amsgrad(theta: float, grads: Sequence[float], lr: float = 1e-3, **kw: float) -> Iterator[float]:
    b1, b2, eps = adam_hyperparameters(kw)
    v_max = 0.0
    for _, _, m, v in adam_moments(grads, b1, b2):
        v_max = max(v_max, v)
        theta = theta - lr * m / (math.sqrt(v_max) + eps)
        yield theta


#: optimizer name -> (hand formula, descent kwargs giving the same hyperparameters)
HAND: dict[str, tuple[Callable[..., Trajectory], dict]] = {
    "sgd": (lambda th, gs: sgd(th, gs, 0.1), {"lr": 0.1}),
    "momentum": (lambda th, gs: momentum(th, gs, 0.1, 0.9), {"lr": 0.1}),
    "nesterov": (lambda th, gs: momentum(th, gs, 0.1, 0.9, nesterov=True), {"lr": 0.1}),
    "adagrad": (adagrad, {}),
    "adadelta": (adadelta, {}),
    "rmsprop": (rmsprop, {}),
    "adam": (adam, {}),
    "adamax": (adamax, {}),
    "nadam": (nadam, {}),
    "amsgrad": (amsgrad, {}),
    "adamw": (adamw, {}),
}
