"""The Adam family: Adam, AdamW, AMSGrad, AdaMax, Nadam."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from descent.optim import _native
from descent.optim.base import (
    DescentOptimizer,
    Impl,
    LearningRate,
    by_step,
    check_betas,
    check_flag,
    check_nonnegative,
    check_positive,
    chunk_views,
    effective_grad,
    effective_grad_into,
    fit,
    fused_buckets,
    native_split,
    pick,
    scratch_for,
    zeros_like_state,
)

Group = dict[str, Any]
State = dict[str, Any]

# -- pure reference steps ----------------------------------------------------------------------


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
    if decoupled_weight_decay:
        param = param - lr * weight_decay * param
        g = effective_grad(param, grad, 0.0, maximize)
    else:
        g = effective_grad(param, grad, weight_decay, maximize)
    exp_avg = beta1 * exp_avg + (1 - beta1) * g
    exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * g * g
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
    exp_avg = beta1 * exp_avg + (1 - beta1) * g
    exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * g * g
    max_exp_avg_sq = torch.maximum(max_exp_avg_sq, exp_avg_sq)
    if bias_correction:
        bias1, bias2 = 1 - beta1**step, 1 - beta2**step
        update = lr / bias1 * exp_avg / (torch.sqrt(max_exp_avg_sq) / math.sqrt(bias2) + eps)
    else:
        update = lr * exp_avg / (torch.sqrt(max_exp_avg_sq) + eps)
    return param - update, exp_avg, exp_avg_sq, max_exp_avg_sq


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
    exp_avg = beta1 * exp_avg + (1 - beta1) * g
    exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * g * g
    v_hat = exp_avg_sq / (1 - beta2**step)
    c_g, c_m, mu_product = nadam_coefficients(step, lr, beta1, momentum_decay, mu_product)
    update = (c_g * g + c_m * exp_avg) / (torch.sqrt(v_hat) + eps)
    return param - update, exp_avg, exp_avg_sq, mu_product


# -- the optimizers ----------------------------------------------------------------------------


class _AdamBase(DescentOptimizer):
    def _validate(self, group: Group) -> None:
        super()._validate(group)
        check_betas(group["betas"])
        check_positive(group["eps"], "eps (ε)")

    def _init_state(self, param: Tensor, group: Group) -> State:
        return zeros_like_state(param, self.state_names)


class Adam(_AdamBase):
    """Adam: momentum on the gradient, RMSprop on its square, both bias-corrected.

        m ← β₁m + (1−β₁)g ;  v ← β₂v + (1−β₂)g²
        m̂ = m/(1−β₁ᵗ) ;  v̂ = v/(1−β₂ᵗ)
        θ ← θ − η m̂/(√v̂ + ε)                 η = 0.001, β = (0.9, 0.999), ε = 1e-8

    Peers: torch.optim.Adam and optax.adam compute exactly this. Keras/TF use
    ``epsilon_hat=True, eps=1e-7``: θ ← θ − η √(1−β₂ᵗ)/(1−β₁ᵗ) · m/(√v + ε), an ε that is
    effectively larger early in training.

    The fast path is torch's fused Adam kernel (ε rescaled per step for ``epsilon_hat``).
    Use :class:`AMSGrad` for the max-of-v variant and :class:`AdamW` for decoupled decay.
    """

    state_names = ("exp_avg", "exp_avg_sq")
    _decoupled = False

    def __init__(
        self,
        params: Iterable[Any],
        lr: LearningRate = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        *,
        epsilon_hat: bool = False,
        maximize: bool = False,
        impl: Impl = "fast",
        **unknown: Any,
    ) -> None:
        self._reject_unknown(unknown)
        super().__init__(
            params,
            dict(
                lr=lr,
                betas=tuple(betas) if isinstance(betas, list) else betas,
                eps=eps,
                weight_decay=weight_decay,
                epsilon_hat=epsilon_hat,
                maximize=maximize,
                impl=impl,
            ),
        )

    def _validate(self, group: Group) -> None:
        super()._validate(group)
        check_flag(group["epsilon_hat"], "epsilon_hat")

    def _reference_update(
        self, group: Group, param: Tensor, grad: Tensor, state: State, lr: float
    ) -> None:
        state["step"] += 1
        beta1, beta2 = group["betas"]
        new = adam_reference(
            param,
            grad,
            state["exp_avg"],
            state["exp_avg_sq"],
            step=int(state["step"].item()),
            lr=lr,
            beta1=beta1,
            beta2=beta2,
            eps=group["eps"],
            weight_decay=group["weight_decay"],
            decoupled_weight_decay=self._decoupled,
            epsilon_hat=group["epsilon_hat"],
            maximize=group["maximize"],
        )
        for target, value in zip((param, state["exp_avg"], state["exp_avg_sq"]), new, strict=True):
            target.copy_(value)

    def _fast_update(
        self,
        group: Group,
        params: list[Tensor],
        grads: list[Tensor],
        states: list[State],
        lr: float,
    ) -> None:
        beta1, beta2 = group["betas"]
        kernel = torch._fused_adamw_ if self._decoupled else torch._fused_adam_
        buckets, rest = fused_buckets(params, grads)
        for indices in buckets:
            steps = [states[i]["step"] for i in indices]
            torch._foreach_add_(steps, 1)
            if group["epsilon_hat"]:
                # The kernel divides √v by √(1−β₂ᵗ) before adding ε; ε/√(1−β₂ᵗ) undoes that.
                runs = [
                    (same, group["eps"] / math.sqrt(1 - beta2**t))
                    for t, same in by_step(states, indices).items()
                ]
            else:
                runs = [(indices, group["eps"])]
            for run, eps in runs:
                kernel(
                    pick(params, run),
                    pick(grads, run),
                    [states[i]["exp_avg"] for i in run],
                    [states[i]["exp_avg_sq"] for i in run],
                    [],
                    [states[i]["step"] for i in run],
                    lr=lr,
                    beta1=beta1,
                    beta2=beta2,
                    weight_decay=group["weight_decay"],
                    eps=eps,
                    amsgrad=False,
                    maximize=group["maximize"],
                )
        for i in rest:
            self._reference_update(group, params[i], grads[i], states[i], lr)


class AdamW(Adam):
    """AdamW: Adam with decoupled weight decay (Loshchilov & Hutter).

        θ ← θ − η λ θ, then the Adam step (with no L2 term in g)      λ = 0.01

    Equals torch.optim.AdamW. Keras' AdamW is the same with its ε-hat form (``epsilon_hat=True``,
    eps=1e-7, weight_decay=0.004).
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
        maximize: bool = False,
        impl: Impl = "fast",
        **unknown: Any,
    ) -> None:
        super().__init__(
            params,
            lr,
            betas,
            eps,
            weight_decay,
            epsilon_hat=epsilon_hat,
            maximize=maximize,
            impl=impl,
            **unknown,
        )


