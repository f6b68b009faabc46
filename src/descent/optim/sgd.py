"""Plain gradient descent, Momentum and Nesterov's accelerated gradient."""

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
    check_unit_interval,
    effective_grad,
    fused_buckets,
    native_split,
    pick,
)

# -- pure reference steps: the formulas, line by line ------------------------------------------


def sgd_reference(
    param: Tensor, grad: Tensor, *, lr: float, weight_decay: float = 0.0, maximize: bool = False
) -> Tensor:
    """θ ← θ − η g. Returns the new θ."""
    g = effective_grad(param, grad, weight_decay, maximize)
    return param - lr * g


def momentum_reference(
    param: Tensor,
    grad: Tensor,
    velocity: Tensor,
    *,
    lr: float,
    momentum: float = 0.9,
    lr_in_buffer: bool = True,
    weight_decay: float = 0.0,
    maximize: bool = False,
) -> tuple[Tensor, Tensor]:
    """Lecture: v ← γ v + η g ; θ ← θ − v.  torch (lr_in_buffer=False): b ← γ b + g ; θ ← θ − η b.

    Returns (θ, v).
    """
    g = effective_grad(param, grad, weight_decay, maximize)
    if lr_in_buffer:
        v = momentum * velocity + lr * g
        return param - v, v
    b = momentum * velocity + g
    return param - lr * b, b


def nesterov_reference(
    param: Tensor,
    grad: Tensor,
    velocity: Tensor,
    *,
    lr: float,
    momentum: float = 0.9,
    lr_in_buffer: bool = True,
    weight_decay: float = 0.0,
    maximize: bool = False,
) -> tuple[Tensor, Tensor]:
    """Nesterov in the stored look-ahead form φ = θ − γ v, with g = ∇J(φ):

    Lecture: v ← γ v + η g ; φ ← φ − (γ v + η g).
    torch (lr_in_buffer=False): b ← γ b + g ; φ ← φ − η (g + γ b).

    Returns (φ, v).
    """
    g = effective_grad(param, grad, weight_decay, maximize)
    if lr_in_buffer:
        v = momentum * velocity + lr * g
        return param - (momentum * v + lr * g), v
    b = momentum * velocity + g
    return param - lr * (g + momentum * b), b


# -- the optimizers ----------------------------------------------------------------------------


