"""Adam, AdamW and AMSGrad, and what the Adam family shares (AdaMax and Nadam have their own
modules)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any, Unpack

import torch
from torch import Tensor

from descent import validate
from descent.optim import _compat
from descent.optim._compat import foreach
from descent.optim.base import (
    DescentOptimizer,
    LearningRate,
    effective_grad,
    effective_grads,
    scalar_sqrt,
    validate_betas,
)
from descent.optim.fastpath import Group, State, StepArgs
from descent.optim.options import RuleOptions, hyperparameters

# -- pure reference steps ----------------------------------------------------------------------


def decayed_grad(
    param: Tensor, grad: Tensor, lr: float, weight_decay: float, decoupled: bool, maximize: bool
) -> tuple[Tensor, Tensor]:
    """(θ, g) as the Adam family starts a step: decoupled (AdamW, Loshchilov & Hutter 2019)
    θ ← θ − ηλθ and g = ±g; otherwise θ as it is and g = ±g + λθ (L2)."""
    if decoupled:
        param = param - lr * weight_decay * param
        return param, effective_grad(param, grad, 0.0, maximize)
    return param, effective_grad(param, grad, weight_decay, maximize)


def moments_reference(
    g: Tensor, exp_avg: Tensor, exp_avg_sq: Tensor, beta1: float, beta2: float
) -> tuple[Tensor, Tensor]:
    """Adam's moments (Kingma & Ba 2015): m ← β₁m + (1−β₁)g ; v ← β₂v + (1−β₂)g². Returns (m, v)."""
    return beta1 * exp_avg + (1 - beta1) * g, beta2 * exp_avg_sq + (1 - beta2) * g * g


def adam_reference(
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
    weight_decay: float = 0.0,
    decoupled_weight_decay: bool = False,
    epsilon_hat: bool = False,
    maximize: bool = False,
) -> tuple[Tensor, Tensor, Tensor]:
    """m ← β₁m + (1−β₁)g ; v ← β₂v + (1−β₂)g² ; m̂ = m/(1−β₁ᵗ) ; v̂ = v/(1−β₂ᵗ) ;
    θ ← θ − η m̂/(√v̂ + ε).

    epsilon_hat (Keras/TF):     θ ← θ − η √(1−β₂ᵗ)/(1−β₁ᵗ) · m/(√v + ε).
    decoupled_weight_decay (AdamW): θ ← θ − η λ θ first, and g gets no L2 term.

    Returns (θ, m, v).
    """
    param, g = decayed_grad(param, grad, lr, weight_decay, decoupled_weight_decay, maximize)
    exp_avg, exp_avg_sq = moments_reference(g, exp_avg, exp_avg_sq, beta1, beta2)
    bias1, bias2 = 1 - beta1**step, 1 - beta2**step
    if epsilon_hat:
        update = lr * math.sqrt(bias2) / bias1 * exp_avg / (torch.sqrt(exp_avg_sq) + eps)
    else:
        update = lr * (exp_avg / bias1) / (torch.sqrt(exp_avg_sq / bias2) + eps)
    return param - update, exp_avg, exp_avg_sq


