"""AdaMax: Adam with the infinity norm."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Unpack

import torch
from torch import Tensor

from descent.optim._compat import foreach
from descent.optim.adam import _AdamBase
from descent.optim.base import LearningRate, effective_grad, effective_grads
from descent.optim.fastpath import StepArgs
from descent.optim.options import RuleOptions, hyperparameters

# -- pure reference step ------------------------------------------------------------------------


def adamax_reference(
    param: Tensor,
    grad: Tensor,
    exp_avg: Tensor,
    exp_inf: Tensor,
    *,
    step: int,
    lr: float,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
    eps_in_max: bool = False,
    weight_decay: float = 0.0,
    maximize: bool = False,
) -> tuple[Tensor, Tensor, Tensor]:
    """m ← β₁m + (1−β₁)g ; u ← max(β₂u, |g|) ; θ ← θ − η/(1−β₁ᵗ) · m/(u + ε).

    eps_in_max (torch):  u ← max(β₂u, |g| + ε) ; θ ← θ − η/(1−β₁ᵗ) · m/u.

    Returns (θ, m, u).
    """
    g = effective_grad(param, grad, weight_decay, maximize)
    exp_avg = beta1 * exp_avg + (1 - beta1) * g
    bias1 = 1 - beta1**step
    if eps_in_max:
        exp_inf = torch.maximum(beta2 * exp_inf, torch.abs(g) + eps)
        return param - lr / bias1 * exp_avg / exp_inf, exp_avg, exp_inf
    exp_inf = torch.maximum(beta2 * exp_inf, torch.abs(g))
    return param - lr / bias1 * exp_avg / (exp_inf + eps), exp_avg, exp_inf


# -- the optimizer -----------------------------------------------------------------------------


class AdaMax(_AdamBase):
    """AdaMax (Kingma & Ba 2015, §7): Adam with the infinity norm in place of the second moment.

        m ← β₁m + (1−β₁)g ;  u ← max(β₂u, |g|)
        θ ← θ − η/(1−β₁ᵗ) · m/(u + ε)          η = 0.002, β = (0.9, 0.999), ε = 1e-8

    Peers (docs/optimizers.md): Keras adds ε to u in the denominator, as here. torch.optim.Adamax
    puts ε inside the max (``eps_in_max=True``): u ← max(β₂u, |g| + ε) ; θ ← θ − η/(1−β₁ᵗ) · m/u.

    State names follow torch (``exp_avg`` = m, ``exp_inf`` = u).

    Example:
        >>> opt = AdaMax(model.parameters(), lr=2e-3)  # doctest: +SKIP
    """

    state_names = ("exp_avg", "exp_inf")
    reference = staticmethod(adamax_reference)
    flags = ("eps_in_max",)

    def __init__(
        self,
        params: Iterable[Any],
        lr: LearningRate = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        *,
        eps_in_max: bool = False,
        **options: Unpack[RuleOptions],
    ) -> None:
        super().__init__(params, hyperparameters(locals()), **options)

    def _foreach_update(self, step: StepArgs) -> None:
        group, params, grads, states, lr = step.group, step.params, step.grads, step.states, step.lr
        beta1, beta2 = group["betas"]
        eps = group["eps"]
        g = effective_grads(params, grads, group["weight_decay"], group["maximize"])
        m = [state["exp_avg"] for state in states]
        u = [state["exp_inf"] for state in states]
        foreach.mul_(m, beta1)
        foreach.add_(m, g, alpha=1 - beta1)
        magnitude = foreach.abs(g)
        if group["eps_in_max"]:
            foreach.add_(magnitude, eps)
        foreach.mul_(u, beta2)
        foreach.maximum_(u, magnitude)
        den = u if group["eps_in_max"] else foreach.add(u, eps)
        foreach.addcdiv_(params, m, den, [-lr / (1 - beta1**t) for t in step.all_steps()])

    def _fast_update(self, step: StepArgs) -> None:
        group, lr = step.group, step.lr
        beta1, beta2 = group["betas"]
        self._native_shared(
            "adamax",
            step,
            {"m": "exp_avg", "u": "exp_inf"},
            dict(
                step_size=lambda t: lr / (1 - beta1**t),
                beta1=beta1,
                beta2=beta2,
                eps=group["eps"],
                wd=group["weight_decay"],
                eps_in_max=group["eps_in_max"],
            ),
        )
