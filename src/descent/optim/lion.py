"""Lion (Chen et al. 2023): the sign of an interpolated momentum as the update."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Unpack

import torch
from torch import Tensor

from descent.optim._compat import foreach
from descent.optim.base import (
    DescentOptimizer,
    LearningRate,
    effective_grad,
    effective_grads,
    validate_betas,
)
from descent.optim.fastpath import Group, StepArgs
from descent.optim.options import RuleOptions, hyperparameters


def lion_reference(
    param: Tensor,
    grad: Tensor,
    exp_avg: Tensor,
    *,
    lr: float,
    beta1: float = 0.9,
    beta2: float = 0.99,
    weight_decay: float = 0.0,
    maximize: bool = False,
) -> tuple[Tensor, Tensor]:
    """c = β₁m + (1−β₁)g ; θ ← θ − η (sign(c) + λθ) ; m ← β₂m + (1−β₂)g.

    Returns (θ, m).
    """
    g = effective_grad(param, grad, 0.0, maximize)
    interpolated = beta1 * exp_avg + (1 - beta1) * g
    param = param - lr * (torch.sign(interpolated) + weight_decay * param)
    exp_avg = beta2 * exp_avg + (1 - beta2) * g
    return param, exp_avg


class Lion(DescentOptimizer):
    """Lion (X. Chen et al., "Symbolic Discovery of Optimization Algorithms", NeurIPS 2023): every
    coordinate moves by ±η, in the direction of a momentum interpolated with the new gradient; the
    momentum itself is tracked with a slower β₂. One state tensor (Adam keeps two).

        c = β₁m + (1−β₁)g
        θ ← θ − η (sign(c) + λθ)              (decoupled weight decay λ, as in AdamW)
        m ← β₂m + (1−β₂)g                      η = 1e-4, β = (0.9, 0.99), λ = 0

    Since |sign(c)| = 1, the update's norm is larger than Adam's: the paper uses an η 3–10× smaller
    and a λ 3–10× larger than for AdamW. Peers: ``lion_pytorch.Lion`` computes exactly this (its
    ``decoupled_weight_decay=True`` divides λ by the initial η; pass λ/η₀ here for that).

    Example:
        >>> opt = Lion(model.parameters(), lr=1e-4, weight_decay=0.1)  # doctest: +SKIP
    """

    counts_steps = False  # the update does not depend on t
    state_names = ("exp_avg",)
    reference = staticmethod(lion_reference)

    def __init__(
        self,
        params: Iterable[Any],
        lr: LearningRate = 1e-4,
        betas: tuple[float, float] = (0.9, 0.99),
        weight_decay: float = 0.0,
        **options: Unpack[RuleOptions],
    ) -> None:
        super().__init__(params, hyperparameters(locals()), **options)

    def _validate(self, group: Group) -> None:
        super()._validate(group)
        group["betas"] = validate_betas(group["betas"])

    def _foreach_update(self, step: StepArgs) -> None:
        group, params, grads, states, lr = step.group, step.params, step.grads, step.states, step.lr
        beta1, beta2 = group["betas"]
        g = effective_grads(params, grads, 0.0, group["maximize"])
        m = [state["exp_avg"] for state in states]
        interpolated = foreach.mul(m, beta1)
        foreach.add_(interpolated, g, alpha=1 - beta1)
        if group["weight_decay"] != 0:
            foreach.add_(params, params, alpha=-lr * group["weight_decay"])  # θ ← θ − ηλθ
        foreach.add_(params, foreach.sign(interpolated), alpha=-lr)
        foreach.mul_(m, beta2)
        foreach.add_(m, g, alpha=1 - beta2)

    def _fast_update(self, step: StepArgs) -> None:
        group, lr = step.group, step.lr
        beta1, beta2 = group["betas"]
        self._native_shared(
            "lion",
            step,
            {"m": "exp_avg"},
            dict(lr=lr, beta1=beta1, beta2=beta2, wd=group["weight_decay"]),
        )
