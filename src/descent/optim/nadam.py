"""Nadam: Adam with Nesterov momentum."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar, Unpack

import torch
from torch import Tensor

from descent import validate
from descent.optim._compat import foreach
from descent.optim.adam import _AdamBase, _moments, moments_reference
from descent.optim.base import (
    Group,
    Host,
    LearningRate,
    State,
    effective_grad,
    effective_grads,
)
from descent.optim.options import RuleOptions, hyperparameters

# -- pure reference step ------------------------------------------------------------------------


def nadam_coefficients(
    step: int, lr: float, beta1: float, momentum_decay: float | None, mu_product: float
) -> tuple[float, float, float]:
    """(c_g, c_m, new μ-product) such that θ ← θ − (c_g g + c_m m) / (√v̂ + ε).

    Constant β₁ (the lecture's and optax's form):
        c_g = η (1−β₁)/(1−β₁ᵗ),  c_m = η β₁/(1−β₁ᵗ)
    Momentum schedule μₜ = β₁(1 − ½·0.96^(ψt)) (torch: ψ = momentum_decay = 0.004):
        Πₜ = Πₜ₋₁ μₜ,  c_g = η (1−μₜ)/(1−Πₜ),  c_m = η μₜ₊₁/(1−Πₜ μₜ₊₁)
    """
    if momentum_decay is None:
        bias1 = 1 - beta1**step
        return lr * (1 - beta1) / bias1, lr * beta1 / bias1, mu_product
    mu = beta1 * (1.0 - 0.5 * 0.96 ** (step * momentum_decay))
    mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((step + 1) * momentum_decay))
    mu_product = mu_product * mu
    return lr * (1 - mu) / (1 - mu_product), lr * mu_next / (1 - mu_product * mu_next), mu_product


def nadam_reference(
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
    momentum_decay: float | None = None,
    mu_product: float = 1.0,
    weight_decay: float = 0.0,
    maximize: bool = False,
) -> tuple[Tensor, Tensor, Tensor, float]:
    """m, v, m̂, v̂ as Adam ; θ ← θ − η (β₁m̂ + (1−β₁)g/(1−β₁ᵗ)) / (√v̂ + ε).

    With a momentum schedule (momentum_decay ψ, torch's NAdam), see :func:`nadam_coefficients`.

    Returns (θ, m, v, μ-product).
    """
    g = effective_grad(param, grad, weight_decay, maximize)
    exp_avg, exp_avg_sq = moments_reference(g, exp_avg, exp_avg_sq, beta1, beta2)
    v_hat = exp_avg_sq / (1 - beta2**step)
    c_g, c_m, mu_product = nadam_coefficients(step, lr, beta1, momentum_decay, mu_product)
    update = (c_g * g + c_m * exp_avg) / (torch.sqrt(v_hat) + eps)
    return param - update, exp_avg, exp_avg_sq, mu_product


class Nadam(_AdamBase):
    """Nadam (Dozat 2016): Adam with Nesterov momentum.

    Lecture (default, constant β₁ as in optax):
        m, v, m̂, v̂ as Adam
        θ ← θ − η (β₁m̂ + (1−β₁)g/(1−β₁ᵗ)) / (√v̂ + ε)     η = 0.001, β = (0.9, 0.999), ε = 1e-8

    torch.optim.NAdam (``momentum_decay=0.004``, lr=0.002) uses the momentum schedule
    μₜ = β₁(1 − ½·0.96^(ψt)) with Πₜ = Π μᵢ:
        θ ← θ − η(1−μₜ)/(1−Πₜ) · g/(√v̂ + ε) − η μₜ₊₁/(1−Πₜμₜ₊₁) · m/(√v̂ + ε)
    Keras 3's Nadam uses the same schedule with its own ψ; set ``momentum_decay`` accordingly.
    Πₜ is kept in float64 (``state["mu_product"]``) whatever the parameters' dtype.
    docs/optimizers.md.

    Example:
        >>> opt = Nadam(model.parameters(), lr=1e-3)  # doctest: +SKIP
    """

    scalar_state: ClassVar[dict[str, torch.dtype]] = {"mu_product": torch.float64}
    reference = staticmethod(nadam_reference)

    def __init__(
        self,
        params: Iterable[Any],
        lr: LearningRate = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        *,
        momentum_decay: float | None = None,
        **options: Unpack[RuleOptions],
    ) -> None:
        super().__init__(params, hyperparameters(locals()), **options)

    def _validate(self, group: Group) -> None:
        super()._validate(group)
        if group["momentum_decay"] is not None:
            validate.nonnegative(group["momentum_decay"], "momentum_decay (ψ)")

    def _init_host(self, group: Group) -> Host:
        return {"mu_product": 1.0}

    def _coefficients(
        self, group: Group, states: list[State], hosts: list[Host], lr: float
    ) -> list[tuple[float, float]]:
        """(c_g, c_m) per tensor for its (already counted) step; advances each μ-product on the
        host and, without reading it back, on the device."""
        coefficients = []
        for state, host in zip(states, hosts, strict=True):
            step = host["step"]
            c_g, c_m, mu_product = nadam_coefficients(
                step if isinstance(step, Tensor) else int(step),  # a tensor on the device path
                lr,
                group["betas"][0],
                group["momentum_decay"],
                host["mu_product"],
            )
            if isinstance(mu_product, Tensor):  # the device path: Π lives only on the device
                if mu_product is not host["mu_product"]:
                    state["mu_product"].copy_(mu_product)
            elif mu_product != host["mu_product"]:
                host["mu_product"] = mu_product
                state["mu_product"].fill_(mu_product)
            coefficients.append((c_g, c_m))
        return coefficients

    def _foreach_update(
        self,
        group: Group,
        params: list[Tensor],
        grads: list[Tensor],
        states: list[State],
        hosts: list[Host],
        lr: float,
    ) -> None:
        beta2 = group["betas"][1]
        g = effective_grads(params, grads, group["weight_decay"], group["maximize"])
        m, v = _moments(group, g, states)
        coefficients = self._coefficients(group, states, hosts, lr)
        den = foreach.div(v, [1 - beta2 ** host["step"] for host in hosts])
        foreach.sqrt_(den)
        foreach.add_(den, group["eps"])
        numerator = foreach.mul(g, [c_g for c_g, _ in coefficients])
        foreach.add_(numerator, foreach.mul(m, [c_m for _, c_m in coefficients]))
        foreach.div_(numerator, den)
        foreach.add_(params, numerator, alpha=-1.0)

    def _fast_update(
        self,
        group: Group,
        params: list[Tensor],
        grads: list[Tensor],
        states: list[State],
        hosts: list[Host],
        lr: float,
    ) -> None:
        beta1, beta2 = group["betas"]

        def job(i: int, sign: float) -> dict[str, Any]:
            ((c_g, c_m),) = self._coefficients(group, [states[i]], [hosts[i]], lr)
            return dict(
                p=params[i],
                g=grads[i],
                m=states[i]["exp_avg"],
                v=states[i]["exp_avg_sq"],
                c_g=c_g,
                c_m=c_m,
                beta1=beta1,
                beta2=beta2,
                bias2=1 - beta2 ** hosts[i]["step"],
                eps=group["eps"],
                wd=group["weight_decay"],
                sign=sign,
            )

        self._native_update("nadam", group, params, grads, states, hosts, lr, job)