class AMSGrad(_AdamBase):
    """AMSGrad: Adam whose second moment never decreases.

    Lecture (default):  m, v as Adam ;  v̂ ← max(v̂, v) ;  θ ← θ − η m/(√v̂ + ε)
                        (no bias correction), η = 0.001, β = (0.9, 0.999), ε = 1e-8.

    torch.optim.Adam(amsgrad=True) is ``bias_correction=True``:
        θ ← θ − η/(1−β₁ᵗ) · m/(√(v̂/(1−β₂ᵗ)) + ε).
    Keras' amsgrad is that in its ε-hat form.

    The fast path is torch's fused AMSGrad kernel; the lecture's form is reached by passing it
    η(1−β₁ᵗ)/√(1−β₂ᵗ) and ε/√(1−β₂ᵗ), which cancel its bias corrections exactly.
    """

    state_names = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")

    def __init__(
        self,
        params: Iterable[Any],
        lr: LearningRate = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        *,
        bias_correction: bool = False,
        maximize: bool = False,
        impl: Impl = "fast",
        **unknown: Any,
    ) -> None:
        self._reject_unknown(unknown)
        super().__init__(
            params,
            dict(
                lr=lr,
                betas=tuple(betas) if isinstance(betas, list) else betas,
                eps=eps,
                weight_decay=weight_decay,
                bias_correction=bias_correction,
                maximize=maximize,
                impl=impl,
            ),
        )

    def _validate(self, group: Group) -> None:
        super()._validate(group)
        check_flag(group["bias_correction"], "bias_correction")

    def _reference_update(
        self, group: Group, param: Tensor, grad: Tensor, state: State, lr: float
    ) -> None:
        state["step"] += 1
        beta1, beta2 = group["betas"]
        new = amsgrad_reference(
            param,
            grad,
            state["exp_avg"],
            state["exp_avg_sq"],
            state["max_exp_avg_sq"],
            step=int(state["step"].item()),
            lr=lr,
            beta1=beta1,
            beta2=beta2,
            eps=group["eps"],
            bias_correction=group["bias_correction"],
            weight_decay=group["weight_decay"],
            maximize=group["maximize"],
        )
        targets = (param, state["exp_avg"], state["exp_avg_sq"], state["max_exp_avg_sq"])
        for target, value in zip(targets, new, strict=True):
            target.copy_(value)

    def _fast_update(
        self,
        group: Group,
        params: list[Tensor],
        grads: list[Tensor],
        states: list[State],
        lr: float,
    ) -> None:
        beta1, beta2 = group["betas"]
        buckets, rest = fused_buckets(params, grads)
        for indices in buckets:
            steps = [states[i]["step"] for i in indices]
            torch._foreach_add_(steps, 1)
            if group["bias_correction"]:
                runs = [(indices, lr, group["eps"])]
            else:
                runs = []
                for t, same in by_step(states, indices).items():
                    root_bias2 = math.sqrt(1 - beta2**t)
                    runs.append((same, lr * (1 - beta1**t) / root_bias2, group["eps"] / root_bias2))
            for run, kernel_lr, eps in runs:
                torch._fused_adam_(
                    pick(params, run),
                    pick(grads, run),
                    [states[i]["exp_avg"] for i in run],
                    [states[i]["exp_avg_sq"] for i in run],
                    [states[i]["max_exp_avg_sq"] for i in run],
                    [states[i]["step"] for i in run],
                    lr=kernel_lr,
                    beta1=beta1,
                    beta2=beta2,
                    weight_decay=group["weight_decay"],
                    eps=eps,
                    amsgrad=True,
                    maximize=group["maximize"],
                )
        for i in rest:
            self._reference_update(group, params[i], grads[i], states[i], lr)