def amsgrad_reference(
    param: Tensor,
    grad: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    max_exp_avg_sq: Tensor,
    *,
    step: int,
    lr: float,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
    bias_correction: bool = False,
    weight_decay: float = 0.0,
    maximize: bool = False,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """m, v as Adam ; v̂ ← max(v̂, v) ; θ ← θ − η m/(√v̂ + ε)   (the lecture's form).

    bias_correction (torch's Adam(amsgrad=True)):  θ ← θ − η/(1−β₁ᵗ) · m/(√(v̂/(1−β₂ᵗ)) + ε).

    Returns (θ, m, v, v̂).
    """
    g = effective_grad(param, grad, weight_decay, maximize)
    exp_avg, exp_avg_sq = moments_reference(g, exp_avg, exp_avg_sq, beta1, beta2)
    max_exp_avg_sq = torch.maximum(max_exp_avg_sq, exp_avg_sq)
    if bias_correction:
        bias1, bias2 = 1 - beta1**step, 1 - beta2**step
        update = lr / bias1 * exp_avg / (torch.sqrt(max_exp_avg_sq) / math.sqrt(bias2) + eps)
    else:
        update = lr * exp_avg / (torch.sqrt(max_exp_avg_sq) + eps)
    return param - update, exp_avg, exp_avg_sq, max_exp_avg_sq


# -- the optimizers ----------------------------------------------------------------------------


def _moments(
    group: Group, g: list[Tensor], states: list[State]
) -> tuple[list[Tensor], list[Tensor]]:
    """m ← β₁m + (1−β₁)g and v ← β₂v + (1−β₂)g² over lists, in the states' ``exp_avg`` and
    ``exp_avg_sq``; returns (m, v)."""
    m = [state["exp_avg"] for state in states]
    v = [state["exp_avg_sq"] for state in states]
    _update_moments(g, m, v, *group["betas"])
    return m, v


def _update_moments(
    g: list[Tensor], m: list[Tensor], v: list[Tensor], beta1: float, beta2: float
) -> None:
    """:func:`moments_reference` over lists, in place."""
    foreach.mul_(m, beta1)
    foreach.add_(m, g, alpha=1 - beta1)
    foreach.mul_(v, beta2)
    foreach.addcmul_(v, g, g, value=1 - beta2)


def decayed_grads(
    params: list[Tensor],
    grads: list[Tensor],
    lr: float,
    weight_decay: float,
    decoupled: bool,
    maximize: bool,
) -> list[Tensor]:
    """:func:`decayed_grad` over lists: the decoupled decay applied to ``params`` in place; returns
    the gradients (new tensors when anything is added)."""
    if decoupled:
        if weight_decay != 0:
            foreach.add_(params, params, alpha=-lr * weight_decay)  # θ ← θ − ηλθ
        return effective_grads(params, grads, 0.0, maximize)
    return effective_grads(params, grads, weight_decay, maximize)


def adam_foreach(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    steps: list[Any],
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    decoupled_weight_decay: bool,
    epsilon_hat: bool = False,
    maximize: bool = False,
) -> None:
    """:func:`adam_reference` over lists of tensors, in place (``steps``: each tensor's t, a
    float or, on the device path, a 0-d tensor). Adam, AdamW and Muon's AdamW part use it."""
    g = decayed_grads(params, grads, lr, weight_decay, decoupled_weight_decay, maximize)
    _update_moments(g, exp_avgs, exp_avg_sqs, beta1, beta2)
    den = foreach.sqrt(exp_avg_sqs)
    if epsilon_hat:
        foreach.add_(den, eps)
        sizes = [-lr * scalar_sqrt(1 - beta2**t) / (1 - beta1**t) for t in steps]
    else:
        foreach.div_(den, [scalar_sqrt(1 - beta2**t) for t in steps])
        foreach.add_(den, eps)
        sizes = [-lr / (1 - beta1**t) for t in steps]
    foreach.addcdiv_(params, exp_avgs, den, sizes)


def validate_moments(group: Group) -> None:
    """The checks of every rule with Adam's two moments: β₁, β₂ in [0, 1) (normalized to a tuple)
    and ε > 0."""
    group["betas"] = validate_betas(group["betas"])
    validate.positive(group["eps"], "eps (ε)")


class _AdamBase(DescentOptimizer):
    state_names = ("exp_avg", "exp_avg_sq")

    def _validate(self, group: Group) -> None:
        super()._validate(group)
        validate_moments(group)


class _FusedAdam(_AdamBase):
    """Adam and AMSGrad: their fast path is torch's fused Adam kernel."""

    def _fused_step(
        self,
        step: StepArgs,
        *,
        kernel_name: str,
        amsgrad: bool,
        reexpression: str | None = None,
        rescaled: Callable[[float], tuple[float, float]] | None = None,
    ) -> None:
        """torch's fused kernel ``kernel_name`` (``_fused_adam_`` or ``_fused_adamw_``) on the
        buckets it takes, the foreach formulation on the rest. A form reached through the kernel's
        internal bias corrections names its ``reexpression`` (its self-test in _compat) and passes
        the kernel ``rescaled(t)`` = (η, ε) for the tensors at step count t."""
        group = step.group
        beta1, beta2 = group["betas"]
        keys = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq" if amsgrad else None, "step")
        buckets, rest = step.fused_buckets()
        for indices in buckets:
            device = step.params[indices[0]].device
            kernel = _compat.fused(kernel_name, device, amsgrad=amsgrad)
            if kernel is None or (reexpression and not _compat.reexpression(reexpression, device)):
                rest += indices
                continue
            if rescaled is None:
                runs = [(indices, (step.lr, group["eps"]))]
            else:
                runs = [(same, rescaled(t)) for t, same in _by_step(step, indices).items()]
            for run, (kernel_lr, eps) in runs:
                kernel(
                    *step.lists(run, *keys),
                    lr=kernel_lr,
                    beta1=beta1,
                    beta2=beta2,
                    weight_decay=group["weight_decay"],
                    eps=eps,
                    amsgrad=amsgrad,
                    maximize=group["maximize"],
                )
        self._foreach_rest(step, rest)


class Adam(_FusedAdam):
    """Adam (Kingma & Ba 2015): momentum on the gradient, RMSprop on its square, both
    bias-corrected.

        m ← β₁m + (1−β₁)g ;  v ← β₂v + (1−β₂)g²
        m̂ = m/(1−β₁ᵗ) ;  v̂ = v/(1−β₂ᵗ)
        θ ← θ − η m̂/(√v̂ + ε)                 η = 0.001, β = (0.9, 0.999), ε = 1e-8

    Peers (docs/optimizers.md): torch.optim.Adam and optax.adam compute exactly this. Keras/TF use
    ``epsilon_hat=True, eps=1e-7``: θ ← θ − η √(1−β₂ᵗ)/(1−β₁ᵗ) · m/(√v + ε), an ε that is
    effectively larger early in training.

    The fast path is torch's fused Adam kernel (ε rescaled per step for ``epsilon_hat``).
    Use :class:`AMSGrad` for the max-of-v variant and :class:`AdamW` for decoupled decay.

    Example:
        >>> opt = Adam(model.parameters(), lr=1e-3)  # doctest: +SKIP
    """

    _decoupled = False
    reference = staticmethod(adam_reference)
    flags = ("epsilon_hat",)

    def __init__(
        self,
        params: Iterable[Any],
        lr: LearningRate = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        *,
        epsilon_hat: bool = False,
        **options: Unpack[RuleOptions],
    ) -> None:
        super().__init__(params, hyperparameters(locals()), **options)

    def _reference_keywords(self, group: Group, param: Tensor) -> dict[str, Any]:
        return {"decoupled_weight_decay": self._decoupled}

    def _foreach_update(self, step: StepArgs) -> None:
        group = step.group
        beta1, beta2 = group["betas"]
        adam_foreach(
            step.params,
            step.grads,
            [state["exp_avg"] for state in step.states],
            [state["exp_avg_sq"] for state in step.states],
            step.all_steps(),
            lr=step.lr,
            beta1=beta1,
            beta2=beta2,
            eps=group["eps"],
            weight_decay=group["weight_decay"],
            decoupled_weight_decay=self._decoupled,
            epsilon_hat=group["epsilon_hat"],
            maximize=group["maximize"],
        )

    def _fast_update(self, step: StepArgs) -> None:
        group, lr = step.group, step.lr
        beta2 = group["betas"][1]
        hat = group["epsilon_hat"]
        self._fused_step(
            step,
            kernel_name="_fused_adamw_" if self._decoupled else "_fused_adam_",
            amsgrad=False,
            reexpression="adam_epsilon_hat" if hat else None,
            # The kernel divides √v by √(1−β₂ᵗ) before adding ε; ε/√(1−β₂ᵗ) undoes that.
            rescaled=(lambda t: (lr, group["eps"] / math.sqrt(1 - beta2**t))) if hat else None,
        )


def _by_step(step: StepArgs, indices: list[int]) -> dict[float, list[int]]:
    """Indices grouped by their (already advanced) step count, for step-dependent scalars."""
    groups: dict[float, list[int]] = {}
    for index, t in zip(indices, step.steps(indices), strict=True):
        groups.setdefault(t, []).append(index)
    return groups


class AdamW(Adam):
    """AdamW (Loshchilov & Hutter 2019): Adam with decoupled weight decay.

        θ ← θ − η λ θ, then the Adam step (with no L2 term in g)      λ = 0.01

    Equals torch.optim.AdamW. Keras' AdamW is the same with its ε-hat form (``epsilon_hat=True``,
    eps=1e-7, weight_decay=0.004). docs/optimizers.md.

    Example:
        >>> opt = AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)  # doctest: +SKIP
    """

    _decoupled = True

    def __init__(
        self,
        params: Iterable[Any],
        lr: LearningRate = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.01,
        *,
        epsilon_hat: bool = False,
        **options: Unpack[RuleOptions],
    ) -> None:
        super().__init__(
            params,
            lr,
            betas,
            eps,
            weight_decay,
            epsilon_hat=epsilon_hat,
            **options,
        )


class AMSGrad(_FusedAdam):
    """AMSGrad (Reddi, Kale & Kumar 2018): Adam whose second moment never decreases.

    Lecture (default):  m, v as Adam ;  v̂ ← max(v̂, v) ;  θ ← θ − η m/(√v̂ + ε)
                        (no bias correction), η = 0.001, β = (0.9, 0.999), ε = 1e-8.

    torch.optim.Adam(amsgrad=True) is ``bias_correction=True``:
        θ ← θ − η/(1−β₁ᵗ) · m/(√(v̂/(1−β₂ᵗ)) + ε).
    Keras' amsgrad is that in its ε-hat form. docs/optimizers.md.

    The fast path is torch's fused AMSGrad kernel; the lecture's form is reached by passing it
    η(1−β₁ᵗ)/√(1−β₂ᵗ) and ε/√(1−β₂ᵗ), which cancel its bias corrections exactly (checked once per
    device type by a self-test; the foreach formulation is used when the check fails).

    Example:
        >>> opt = AMSGrad(model.parameters(), lr=1e-3)  # doctest: +SKIP
    """

    # torch.maximum keeps v̂ for its gradient, and the step then overwrites v̂ in place.
    supports_differentiable = False

    state_names = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    reference = staticmethod(amsgrad_reference)
    flags = ("bias_correction",)

    def __init__(
        self,
        params: Iterable[Any],
        lr: LearningRate = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        *,
        bias_correction: bool = False,
        **options: Unpack[RuleOptions],
    ) -> None:
        super().__init__(params, hyperparameters(locals()), **options)

    def _foreach_update(self, step: StepArgs) -> None:
        group, params, states, lr = step.group, step.params, step.states, step.lr
        beta1, beta2 = group["betas"]
        g = effective_grads(params, step.grads, group["weight_decay"], group["maximize"])
        m, v = _moments(group, g, states)
        v_max = [state["max_exp_avg_sq"] for state in states]
        foreach.maximum_(v_max, v)
        den = foreach.sqrt(v_max)
        steps = step.all_steps()
        if group["bias_correction"]:
            foreach.div_(den, [scalar_sqrt(1 - beta2**t) for t in steps])
            sizes = [-lr / (1 - beta1**t) for t in steps]
        else:
            sizes = [-lr for _ in steps]
        foreach.add_(den, group["eps"])
        foreach.addcdiv_(params, m, den, sizes)

    def _fast_update(self, step: StepArgs) -> None:
        group, lr = step.group, step.lr
        beta1, beta2 = group["betas"]

        def lecture(t: float) -> tuple[float, float]:
            # η(1−β₁ᵗ)/√(1−β₂ᵗ) and ε/√(1−β₂ᵗ) cancel the kernel's bias corrections exactly
            root_bias2 = math.sqrt(1 - beta2**t)
            return lr * (1 - beta1**t) / root_bias2, group["eps"] / root_bias2

        corrected = group["bias_correction"]
        self._fused_step(
            step,
            kernel_name="_fused_adam_",
            amsgrad=True,
            reexpression=None if corrected else "amsgrad_lecture",
            rescaled=None if corrected else lecture,
        )
