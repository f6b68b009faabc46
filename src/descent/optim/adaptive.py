"""Per-coordinate step sizes from accumulated squared gradients: Adagrad and Adadelta (RMSprop,
the third of the family, has its own module)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Unpack

import torch
from torch import Tensor

from descent import validate
from descent.optim import _compat
from descent.optim._compat import foreach
from descent.optim.base import DescentOptimizer, LearningRate, effective_grad, effective_grads
from descent.optim.fastpath import Group, State, StepArgs
from descent.optim.options import RuleOptions, hyperparameters

# -- pure reference steps ----------------------------------------------------------------------


def adagrad_reference(
    param: Tensor,
    grad: Tensor,
    accumulator: Tensor,
    *,
    step: int,
    lr: float,
    eps: float = 1e-8,
    eps_inside_sqrt: bool = True,
    lr_decay: float = 0.0,
    weight_decay: float = 0.0,
    maximize: bool = False,
) -> tuple[Tensor, Tensor]:
    """Adagrad, with S = G + ε when ε is inside the root (S₀ = G₀ + ε), S = G otherwise:

        S ← S + g² ;  ηₜ = η / (1 + (t − 1)·lr_decay)
        θ ← θ − ηₜ g / √S            (eps_inside_sqrt: the lecture's g / √(G + ε))
        θ ← θ − ηₜ g / (√S + ε)      (otherwise, torch's form)

    Returns (θ, S).
    """
    g = effective_grad(param, grad, weight_decay, maximize)
    lr_t = lr / (1 + (step - 1) * lr_decay)
    accumulator = accumulator + g * g
    if eps_inside_sqrt:
        return param - lr_t * g / torch.sqrt(accumulator), accumulator
    return param - lr_t * g / (torch.sqrt(accumulator) + eps), accumulator


def adadelta_reference(
    param: Tensor,
    grad: Tensor,
    square_avg: Tensor,
    acc_delta: Tensor,
    *,
    lr: float,
    rho: float = 0.9,
    eps: float = 1e-6,
    weight_decay: float = 0.0,
    maximize: bool = False,
) -> tuple[Tensor, Tensor, Tensor]:
    """E_g ← ρ E_g + (1−ρ) g² ; Δ = −√(E_Δ + ε)/√(E_g + ε) · g ; E_Δ ← ρ E_Δ + (1−ρ) Δ² ;
    θ ← θ + η Δ.  Returns (θ, E_g, E_Δ)."""
    g = effective_grad(param, grad, weight_decay, maximize)
    square_avg = rho * square_avg + (1 - rho) * g * g
    delta = -torch.sqrt(acc_delta + eps) / torch.sqrt(square_avg + eps) * g
    acc_delta = rho * acc_delta + (1 - rho) * delta * delta
    return param + lr * delta, square_avg, acc_delta


# -- the optimizers ----------------------------------------------------------------------------


class Adagrad(DescentOptimizer):
    """Adagrad (Duchi, Hazan & Singer 2011): a per-coordinate rate that shrinks with the sum of
    squared gradients.

    Lecture (defaults):  G ← G + g² ;  θ ← θ − η g / √(G + ε),   η = 0.01, ε = 1e-8, G₀ = 0.

    The accumulator kept in ``state["sum"]`` is S = G + ε when ε is inside the root (S₀ = G₀ + ε):
    √(G + ε) is then √S, and the step is torch's fused Adagrad kernel with its ε set to 0.

    Peers (docs/optimizers.md):
        torch.optim.Adagrad:  eps=1e-10, eps_inside_sqrt=False (g / (√G + ε)), lr_decay as torch.
        Keras / optax:        initial_accumulator_value=0.1, eps=1e-7 (inside the root).

    Args:
        lr: η (float ≥ 0 or schedule).  eps: ε > 0.  initial_accumulator_value: G₀ ≥ 0.
        eps_inside_sqrt: √(G + ε) (True) or √G + ε (False).
        lr_decay: torch's ηₜ = η / (1 + (t − 1)·lr_decay).
        weight_decay: L2 λ.  maximize: ascend.  impl: "fast" or "reference".
        state_dtype: dtype of S (default: float32 for bfloat16/float16 parameters).

    Example:
        >>> opt = Adagrad(model.parameters(), lr=0.01)  # doctest: +SKIP
    """

    state_names = ("sum",)  # started at G₀ (+ ε), not zero: see _init_state
    reference = staticmethod(adagrad_reference)
    flags = ("eps_inside_sqrt",)

    def __init__(
        self,
        params: Iterable[Any],
        lr: LearningRate = 0.01,
        eps: float = 1e-8,
        initial_accumulator_value: float = 0.0,
        weight_decay: float = 0.0,
        *,
        eps_inside_sqrt: bool = True,
        lr_decay: float = 0.0,
        **options: Unpack[RuleOptions],
    ) -> None:
        super().__init__(params, hyperparameters(locals()), **options)

    def _validate(self, group: Group) -> None:
        super()._validate(group)
        validate.positive(group["eps"], "eps (ε)")
        validate.nonnegative(group["initial_accumulator_value"], "initial_accumulator_value (G₀)")
        validate.nonnegative(group["lr_decay"], "lr_decay")

    def _init_state(self, param: Tensor, group: Group) -> State:
        state = super()._init_state(param, group)
        start = group["initial_accumulator_value"]
        if group["eps_inside_sqrt"]:
            start += group["eps"]
        state["sum"].fill_(start)
        return state

    def _foreach_update(self, step: StepArgs) -> None:
        group, params, grads, states, lr = step.group, step.params, step.grads, step.states, step.lr
        g = effective_grads(params, grads, group["weight_decay"], group["maximize"])
        sums = [state["sum"] for state in states]
        foreach.addcmul_(sums, g, g, value=1.0)
        den = foreach.sqrt(sums)
        if not group["eps_inside_sqrt"]:
            foreach.add_(den, group["eps"])
        rates = [-lr / (1 + (t - 1) * group["lr_decay"]) for t in step.all_steps()]
        foreach.addcdiv_(params, g, den, rates)

    def _fast_update(self, step: StepArgs) -> None:
        group = step.group
        buckets, rest = step.fused_buckets()
        for indices in buckets:
            kernel = _compat.fused("_fused_adagrad_", step.params[indices[0]].device)
            if kernel is None:
                rest += indices
                continue
            kernel(
                *step.lists(indices, "sum", "step"),
                lr=step.lr,
                lr_decay=group["lr_decay"],
                weight_decay=group["weight_decay"],
                eps=0.0 if group["eps_inside_sqrt"] else group["eps"],
                maximize=group["maximize"],
            )
        self._foreach_rest(step, rest)


class Adadelta(DescentOptimizer):
    """Adadelta (Zeiler 2012): the step's units from a running average of past updates.

        E_g ← ρ E_g + (1−ρ) g²
        Δ   = −√(E_Δ + ε) / √(E_g + ε) · g
        E_Δ ← ρ E_Δ + (1−ρ) Δ²
        θ   ← θ + η Δ                       η = 1.0, ρ = 0.9, ε = 1e-6

    Same update in torch and Keras; only the default η differs (torch 1.0, Keras 0.001).
    State names follow torch (``square_avg`` = E_g, ``acc_delta`` = E_Δ). docs/optimizers.md.

    Example:
        >>> opt = Adadelta(model.parameters())  # doctest: +SKIP
    """

    state_names = ("square_avg", "acc_delta")
    reference = staticmethod(adadelta_reference)

    def __init__(
        self,
        params: Iterable[Any],
        lr: LearningRate = 1.0,
        rho: float = 0.9,
        eps: float = 1e-6,
        weight_decay: float = 0.0,
        **options: Unpack[RuleOptions],
    ) -> None:
        super().__init__(params, hyperparameters(locals()), **options)

    def _validate(self, group: Group) -> None:
        super()._validate(group)
        validate.unit_interval(group["rho"], "rho (ρ)")
        validate.positive(group["eps"], "eps (ε)")

    def _foreach_update(self, step: StepArgs) -> None:
        group, params, grads, states, lr = step.group, step.params, step.grads, step.states, step.lr
        rho, eps = group["rho"], group["eps"]
        g = effective_grads(params, grads, group["weight_decay"], group["maximize"])
        e_g = [state["square_avg"] for state in states]
        e_d = [state["acc_delta"] for state in states]
        foreach.mul_(e_g, rho)
        foreach.addcmul_(e_g, g, g, value=1 - rho)
        minus_delta = foreach.add(e_d, eps)  # becomes −Δ = √(E_Δ + ε) / √(E_g + ε) · g
        foreach.sqrt_(minus_delta)
        den = foreach.add(e_g, eps)
        foreach.sqrt_(den)
        foreach.div_(minus_delta, den)
        foreach.mul_(minus_delta, g)
        foreach.mul_(e_d, rho)
        foreach.addcmul_(e_d, minus_delta, minus_delta, value=1 - rho)
        foreach.add_(params, minus_delta, alpha=-lr)

    def _fast_update(self, step: StepArgs) -> None:
        group, lr = step.group, step.lr
        self._native_shared(
            "adadelta",
            step,
            {"eg": "square_avg", "ed": "acc_delta"},
            dict(lr=lr, rho=group["rho"], eps=group["eps"], wd=group["weight_decay"]),
        )