class AdaMax(_AdamBase):
    """AdaMax: Adam with the infinity norm in place of the second moment.

        m ← β₁m + (1−β₁)g ;  u ← max(β₂u, |g|)
        θ ← θ − η/(1−β₁ᵗ) · m/(u + ε)          η = 0.002, β = (0.9, 0.999), ε = 1e-8

    Peers: Keras adds ε to u in the denominator, as here. torch.optim.Adamax puts ε inside the max
    (``eps_in_max=True``): u ← max(β₂u, |g| + ε) ; θ ← θ − η/(1−β₁ᵗ) · m/u.

    State names follow torch (``exp_avg`` = m, ``exp_inf`` = u).
    """

    state_names = ("exp_avg", "exp_inf")

    def __init__(
        self,
        params: Iterable[Any],
        lr: LearningRate = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        *,
        eps_in_max: bool = False,
        maximize: bool = False,
        impl: Impl = "fast",
        **unknown: Any,
    ) -> None:
        self._reject_unknown(unknown)
        super().__init__(
            params,
            dict(
                lr=lr,
                betas=tuple(betas) if isinstance(betas, list) else betas,
                eps=eps,
                weight_decay=weight_decay,
                eps_in_max=eps_in_max,
                maximize=maximize,
                impl=impl,
            ),
        )

    def _validate(self, group: Group) -> None:
        super()._validate(group)
        check_flag(group["eps_in_max"], "eps_in_max")

    def _reference_update(
        self, group: Group, param: Tensor, grad: Tensor, state: State, lr: float
    ) -> None:
        state["step"] += 1
        beta1, beta2 = group["betas"]
        new = adamax_reference(
            param,
            grad,
            state["exp_avg"],
            state["exp_inf"],
            step=int(state["step"].item()),
            lr=lr,
            beta1=beta1,
            beta2=beta2,
            eps=group["eps"],
            eps_in_max=group["eps_in_max"],
            weight_decay=group["weight_decay"],
            maximize=group["maximize"],
        )
        for target, value in zip((param, state["exp_avg"], state["exp_inf"]), new, strict=True):
            target.copy_(value)

    def _fast_update(
        self,
        group: Group,
        params: list[Tensor],
        grads: list[Tensor],
        states: list[State],
        lr: float,
    ) -> None:
        beta1, beta2 = group["betas"]
        eps, eps_in_max = group["eps"], group["eps_in_max"]
        wd, maximize = group["weight_decay"], group["maximize"]
        native, rest = native_split(params, grads)
        step_sizes = []
        for state in states:
            state["step"] += 1
            step_sizes.append(lr / (1 - beta1 ** int(state["step"].item())))
        sign = -1.0 if maximize else 1.0
        _native.run(
            "adamax",
            [
                (
                    (params[i], grads[i], states[i]["exp_avg"], states[i]["exp_inf"]),
                    (step_sizes[i], beta1, beta2, eps, wd, sign, eps_in_max),
                )
                for i in native
            ],
        )
        g_buf, abs_buf = scratch_for(pick(params, rest), 2)
        for i in rest:
            param, grad, state, step_size = params[i], grads[i], states[i], step_sizes[i]
            for p, g, m, u in chunk_views([param, grad, state["exp_avg"], state["exp_inf"]]):
                g = effective_grad_into(fit(g_buf, g), p, g, wd, maximize)
                m.mul_(beta1).add_(g, alpha=1 - beta1)
                magnitude = torch.abs(g, out=fit(abs_buf, g))
                if eps_in_max:
                    magnitude.add_(eps)
                torch.maximum(u.mul_(beta2), magnitude, out=u)
                if eps_in_max:
                    p.addcdiv_(m, u, value=-step_size)
                else:
                    p.addcdiv_(m, torch.add(u, eps, out=magnitude), value=-step_size)