class SGD(DescentOptimizer):
    """Gradient descent: θ ← θ − η g.

    The batch mode (full batch, one example, mini-batch) is chosen by what the gradient is computed
    on, not here. Equals ``torch.optim.SGD(params, lr)`` (momentum 0) and Keras' SGD.

    Args:
        lr: η, a float ≥ 0 or a schedule (callable of the update number n = 0, 1, …).
        weight_decay: λ of the L2 term: g ← g + λθ.
        maximize: ascend instead (g ← −g).
        impl: "fast" (torch's fused kernel where it applies) or "reference" (the formula above).
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: LearningRate = 0.01,
        weight_decay: float = 0.0,
        *,
        maximize: bool = False,
        impl: Impl = "fast",
        **unknown: Any,
    ) -> None:
        self._reject_unknown(unknown)
        super().__init__(
            params, dict(lr=lr, weight_decay=weight_decay, maximize=maximize, impl=impl)
        )

    def _init_state(self, param: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        return {}  # plain descent keeps no state; the update count lives in the group

    def _reference_update(
        self, group: dict[str, Any], param: Tensor, grad: Tensor, state: dict[str, Any], lr: float
    ) -> None:
        param.copy_(
            sgd_reference(
                param, grad, lr=lr, weight_decay=group["weight_decay"], maximize=group["maximize"]
            )
        )

    def _fast_update(
        self,
        group: dict[str, Any],
        params: list[Tensor],
        grads: list[Tensor],
        states: list[dict[str, Any]],
        lr: float,
    ) -> None:
        buckets, rest = fused_buckets(params, grads)
        for indices in buckets:
            if group["weight_decay"] == 0 and not group["maximize"]:
                # θ ← θ − η g is one in-place axpy per tensor; faster than the fused kernel.
                torch._foreach_add_(pick(params, indices), pick(grads, indices), alpha=-lr)
                continue
            torch._fused_sgd_(
                pick(params, indices),
                pick(grads, indices),
                [],
                weight_decay=group["weight_decay"],
                momentum=0.0,
                lr=lr,
                dampening=0.0,
                nesterov=False,
                maximize=group["maximize"],
                is_first_step=False,
            )
        for i in rest:
            params[i].copy_(
                sgd_reference(
                    params[i],
                    grads[i],
                    lr=lr,
                    weight_decay=group["weight_decay"],
                    maximize=group["maximize"],
                )
            )


class _MomentumBase(DescentOptimizer):
    _nesterov = False

    def __init__(
        self,
        params: Iterable[Any],
        lr: LearningRate = 0.01,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        *,
        lr_in_buffer: bool = True,
        maximize: bool = False,
        impl: Impl = "fast",
        **unknown: Any,
    ) -> None:
        self._reject_unknown(unknown)
        super().__init__(
            params,
            dict(
                lr=lr,
                momentum=momentum,
                weight_decay=weight_decay,
                lr_in_buffer=lr_in_buffer,
                maximize=maximize,
                impl=impl,
            ),
        )

    def _validate(self, group: dict[str, Any]) -> None:
        super()._validate(group)
        check_unit_interval(group["momentum"], "momentum (γ)")
        check_flag(group["lr_in_buffer"], "lr_in_buffer")

    def _init_state(self, param: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        # Only the velocity, as torch keeps it; the update count lives in the group.
        return {"momentum_buffer": torch.zeros_like(param, memory_format=torch.preserve_format)}

    def _reference_update(
        self, group: dict[str, Any], param: Tensor, grad: Tensor, state: dict[str, Any], lr: float
    ) -> None:
        reference = nesterov_reference if self._nesterov else momentum_reference
        new_param, new_buffer = reference(
            param,
            grad,
            state["momentum_buffer"],
            lr=lr,
            momentum=group["momentum"],
            lr_in_buffer=group["lr_in_buffer"],
            weight_decay=group["weight_decay"],
            maximize=group["maximize"],
        )
        param.copy_(new_param)
        state["momentum_buffer"].copy_(new_buffer)

    def _fast_update(
        self,
        group: dict[str, Any],
        params: list[Tensor],
        grads: list[Tensor],
        states: list[dict[str, Any]],
        lr: float,
    ) -> None:
        lecture = group["lr_in_buffer"]
        if lecture and self._nesterov:
            # torch's fused SGD cannot keep the lecture's velocity v (its buffer is v / η); a
            # single-pass C kernel does, and what it cannot take goes through the reference.
            native, rest = native_split(params, grads)
            sign = -1.0 if group["maximize"] else 1.0
            _native.run(
                "nesterov",
                [
                    (
                        (params[i], grads[i], states[i]["momentum_buffer"]),
                        (lr, group["momentum"], group["weight_decay"], sign),
                    )
                    for i in native
                ],
            )
            for i in rest:
                self._reference_update(group, params[i], grads[i], states[i], lr)
            return
        buckets, rest = fused_buckets(params, grads)
        for indices in buckets:
            if lecture:
                # Dampening 1 − η turns torch's b ← γ b + (1 − d) g into v ← γ v + η g, and
                # a kernel lr of 1 makes the step θ ← θ − v: the lecture's form in one pass.
                kernel_lr, dampening = 1.0, 1.0 - lr
            else:
                # torch's own form: b ← γ b + g ; θ ← θ − η b (or − η(g + γ b) for Nesterov).
                kernel_lr, dampening = lr, 0.0
            torch._fused_sgd_(
                pick(params, indices),
                pick(grads, indices),
                [states[i]["momentum_buffer"] for i in indices],
                weight_decay=group["weight_decay"],
                momentum=group["momentum"],
                lr=kernel_lr,
                dampening=dampening,
                nesterov=self._nesterov,
                maximize=group["maximize"],
                is_first_step=False,
            )
        for i in rest:
            self._reference_update(group, params[i], grads[i], states[i], lr)


class Momentum(_MomentumBase):
    """Gradient descent with momentum.

    Lecture (default, ``lr_in_buffer=True``, also Keras' SGD(momentum)):
        v ← γ v + η g ;  θ ← θ − v

    torch (``lr_in_buffer=False``, equals ``torch.optim.SGD(lr, momentum=γ)``):
        b ← γ b + g ;  θ ← θ − η b

    The two are the same for a constant η (v = η b). Under a schedule they differ: torch rescales
    the whole buffer by the new η, the lecture's form keeps the old rates inside v.

    Args:
        lr: η (float ≥ 0 or schedule of the update number).
        momentum: γ in [0, 1).
        weight_decay: λ of the L2 term g ← g + λθ.
        lr_in_buffer: True for the lecture's/Keras' form, False for torch's.
        maximize: ascend instead.
        impl: "fast" (torch's fused SGD kernel with the hyperparameters re-expressed; for the
            lecture's Nesterov, descent's single-pass C kernel) or "reference".
    """


class Nesterov(_MomentumBase):
    """Nesterov's accelerated gradient (NAG).

    Lecture: v ← γ v + η ∇J(θ − γ v) ;  θ ← θ − v.

    Implemented in the stored look-ahead form (the parameters hold φ = θ − γ v, so the gradient is
    taken where the parameters are, as in any training loop):

        v ← γ v + η g ;  φ ← φ − (γ v + η g)         (lr_in_buffer=True, Keras' form)
        b ← γ b + g ;    φ ← φ − η (g + γ b)         (lr_in_buffer=False, torch.optim.SGD(
                                                      momentum=γ, nesterov=True))

    Both forms visit the same look-ahead points as the lecture's (tests show it on a quadratic);
    they are equal to each other for a constant η.

    Args: as :class:`Momentum`.
    """

    _nesterov = True
