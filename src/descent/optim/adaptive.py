"""Per-coordinate step sizes from accumulated squared gradients: Adagrad, Adadelta, RMSprop."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from descent.optim import _native
from descent.optim.base import (
    DescentOptimizer,
    Impl,
    LearningRate,
    check_flag,
    check_nonnegative,
    check_positive,
    check_unit_interval,
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


def rmsprop_reference(
    param: Tensor,
    grad: Tensor,
    square_avg: Tensor,
    grad_avg: Tensor,
    momentum_buffer: Tensor,
    *,
    lr: float,
    rho: float = 0.9,
    eps: float = 1e-8,
    eps_inside_sqrt: bool = True,
    momentum: float = 0.0,
    centered: bool = False,
    weight_decay: float = 0.0,
    maximize: bool = False,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """E ← ρ E + (1−ρ) g² ; θ ← θ − η g / √(E + ε)   (the lecture's form)

    centered:  Ē ← ρ Ē + (1−ρ) g and E − Ē² replaces E under the root.
    eps_inside_sqrt=False: √(·) + ε instead of √(· + ε) (torch's form).
    momentum μ > 0:  b ← μ b + g / denominator ; θ ← θ − η b (torch's form).

    Returns (θ, E, Ē, b).
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


# -- the optimizers ----------------------------------------------------------------------------


class Adagrad(DescentOptimizer):
    """Adagrad: a per-coordinate rate that shrinks with the sum of squared gradients.

    Lecture (defaults):  G ← G + g² ;  θ ← θ − η g / √(G + ε),   η = 0.01, ε = 1e-8, G₀ = 0.

    The accumulator kept in ``state["sum"]`` is S = G + ε when ε is inside the root (S₀ = G₀ + ε):
    √(G + ε) is then √S, and the step is torch's fused Adagrad kernel with its ε set to 0.

    Peers:
        torch.optim.Adagrad:  eps=1e-10, eps_inside_sqrt=False (g / (√G + ε)), lr_decay as torch.
        Keras / optax:        initial_accumulator_value=0.1, eps=1e-7 (inside the root).

    Args:
        lr: η (float ≥ 0 or schedule).  eps: ε > 0.  initial_accumulator_value: G₀ ≥ 0.
        eps_inside_sqrt: √(G + ε) (True) or √G + ε (False).
        lr_decay: torch's ηₜ = η / (1 + (t − 1)·lr_decay).
        weight_decay: L2 λ.  maximize: ascend.  impl: "fast" or "reference".
    """

    state_names = ("sum",)

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
        maximize: bool = False,
        impl: Impl = "fast",
        **unknown: Any,
    ) -> None:
        self._reject_unknown(unknown)
        super().__init__(
            params,
            dict(
                lr=lr,
                eps=eps,
                initial_accumulator_value=initial_accumulator_value,
                weight_decay=weight_decay,
                eps_inside_sqrt=eps_inside_sqrt,
                lr_decay=lr_decay,
                maximize=maximize,
                impl=impl,
            ),
        )

    def _validate(self, group: Group) -> None:
        super()._validate(group)
        check_positive(group["eps"], "eps (ε)")
        check_nonnegative(group["initial_accumulator_value"], "initial_accumulator_value (G₀)")
        check_nonnegative(group["lr_decay"], "lr_decay")
        check_flag(group["eps_inside_sqrt"], "eps_inside_sqrt")

    def _init_state(self, param: Tensor, group: Group) -> State:
        state = zeros_like_state(param, self.state_names)
        start = group["initial_accumulator_value"]
        if group["eps_inside_sqrt"]:
            start += group["eps"]
        state["sum"].fill_(start)
        return state

    def _reference_update(
        self, group: Group, param: Tensor, grad: Tensor, state: State, lr: float
    ) -> None:
        state["step"] += 1
        new_param, new_sum = adagrad_reference(
            param,
            grad,
            state["sum"],
            step=int(state["step"].item()),
            lr=lr,
            eps=group["eps"],
            eps_inside_sqrt=group["eps_inside_sqrt"],
            lr_decay=group["lr_decay"],
            weight_decay=group["weight_decay"],
            maximize=group["maximize"],
        )
        param.copy_(new_param)
        state["sum"].copy_(new_sum)

    def _fast_update(
        self,
        group: Group,
        params: list[Tensor],
        grads: list[Tensor],
        states: list[State],
        lr: float,
    ) -> None:
        buckets, rest = fused_buckets(params, grads)
        for indices in buckets:
            steps = [states[i]["step"] for i in indices]
            torch._foreach_add_(steps, 1)
            torch._fused_adagrad_(
                pick(params, indices),
                pick(grads, indices),
                [states[i]["sum"] for i in indices],
                steps,
                lr=lr,
                lr_decay=group["lr_decay"],
                weight_decay=group["weight_decay"],
                eps=0.0 if group["eps_inside_sqrt"] else group["eps"],
                maximize=group["maximize"],
            )
        for i in rest:
            self._reference_update(group, params[i], grads[i], states[i], lr)


class Adadelta(DescentOptimizer):
    """Adadelta: the step's units from a running average of past updates.

        E_g ← ρ E_g + (1−ρ) g²
        Δ   = −√(E_Δ + ε) / √(E_g + ε) · g
        E_Δ ← ρ E_Δ + (1−ρ) Δ²
        θ   ← θ + η Δ                       η = 1.0, ρ = 0.9, ε = 1e-6

    Same update in torch and Keras; only the default η differs (torch 1.0, Keras 0.001).
    State names follow torch (``square_avg`` = E_g, ``acc_delta`` = E_Δ).
    """

    state_names = ("square_avg", "acc_delta")

    def __init__(
        self,
        params: Iterable[Any],
        lr: LearningRate = 1.0,
        rho: float = 0.9,
        eps: float = 1e-6,
        weight_decay: float = 0.0,
        *,
        maximize: bool = False,
        impl: Impl = "fast",
        **unknown: Any,
    ) -> None:
        self._reject_unknown(unknown)
        super().__init__(
            params,
            dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize, impl=impl),
        )

    def _validate(self, group: Group) -> None:
        super()._validate(group)
        check_unit_interval(group["rho"], "rho (ρ)")
        check_positive(group["eps"], "eps (ε)")

    def _init_state(self, param: Tensor, group: Group) -> State:
        return zeros_like_state(param, self.state_names)

    def _reference_update(
        self, group: Group, param: Tensor, grad: Tensor, state: State, lr: float
    ) -> None:
        state["step"] += 1
        new = adadelta_reference(
            param,
            grad,
            state["square_avg"],
            state["acc_delta"],
            lr=lr,
            rho=group["rho"],
            eps=group["eps"],
            weight_decay=group["weight_decay"],
            maximize=group["maximize"],
        )
        for target, value in zip(
            (param, state["square_avg"], state["acc_delta"]), new, strict=True
        ):
            target.copy_(value)

    def _fast_update(
        self,
        group: Group,
        params: list[Tensor],
        grads: list[Tensor],
        states: list[State],
        lr: float,
    ) -> None:
        rho, eps = group["rho"], group["eps"]
        wd, maximize = group["weight_decay"], group["maximize"]
        native, rest = native_split(params, grads)
        for state in states:
            state["step"] += 1
        sign = -1.0 if maximize else 1.0
        _native.run(
            "adadelta",
            [
                (
                    (params[i], grads[i], states[i]["square_avg"], states[i]["acc_delta"]),
                    (lr, rho, eps, wd, sign),
                )
                for i in native
            ],
        )
        g_buf, num_buf, den_buf = scratch_for(pick(params, rest), 3)
        for param, grad, state in zip(
            pick(params, rest), pick(grads, rest), pick(states, rest), strict=True
        ):
            for p, g, e_g, e_d in chunk_views(
                [param, grad, state["square_avg"], state["acc_delta"]]
            ):
                g = effective_grad_into(fit(g_buf, g), p, g, wd, maximize)
                e_g.mul_(rho).addcmul_(g, g, value=1 - rho)
                step = torch.add(e_d, eps, out=fit(num_buf, e_d)).sqrt_()
                step.div_(torch.add(e_g, eps, out=fit(den_buf, e_g)).sqrt_()).mul_(g)  # −Δ
                e_d.mul_(rho).addcmul_(step, step, value=1 - rho)
                p.add_(step, alpha=-lr)


class RMSprop(DescentOptimizer):
    """RMSprop: Adagrad with a decaying average instead of a sum.

    Lecture (defaults):  E ← ρ E + (1−ρ) g² ;  θ ← θ − η g / √(E + ε),
                         η = 0.001, ρ = 0.9, ε = 1e-8.

    Options (torch's): ``centered`` (E − Ē² under the root, Ē ← ρĒ + (1−ρ)g) and ``momentum``
    μ > 0 (b ← μ b + g / denominator ; θ ← θ − η b).

    Peers:
        torch.optim.RMSprop:  rho=0.99 (torch calls it alpha), eps_inside_sqrt=False (√E + ε).
        Keras:                rho=0.9, eps=1e-7 (inside the root).
        optax.rmsprop:        decay=ρ, eps_in_sqrt=True is this default.
    """

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
        maximize: bool = False,
        impl: Impl = "fast",
        **unknown: Any,
    ) -> None:
        self._reject_unknown(unknown)
        super().__init__(
            params,
            dict(
                lr=lr,
                rho=rho,
                eps=eps,
                weight_decay=weight_decay,
                momentum=momentum,
                centered=centered,
                eps_inside_sqrt=eps_inside_sqrt,
                maximize=maximize,
                impl=impl,
            ),
        )

    def _validate(self, group: Group) -> None:
        super()._validate(group)
        check_unit_interval(group["rho"], "rho (ρ)")
        check_positive(group["eps"], "eps (ε)")
        check_unit_interval(group["momentum"], "momentum (μ)")
        check_flag(group["centered"], "centered")
        check_flag(group["eps_inside_sqrt"], "eps_inside_sqrt")

    def _init_state(self, param: Tensor, group: Group) -> State:
        # Ē and b take memory only when centering or momentum asks for them.
        names = ["square_avg"]
        if group["centered"]:
            names.append("grad_avg")
        if group["momentum"] > 0:
            names.append("momentum_buffer")
        return zeros_like_state(param, names)

    def _reference_update(
        self, group: Group, param: Tensor, grad: Tensor, state: State, lr: float
    ) -> None:
        state["step"] += 1
        unused = param.new_zeros(())
        new = rmsprop_reference(
            param,
            grad,
            state["square_avg"],
            state.get("grad_avg", unused),
            state.get("momentum_buffer", unused),
            lr=lr,
            rho=group["rho"],
            eps=group["eps"],
            eps_inside_sqrt=group["eps_inside_sqrt"],
            momentum=group["momentum"],
            centered=group["centered"],
            weight_decay=group["weight_decay"],
            maximize=group["maximize"],
        )
        targets = (param, state["square_avg"], state.get("grad_avg"), state.get("momentum_buffer"))
        for target, value in zip(targets, new, strict=True):
            if target is not None:
                target.copy_(value)

    def _fast_update(
        self,
        group: Group,
        params: list[Tensor],
        grads: list[Tensor],
        states: list[State],
        lr: float,
    ) -> None:
        rho, eps, inside = group["rho"], group["eps"], group["eps_inside_sqrt"]
        momentum, centered = group["momentum"], group["centered"]
        wd, maximize = group["weight_decay"], group["maximize"]
        native, rest = native_split(params, grads)
        for state in states:
            state["step"] += 1
        jobs = []
        for i in native:
            p, state = params[i], states[i]
            tensors = (
                p,
                grads[i],
                state["square_avg"],
                state.get("grad_avg", p),  # pointers the kernel never reads when unused
                state.get("momentum_buffer", p),
            )
            scalars = (lr, rho, eps, wd, -1.0 if maximize else 1.0, inside, centered, momentum)
            jobs.append((tensors, scalars))
        _native.run("rmsprop", jobs)
        g_buf, den_buf = scratch_for(pick(params, rest), 2)
        for param, grad, state in zip(
            pick(params, rest), pick(grads, rest), pick(states, rest), strict=True
        ):
            tensors = [param, grad, state["square_avg"]]
            tensors += [state[name] for name in ("grad_avg", "momentum_buffer") if name in state]
            for p, g, e, *extra in chunk_views(tensors):
                e_bar = extra[0] if centered else None
                b = extra[-1] if momentum > 0 else None
                g = effective_grad_into(fit(g_buf, g), p, g, wd, maximize)
                e.mul_(rho).addcmul_(g, g, value=1 - rho)
                den = fit(den_buf, e)
                if centered:
                    e_bar.mul_(rho).add_(g, alpha=1 - rho)
                    torch.addcmul(e, e_bar, e_bar, value=-1, out=den)
                else:
                    den.copy_(e)
                if inside:
                    den.add_(eps).sqrt_()
                else:
                    den.sqrt_().add_(eps)
                if momentum > 0:
                    b.mul_(momentum).addcdiv_(g, den)
                    p.add_(b, alpha=-lr)
                else:
                    p.addcdiv_(g, den, value=-lr)