class Nadam(_AdamBase):
    """Nadam: Adam with Nesterov momentum (Dozat).

    Lecture (default, constant β₁ as in optax):
        m, v, m̂, v̂ as Adam
        θ ← θ − η (β₁m̂ + (1−β₁)g/(1−β₁ᵗ)) / (√v̂ + ε)     η = 0.001, β = (0.9, 0.999), ε = 1e-8

    torch.optim.NAdam (``momentum_decay=0.004``, lr=0.002) uses the momentum schedule
    μₜ = β₁(1 − ½·0.96^(ψt)) with Πₜ = Π μᵢ:
        θ ← θ − η(1−μₜ)/(1−Πₜ) · g/(√v̂ + ε) − η μₜ₊₁/(1−Πₜμₜ₊₁) · m/(√v̂ + ε)
    Keras 3's Nadam uses the same schedule with its own ψ; set ``momentum_decay`` accordingly.
    """

    state_names = ("exp_avg", "exp_avg_sq")

    def __init__(
        self,
        params: Iterable[Any],
        lr: LearningRate = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        *,
        momentum_decay: float | None = None,
        maximize: bool = False,
        impl: Impl = "fast",
        **unknown: Any,
    ) -> None:
        self._reject_unknown(unknown)
        super().__init__(
            params,
            dict(
                lr=lr,
                betas=tuple(betas) if isinstance(betas, list) else betas,
                eps=eps,
                weight_decay=weight_decay,
                momentum_decay=momentum_decay,
                maximize=maximize,
                impl=impl,
            ),
        )

    def _validate(self, group: Group) -> None:
        super()._validate(group)
        if group["momentum_decay"] is not None:
            check_nonnegative(group["momentum_decay"], "momentum_decay (ψ)")

    def _init_state(self, param: Tensor, group: Group) -> State:
        state = super()._init_state(param, group)
        state["mu_product"] = torch.tensor(1.0, dtype=torch.float64)
        return state

    def _coefficients(self, group: Group, state: State, lr: float) -> tuple[float, float]:
        """c_g, c_m for the state's (already counted) step; advances the μ-product."""
        c_g, c_m, mu_product = nadam_coefficients(
            int(state["step"].item()),
            lr,
            group["betas"][0],
            group["momentum_decay"],
            float(state["mu_product"]),
        )
        state["mu_product"].fill_(mu_product)
        return c_g, c_m

    def _reference_update(
        self, group: Group, param: Tensor, grad: Tensor, state: State, lr: float
    ) -> None:
        state["step"] += 1
        beta1, beta2 = group["betas"]
        new_param, new_m, new_v, mu_product = nadam_reference(
            param,
            grad,
            state["exp_avg"],
            state["exp_avg_sq"],
            step=int(state["step"].item()),
            lr=lr,
            beta1=beta1,
            beta2=beta2,
            eps=group["eps"],
            momentum_decay=group["momentum_decay"],
            mu_product=float(state["mu_product"]),
            weight_decay=group["weight_decay"],
            maximize=group["maximize"],
        )
        param.copy_(new_param)
        state["exp_avg"].copy_(new_m)
        state["exp_avg_sq"].copy_(new_v)
        state["mu_product"].fill_(mu_product)

    def _fast_update(
        self,
        group: Group,
        params: list[Tensor],
        grads: list[Tensor],
        states: list[State],
        lr: float,
    ) -> None:
        beta1, beta2 = group["betas"]
        eps, wd, maximize = group["eps"], group["weight_decay"], group["maximize"]
        native, rest = native_split(params, grads)
        for state in states:
            state["step"] += 1
        coefficients = [self._coefficients(group, state, lr) for state in states]
        biases2 = [1 - beta2 ** int(state["step"].item()) for state in states]
        sign = -1.0 if maximize else 1.0
        _native.run(
            "nadam",
            [
                (
                    (params[i], grads[i], states[i]["exp_avg"], states[i]["exp_avg_sq"]),
                    (*coefficients[i], beta1, beta2, biases2[i], eps, wd, sign),
                )
                for i in native
            ],
        )
        g_buf, den_buf, num_buf = scratch_for(pick(params, rest), 3)
        for i in rest:
            param, grad, state = params[i], grads[i], states[i]
            (c_g, c_m), bias2 = coefficients[i], biases2[i]
            for p, g, m, v in chunk_views([param, grad, state["exp_avg"], state["exp_avg_sq"]]):
                g = effective_grad_into(fit(g_buf, g), p, g, wd, maximize)
                m.mul_(beta1).add_(g, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                den = torch.div(v, bias2, out=fit(den_buf, v)).sqrt_().add_(eps)
                numerator = torch.mul(g, c_g, out=fit(num_buf, g)).add_(m, alpha=c_m)
                p.sub_(numerator.div_(den))
