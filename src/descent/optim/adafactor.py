"""Adafactor (Shazeer & Stern 2018): Adam's second moment, factored into row and column averages
for matrices, with a relative step size and update clipping."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Unpack

import torch
from torch import Tensor

from descent import validate
from descent.errors import InputError
from descent.optim.base import (
    DescentOptimizer,
    LearningRate,
    effective_grad,
    effective_grads,
    scalar_sqrt,
)
from descent.optim.fastpath import Group, Host, State, StepArgs
from descent.optim.options import RuleOptions, hyperparameters


def adafactor_reference(
    param: Tensor,
    grad: Tensor,
    row_var: Tensor | None,
    col_var: Tensor | None,
    variance: Tensor | None,
    *,
    step: int,
    lr: float,
    beta2_decay: float = -0.8,
    eps1: float = 1e-30,
    eps2: float = 1e-3,
    d: float = 1.0,
    weight_decay: float = 0.0,
    eps1_inside: bool = True,
    maximize: bool = False,
) -> tuple[Tensor, Tensor | None, Tensor | None, Tensor | None]:
    """1 − β̂₂ₜ = t^(beta2_decay) ;  ρₜ = min(η, 1/√t) ;  αₜ = max(ε₂, RMS(θ))·ρₜ
    matrix:  R ← β̂R + (1−β̂)·rowmean(g² + ε₁) ;  C ← β̂C + (1−β̂)·colmean(g² + ε₁)
             V̂ = R C / mean(R)
    vector:  V̂ ← β̂V̂ + (1−β̂)(g² + ε₁)
    U = g/√V̂ ;  θ ← θ(1 − ηλ) ;  θ ← θ − αₜ/max(1, RMS(U)/d) · U
    (a matrix's 1/√V̂ is computed as rsqrt(R/mean(R))·rsqrt(C), which does not underflow)

    eps1_inside=False (torch.optim.Adafactor): g² without ε₁, mean(R) clamped at ≥ ε₁ and V̂ at
    ≥ ε₁².  Returns (θ, R, C, V).
    """
    g = effective_grad(param, grad, 0.0, maximize)
    rate = step**beta2_decay
    rho = min(lr, 1 / math.sqrt(step))
    alpha = max(eps2, float(torch.linalg.vector_norm(param)) / math.sqrt(param.numel())) * rho
    param = param * (1 - lr * weight_decay)
    squared = g * g + eps1 if eps1_inside else g * g
    if g.dim() > 1:
        row_var = torch.lerp(row_var, squared.mean(dim=-1, keepdim=True), rate)
        col_var = torch.lerp(col_var, squared.mean(dim=-2, keepdim=True), rate)
        row_mean = row_var.mean(dim=-2, keepdim=True)
        if not eps1_inside:
            row_mean = torch.clamp(row_mean, min=eps1)
        if eps1_inside:
            # 1/√V̂ = rsqrt(R/mean(R)) · rsqrt(C): the same number, but R·C of a zero row and a
            # zero column (ε₁² = 1e-60) would underflow to 0 in float32, and 0/0 is NaN
            update = g * (torch.rsqrt(row_var / row_mean) * torch.rsqrt(col_var))
        else:
            estimate = torch.clamp(row_var @ col_var / row_mean, min=eps1 * eps1)
            update = g / torch.sqrt(estimate)
    else:
        variance = torch.lerp(variance, squared, rate)
        estimate = variance if eps1_inside else torch.clamp(variance, min=eps1 * eps1)
        update = g / torch.sqrt(estimate)
    rms = float(torch.linalg.vector_norm(update)) / math.sqrt(update.numel())
    return param - alpha / max(1.0, rms / d) * update, row_var, col_var, variance


class Adafactor(DescentOptimizer):
    """Adafactor (N. Shazeer & M. Stern, "Adafactor: Adaptive Learning Rates with Sublinear Memory
    Cost", ICML 2018, Algorithms 4 and 5 without first moment): for an n×m matrix the second
    moment is kept as n row and m column averages (n + m numbers instead of nm), the step is
    relative to the parameters' RMS, and the update is clipped to RMS ≤ d.

        1 − β̂₂ₜ = t^(−0.8) ;  ρₜ = min(η, 1/√t) ;  αₜ = max(ε₂, RMS(θ))·ρₜ
        R ← β̂₂ₜR + (1−β̂₂ₜ)·rowmean(g² + ε₁) ;  C ← β̂₂ₜC + (1−β̂₂ₜ)·colmean(g² + ε₁)
        V̂ = R C / mean(R)            (a vector: V̂ ← β̂₂ₜV̂ + (1−β̂₂ₜ)(g² + ε₁))
        U = g/√V̂ ;  θ ← θ − αₜ/max(1, RMS(U)/d) · U
                     η = 0.01, ε = (ε₁, ε₂) = (1e-30, 1e-3), d = 1, λ = 0

    Tensors of more than two dimensions are factored over their last two. ``weight_decay`` λ is
    torch's decoupled θ ← θ(1 − ηλ). Peer: torch.optim.Adafactor is ``eps1_inside=False`` with
    ε₁ = the dtype's machine epsilon (``eps=(None, 1e-3)``): ε₁ clamps mean(R) and V̂ instead of
    being added to g².

    Example:
        >>> opt = Adafactor(model.parameters(), lr=1e-2)  # doctest: +SKIP
    """

    elementwise = False  # see DescentOptimizer.elementwise

    # The reference step reads RMS(θ) and RMS(update) back as floats: no gradient through them.
    supports_differentiable = False

    flags = ("eps1_inside",)

    def __init__(
        self,
        params: Iterable[Any],
        lr: LearningRate = 1e-2,
        beta2_decay: float = -0.8,
        eps: tuple[float | None, float] = (1e-30, 1e-3),
        d: float = 1.0,
        weight_decay: float = 0.0,
        *,
        eps1_inside: bool = True,
        **options: Unpack[RuleOptions],
    ) -> None:
        super().__init__(params, hyperparameters(locals()), **options)

    def _validate(self, group: Group) -> None:
        super()._validate(group)
        decay = validate.finite(group["beta2_decay"], "beta2_decay")
        if decay > 0:
            raise InputError(f"beta2_decay must be ≤ 0 (1 − β̂₂ₜ = t^decay), got {decay!r}")
        eps = group["eps"]
        if not isinstance(eps, tuple | list) or len(eps) != 2:
            raise InputError(f"eps must be a pair (ε₁ or None, ε₂), got {eps!r}")
        eps1 = None if eps[0] is None else validate.positive(eps[0], "eps[0] (ε₁)")
        group["eps"] = (eps1, validate.nonnegative(eps[1], "eps[1] (ε₂)"))
        validate.positive(group["d"], "d")

    def _init_state(self, param: Tensor, group: Group) -> State:
        dtype = self.state_dtype(param, group)
        if param.dim() > 1:
            shape = param.shape
            return {
                "row_var": torch.zeros((*shape[:-1], 1), dtype=dtype, device=param.device),
                "col_var": torch.zeros(
                    (*shape[:-2], 1, shape[-1]), dtype=dtype, device=param.device
                ),
            }
        return self.zeros(param, group, ["variance"])

    @staticmethod
    def _eps1(group: Group, param: Tensor) -> float:
        eps1 = group["eps"][0]
        return torch.finfo(param.dtype).eps if eps1 is None else eps1

    def _reference_update(
        self, group: Group, param: Tensor, grad: Tensor, state: State, host: Host, lr: float
    ) -> None:
        new_param, row, col, variance = adafactor_reference(
            param,
            grad,
            state.get("row_var"),
            state.get("col_var"),
            state.get("variance"),
            step=int(host["step"]),
            lr=lr,
            beta2_decay=group["beta2_decay"],
            eps1=self._eps1(group, param),
            eps2=group["eps"][1],
            d=group["d"],
            weight_decay=group["weight_decay"],
            eps1_inside=group["eps1_inside"],
            maximize=group["maximize"],
        )
        param.copy_(new_param)
        for key, value in (("row_var", row), ("col_var", col), ("variance", variance)):
            if key in state:
                state[key].copy_(value)

    def _foreach_update(self, step: StepArgs) -> None:
        group, params, grads, states, lr = step.group, step.params, step.grads, step.states, step.lr
        # One tensor at a time (each has its own factor shapes). Every pass over the tensor
        # counts (the step is memory-bound): g² is formed once and its factored means are plain
        # means of it (torch's norms over a dimension of 1 or 3 elements cost several times a
        # pass), R·C is a broadcast product (the matmul of an n×1 by a 1×m matrix, exactly, at
        # half its cost), and the clipped step is one add. On the CPU α and the clipping are
        # host floats, as in the reference (reading a CPU value costs nothing, and each 0-dim
        # tensor op costs microseconds); elsewhere they stay on the device (no host sync).
        g_all = effective_grads(params, grads, 0.0, group["maximize"])
        eps2, d, inside = group["eps"][1], group["d"], group["eps1_inside"]
        for param, g, state, t in zip(params, g_all, states, step.all_steps(), strict=True):
            on_host = param.is_cpu and not isinstance(t, Tensor)
            eps1 = self._eps1(group, param)
            rate = t ** group["beta2_decay"]
            norm = torch.linalg.vector_norm(param)
            if on_host:
                rho = min(lr, 1 / math.sqrt(t))
                alpha = max(eps2, float(norm) / math.sqrt(param.numel())) * rho
            else:
                rho = (
                    torch.clamp(1 / scalar_sqrt(t), max=lr)
                    if isinstance(t, Tensor)
                    else min(lr, 1 / math.sqrt(t))
                )
                alpha = torch.clamp(norm / math.sqrt(param.numel()), min=eps2) * rho
            if group["weight_decay"] != 0:
                param.mul_(1 - lr * group["weight_decay"])
            squared = g * g
            if inside:
                squared.add_(eps1)
            if g.dim() > 1:
                row, col = state["row_var"], state["col_var"]
                row.lerp_(squared.mean(dim=-1, keepdim=True), rate)
                col.lerp_(squared.mean(dim=-2, keepdim=True), rate)
                del squared
                row_mean = row.mean(dim=-2, keepdim=True)
                if inside:  # factored, as in the reference (no underflow of R·C)
                    inverse_root = torch.rsqrt(row / row_mean) * torch.rsqrt(col)
                else:
                    row_mean.clamp_(min=eps1)
                    estimate = torch.mul(row, col).div_(row_mean)
                    inverse_root = estimate.clamp_(min=eps1 * eps1).rsqrt_()
            else:
                variance = state["variance"]
                variance.lerp_(squared, rate)
                del squared
                if inside:
                    inverse_root = variance.rsqrt()
                else:
                    inverse_root = torch.clamp(variance, min=eps1 * eps1).rsqrt_()
            update = inverse_root.mul_(g)
            rms_update = torch.linalg.vector_norm(update)
            if on_host:
                rms = float(rms_update) / math.sqrt(update.numel())
                param.add_(update, alpha=-(alpha / max(1.0, rms / d)))
            else:
                rms = rms_update / math.sqrt(update.numel())
                scale = alpha / torch.clamp(rms / d, min=1.0)
                param.addcmul_(update, scale, value=-1)
