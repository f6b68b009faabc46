"""RMSprop: per-coordinate step sizes from a decaying average of squared gradients (Adagrad's and
Adadelta's relative, see :mod:`descent.optim.adaptive`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Unpack

import torch
from torch import Tensor

from descent import validate
from descent.optim._compat import foreach
from descent.optim.base import DescentOptimizer, LearningRate, effective_grad, effective_grads
from descent.optim.fastpath import Group, StepArgs
from descent.optim.options import RuleOptions, hyperparameters

# -- the pure reference step -------------------------------------------------------------------


def rmsprop_reference(
    param: Tensor,
    grad: Tensor,
    square_avg: Tensor,
    grad_avg: Tensor | None,
    momentum_buffer: Tensor | None,
    *,
    lr: float,
    rho: float = 0.9,
    eps: float = 1e-8,
    eps_inside_sqrt: bool = True,
    momentum: float = 0.0,
    centered: bool = False,
    weight_decay: float = 0.0,
    maximize: bool = False,
) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    """E ← ρ E + (1−ρ) g² ; θ ← θ − η g / √(E + ε)   (the lecture's form)

    centered:  Ē ← ρ Ē + (1−ρ) g and E − Ē² replaces E under the root.
    eps_inside_sqrt=False: √(·) + ε instead of √(· + ε) (torch's form).
    momentum μ > 0:  b ← μ b + g / denominator ; θ ← θ − η b (torch's form).

    Returns (θ, E, Ē, b); Ē and b (None when not kept) are read only when centered and when
    μ > 0.
    """
    g = effective_grad(param, grad, weight_decay, maximize)
    square_avg = rho * square_avg + (1 - rho) * g * g
    variance = square_avg
    if centered:
        grad_avg = rho * grad_avg + (1 - rho) * g
        variance = square_avg - grad_avg * grad_avg
    denominator = torch.sqrt(variance + eps) if eps_inside_sqrt else torch.sqrt(variance) + eps
    if momentum > 0:
        momentum_buffer = momentum * momentum_buffer + g / denominator
        return param - lr * momentum_buffer, square_avg, grad_avg, momentum_buffer
    return param - lr * g / denominator, square_avg, grad_avg, momentum_buffer


# -- the optimizer ----------------------------------------------------------------------------


class RMSprop(DescentOptimizer):
    """RMSprop (Hinton, lecture 6e, 2012): Adagrad with a decaying average instead of a sum.

    Lecture (defaults):  E ← ρ E + (1−ρ) g² ;  θ ← θ − η g / √(E + ε),
                         η = 0.001, ρ = 0.9, ε = 1e-8.

    Options (torch's): ``centered`` (E − Ē² under the root, Ē ← ρĒ + (1−ρ)g) and ``momentum``
    μ > 0 (b ← μ b + g / denominator ; θ ← θ − η b).

    Peers (docs/optimizers.md):
        torch.optim.RMSprop:  rho=0.99 (torch calls it alpha), eps_inside_sqrt=False (√E + ε).
        Keras:                rho=0.9, eps=1e-7 (inside the root).
        optax.rmsprop:        decay=ρ, eps_in_sqrt=True is this default.

    Example:
        >>> opt = RMSprop(model.parameters(), lr=1e-3)  # doctest: +SKIP
    """

    # Ē and b are kept only when centering or momentum asks for them (see _init_state)
    state_names = ("square_avg", "grad_avg", "momentum_buffer")
    reference = staticmethod(rmsprop_reference)
    flags = ("centered", "eps_inside_sqrt")

    def __init__(
        self,
        params: Iterable[Any],
        lr: LearningRate = 1e-3,
        rho: float = 0.9,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
        *,
        eps_inside_sqrt: bool = True,
        **options: Unpack[RuleOptions],
    ) -> None:
        super().__init__(params, hyperparameters(locals()), **options)

    def _validate(self, group: Group) -> None:
        super()._validate(group)
        validate.unit_interval(group["rho"], "rho (ρ)")
        validate.positive(group["eps"], "eps (ε)")
        validate.unit_interval(group["momentum"], "momentum (μ)")

    def _state_names(self, param: Tensor, group: Group) -> list[str]:
        # Ē and b take memory only when centering or momentum asks for them.
        names = ["square_avg"]
        if group["centered"]:
            names.append("grad_avg")
        if group["momentum"] > 0:
            names.append("momentum_buffer")
        return names

    def _foreach_update(self, step: StepArgs) -> None:
        group, params, grads, states, lr = step.group, step.params, step.grads, step.states, step.lr
        rho, eps, momentum = group["rho"], group["eps"], group["momentum"]
        g = effective_grads(params, grads, group["weight_decay"], group["maximize"])
        square = [state["square_avg"] for state in states]
        foreach.mul_(square, rho)
        foreach.addcmul_(square, g, g, value=1 - rho)
        if group["centered"]:
            average = [state["grad_avg"] for state in states]
            foreach.mul_(average, rho)
            foreach.add_(average, g, alpha=1 - rho)
            variance = foreach.addcmul(square, average, average, value=-1.0)
        else:
            variance = square
        if group["eps_inside_sqrt"]:
            den = foreach.add(variance, eps)
            foreach.sqrt_(den)
        else:
            den = foreach.sqrt(variance)
            foreach.add_(den, eps)
        if momentum > 0:
            buffers = [state["momentum_buffer"] for state in states]
            foreach.mul_(buffers, momentum)
            foreach.addcdiv_(buffers, g, den, value=1.0)
            foreach.add_(params, buffers, alpha=-lr)
        else:
            foreach.addcdiv_(params, g, den, value=-lr)

    def _fast_update(self, step: StepArgs) -> None:
        group, lr = step.group, step.lr
        centered, momentum = group["centered"], group["momentum"]
        self._native_shared(
            "rmsprop",
            step,
            # θ's pointer stands in for a buffer the kernel never reads under these settings
            {
                "e": "square_avg",
                "ebar": "grad_avg" if centered else None,
                "b": "momentum_buffer" if momentum != 0 else None,
            },
            dict(
                lr=lr,
                rho=group["rho"],
                eps=group["eps"],
                wd=group["weight_decay"],
                inside=group["eps_inside_sqrt"],
                centered=centered,
                momentum=momentum,
            ),
        )
