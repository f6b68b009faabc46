"""RAdam (Liu et al. 2020): Adam whose adaptive step is switched on only once the variance of the
adaptive rate is tractable, and then scaled by its rectification term."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Unpack

import torch
from torch import Tensor

from descent import validate
from descent.optim._compat import foreach
from descent.optim.adam import (
    _AdamBase,
    _moments,
    decayed_grad,
    decayed_grads,
    moments_reference,
)
from descent.optim.base import LearningRate
from descent.optim.fastpath import Group, StepArgs
from descent.optim.options import RuleOptions, hyperparameters


def _rho_and_square(step: Any, beta2: float) -> tuple[Any, Any]:
    """(ρₜ, rₜ²) for step t, a number or a 0-d tensor (the device path):

    ρ∞ = 2/(1−β₂) − 1 ;  ρₜ = ρ∞ − 2t β₂ᵗ/(1−β₂ᵗ) ;  rₜ² = (ρₜ−4)(ρₜ−2)ρ∞ / ((ρ∞−4)(ρ∞−2)ρₜ)
    """
    rho_inf = 2 / (1 - beta2) - 1
    rho_t = rho_inf - 2 * step * beta2**step / (1 - beta2**step)
    return rho_t, (rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)


def radam_rectification(step: int, beta2: float, threshold: float) -> float | None:
    """rₜ for step t, or None while ρₜ ≤ threshold (the variance of the adaptive rate is not yet
    tractable and the step is plain momentum SGD):

        ρ∞ = 2/(1−β₂) − 1 ;  ρₜ = ρ∞ − 2t β₂ᵗ/(1−β₂ᵗ)
        rₜ = √( (ρₜ−4)(ρₜ−2)ρ∞ / ((ρ∞−4)(ρ∞−2)ρₜ) )
    """
    rho_t, square = _rho_and_square(step, beta2)
    if rho_t <= threshold:
        return None
    return math.sqrt(square)


def radam_reference(
    param: Tensor,
    grad: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    *,
    step: int,
    lr: float,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
    threshold: float = 4.0,
    weight_decay: float = 0.0,
    decoupled_weight_decay: bool = False,
    maximize: bool = False,
) -> tuple[Tensor, Tensor, Tensor]:
    """m ← β₁m + (1−β₁)g ; v ← β₂v + (1−β₂)g² ; m̂ = m/(1−β₁ᵗ)
    ρₜ > threshold:  θ ← θ − η rₜ m̂ · √(1−β₂ᵗ)/(√v + ε)     (rₜ: :func:`radam_rectification`)
    otherwise:       θ ← θ − η m̂

    decoupled_weight_decay (torch's): θ ← θ − η λ θ first, and g gets no L2 term.

    Returns (θ, m, v).
    """
    param, g = decayed_grad(param, grad, lr, weight_decay, decoupled_weight_decay, maximize)
    exp_avg, exp_avg_sq = moments_reference(g, exp_avg, exp_avg_sq, beta1, beta2)
    corrected = exp_avg / (1 - beta1**step)
    rect = radam_rectification(step, beta2, threshold)
    if rect is None:
        return param - lr * corrected, exp_avg, exp_avg_sq
    adaptive = math.sqrt(1 - beta2**step) / (torch.sqrt(exp_avg_sq) + eps)
    return param - lr * rect * corrected * adaptive, exp_avg, exp_avg_sq


class RAdam(_AdamBase):
    """RAdam (L. Liu et al., "On the Variance of the Adaptive Learning Rate and Beyond", ICLR 2020):
    Adam with a warmup derived from the variance of its adaptive rate.

        m ← β₁m + (1−β₁)g ;  v ← β₂v + (1−β₂)g² ;  m̂ = m/(1−β₁ᵗ)
        ρ∞ = 2/(1−β₂) − 1 ;  ρₜ = ρ∞ − 2tβ₂ᵗ/(1−β₂ᵗ)
        ρₜ > 4:  rₜ = √((ρₜ−4)(ρₜ−2)ρ∞ / ((ρ∞−4)(ρ∞−2)ρₜ)) ;  θ ← θ − η rₜ m̂ √(1−β₂ᵗ)/(√v + ε)
        else:    θ ← θ − η m̂
        η = 1e-3, β = (0.9, 0.999), ε = 1e-8

    The paper's Algorithm 2 switches at ρₜ > 4 and has no ε; ε sits where the authors' code and
    torch put it. Peers (docs/optimizers.md): torch.optim.RAdam and the authors' code switch at
    ρₜ > 5: ``threshold=5`` reproduces them (``decoupled_weight_decay=True`` is torch's
    decoupled form, θ ← θ − ηλθ before the step).

    Example:
        >>> opt = RAdam(model.parameters(), lr=1e-3)  # doctest: +SKIP
        >>> like_torch = RAdam(model.parameters(), threshold=5.0)  # doctest: +SKIP
    """

    reference = staticmethod(radam_reference)
    flags = ("decoupled_weight_decay",)

    def __init__(
        self,
        params: Iterable[Any],
        lr: LearningRate = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        *,
        decoupled_weight_decay: bool = False,
        threshold: float = 4.0,
        **options: Unpack[RuleOptions],
    ) -> None:
        super().__init__(params, hyperparameters(locals()), **options)

    def _validate(self, group: Group) -> None:
        super()._validate(group)
        validate.nonnegative(
            group["threshold"], "threshold (the ρₜ above which Adam's step is used)"
        )

    def _foreach_update(self, step: StepArgs) -> None:
        group, params, lr = step.group, step.params, step.lr
        beta1, beta2 = group["betas"]
        g = decayed_grads(
            params,
            step.grads,
            lr,
            group["weight_decay"],
            group["decoupled_weight_decay"],
            group["maximize"],
        )
        m, v = _moments(group, g, step.states)
        steps = step.all_steps()
        if isinstance(steps[0], Tensor):
            self._device_steps(group, params, m, v, steps, lr)
            return
        adaptive, plain = [], []
        # (adaptive?, step size) per step count: the tensors of a group share one, or a few
        by_step: dict[float, tuple[bool, float]] = {}
        for i, t in enumerate(steps):
            if t not in by_step:
                rect = radam_rectification(int(t), beta2, group["threshold"])
                if rect is None:
                    by_step[t] = (False, -lr / (1 - beta1**t))
                else:
                    by_step[t] = (True, -lr * rect * math.sqrt(1 - beta2**t) / (1 - beta1**t))
            rectified, size = by_step[t]
            (adaptive if rectified else plain).append((i, size))
        if plain:
            foreach.add_(
                [params[i] for i, _ in plain],
                foreach.mul([m[i] for i, _ in plain], [size for _, size in plain]),
            )
        if adaptive:
            den = foreach.sqrt([v[i] for i, _ in adaptive])
            foreach.add_(den, group["eps"])
            foreach.addcdiv_(
                [params[i] for i, _ in adaptive],
                [m[i] for i, _ in adaptive],
                den,
                [size for _, size in adaptive],
            )

    @staticmethod
    def _device_steps(
        group: Group,
        params: list[Tensor],
        m: list[Tensor],
        v: list[Tensor],
        steps: list[Tensor],
        lr: float,
    ) -> None:
        """The step with t a device tensor (compiled or capturable): both branches of the
        rectification computed and chosen by torch.where, so nothing is read back to the host."""
        beta1, beta2 = group["betas"]
        den = foreach.sqrt(v)
        foreach.add_(den, group["eps"])
        factors, sizes = [], []
        for t, d in zip(steps, den, strict=True):
            rho_t, square = _rho_and_square(t, beta2)
            adaptive = (square.clamp(min=0) * (1 - beta2**t)).sqrt()  # rₜ √(1−β₂ᵗ)
            factors.append(torch.where(rho_t > group["threshold"], adaptive / d, 1.0))
            sizes.append(-lr / (1 - beta1**t))
        foreach.addcmul_(params, m, factors, sizes)
