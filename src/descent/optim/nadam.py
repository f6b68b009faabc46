"""Nadam: Adam with Nesterov momentum."""

from __future__ import annotations

import ctypes
from collections.abc import Iterable
from operator import itemgetter
from typing import Any, ClassVar, Unpack

import torch
from torch import Tensor

from descent import validate
from descent.optim._compat import foreach
from descent.optim.adam import _AdamBase, _moments, moments_reference
from descent.optim.base import LearningRate, effective_grad, effective_grads
from descent.optim.fastpath import Group, Host, StepArgs
from descent.optim.options import RuleOptions, hyperparameters

_STEP_AND_MU = itemgetter("step", "mu_product")

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

    @staticmethod
    def _coefficients(step: StepArgs) -> list[tuple[float, float]]:
        """(c_g, c_m) per tensor for its (already counted) step; advances each μ-product on the
        host and, without reading it back, on the device. Tensors at the same step with the same
        μ-product (usually all of them) share one computation."""
        coefficients = []
        shared: dict[tuple[float, float], tuple[float, float, float]] = {}
        lr, beta1, momentum_decay = step.lr, step.group["betas"][0], step.group["momentum_decay"]
        for state, host in zip(step.states, step.hosts, strict=True):
            t, previous = host["step"], host["mu_product"]
            if isinstance(t, Tensor):  # the device path: Π lives only on the device
                c_g, c_m, mu_product = nadam_coefficients(t, lr, beta1, momentum_decay, previous)
                if mu_product is not previous:
                    state["mu_product"].copy_(mu_product)
                coefficients.append((c_g, c_m))
                continue
            computed = shared.get((t, previous))
            if computed is None:
                computed = shared[t, previous] = nadam_coefficients(
                    int(t), lr, beta1, momentum_decay, previous
                )
            c_g, c_m, mu_product = computed
            if mu_product != previous:
                host["mu_product"] = mu_product
                state["mu_product"].fill_(mu_product)
            coefficients.append((c_g, c_m))
        return coefficients

    def _foreach_update(self, step: StepArgs) -> None:
        group, params = step.group, step.params
        beta2 = group["betas"][1]
        g = effective_grads(params, step.grads, group["weight_decay"], group["maximize"])
        m, v = _moments(group, g, step.states)
        coefficients = self._coefficients(step)
        den = foreach.div(v, [1 - beta2**t for t in step.all_steps()])
        foreach.sqrt_(den)
        foreach.add_(den, group["eps"])
        numerator = foreach.mul(g, [c_g for c_g, _ in coefficients])
        foreach.add_(numerator, foreach.mul(m, [c_m for _, c_m in coefficients]))
        foreach.div_(numerator, den)
        foreach.add_(params, numerator, alpha=-1.0)

    def _fast_update(self, step: StepArgs) -> None:
        group = step.group
        beta2 = group["betas"][1]
        native, _ = step.native_split()
        c_g: float | list[float] = 0.0
        c_m: float | list[float] = 0.0
        if native:
            coefficients = self._native_coefficients(step, native)
            if coefficients.count(coefficients[0]) == len(coefficients):
                c_g, c_m = coefficients[0]
            else:
                c_g = [pair[0] for pair in coefficients]
                c_m = [pair[1] for pair in coefficients]
        self._native_shared(
            "nadam",
            step,
            {"m": "exp_avg", "v": "exp_avg_sq"},
            dict(
                c_g=c_g,
                c_m=c_m,
                beta1=group["betas"][0],
                beta2=beta2,
                bias2=lambda t: 1 - beta2**t,
                eps=group["eps"],
                wd=group["weight_decay"],
            ),
        )

    def _native_coefficients(self, step: StepArgs, native: list[int]) -> list[tuple[float, float]]:
        """:meth:`_coefficients` of the tensors the C kernel takes. When they share one step
        and one μ-product (every step but the first after tensors joined at different times),
        the new μ-product goes into their state tensors through addresses the step plan keeps:
        a few microseconds for hundreds of tensors, where a ``fill_`` each costs about 0.5 µs."""
        picked = step.subset(native).hosts
        first = picked[0]
        t, previous = first["step"], first["mu_product"]
        keys = list(map(_STEP_AND_MU, picked))
        if keys.count(keys[0]) != len(keys):
            return self._coefficients(step.subset(native))
        group = step.group
        c_g, c_m, mu_product = nadam_coefficients(
            int(t), step.lr, group["betas"][0], group["momentum_decay"], previous
        )
        if mu_product != previous:
            for host in picked:
                host["mu_product"] = mu_product
            column = step.column("mu_product", native)
            cells = self._mu_cells(step, column)
            if cells is None:
                for tensor in column:
                    tensor.fill_(mu_product)
            else:
                for cell in cells:
                    cell.value = mu_product
        return [(c_g, c_m)]

    @staticmethod
    def _mu_cells(step: StepArgs, column: list[Tensor]) -> list[ctypes.c_double] | None:
        """A float64 view (ctypes) of each μ-product tensor in ``column``, kept in the step plan
        while the column is its own; None when one is not a 0-d CPU float64 tensor (replaced by
        hand). The step's counters are written the same way (:mod:`descent.optim._native`)."""
        plan = step.plan
        cached = plan.memo.get("mu_cells") if plan is not None else None
        if cached is not None and cached[0] is column:
            return cached[1]
        if not all(
            tensor.dtype == torch.float64 and tensor.is_cpu and tensor.numel() == 1
            for tensor in column
        ):
            return None
        cells = [ctypes.c_double.from_address(tensor.data_ptr()) for tensor in column]
        if plan is not None:
            plan.memo["mu_cells"] = (column, cells)
        return cells
