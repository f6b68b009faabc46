"""LAMB (You et al. 2020): Adam's direction, scaled per layer by a trust ratio ‖θ‖/‖update‖."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Unpack

import torch
from torch import Tensor

from descent import validate
from descent.optim._compat import foreach
from descent.optim.adam import _moments, moments_reference, validate_moments
from descent.optim.base import LearningRate, effective_grad, effective_grads, scalar_sqrt
from descent.optim.fastpath import TWO_PASS_BATCH, Group, StepArgs
from descent.optim.lars import _LayerwiseRule
from descent.optim.options import RuleOptions, hyperparameters


def lamb_corrections(
    mode: str, step: float, beta1: float, beta2: float, lr: float
) -> tuple[float, float, float]:
    """(1−β₁ᵗ, 1−β₂ᵗ, η) dividing m, v and the step for ``bias_correction`` ``mode``: "moments"
    (the paper) corrects the moments; "lr" (pytorch_optimizer's) leaves them and steps by
    η/(1−β₁ᵗ); "none" corrects nothing."""
    if mode == "moments":
        return 1 - beta1**step, 1 - beta2**step, lr
    if mode == "lr":
        return 1.0, 1.0, lr / (1 - beta1**step)
    return 1.0, 1.0, lr


def lamb_reference(
    param: Tensor,
    grad: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    *,
    step: int,
    lr: float,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-6,
    weight_decay: float = 0.0,
    bias_correction: str = "moments",
    max_weight_norm: float | None = None,
    eps_in_trust: bool = False,
    excluded: bool = False,
    maximize: bool = False,
) -> tuple[Tensor, Tensor, Tensor]:
    """m ← β₁m + (1−β₁)g ; v ← β₂v + (1−β₂)g² ; m̂ = m/(1−β₁ᵗ) ; v̂ = v/(1−β₂ᵗ)
    u = m̂/(√v̂ + ε) + λθ
    r = φ(‖θ‖)/‖u‖  (1 when ‖θ‖ or ‖u‖ is 0) ;  φ(z) = min(z, max_weight_norm) or z
    θ ← θ − η r u

    bias_correction "moments" (the paper) as above; "none": m̂ = m, v̂ = v; "lr"
    (pytorch_optimizer's): m̂ = m, v̂ = v and θ ← θ − η/(1−β₁ᵗ) · r u.
    eps_in_trust: r = φ(‖θ‖)/(‖u‖ + ε).
    excluded (a 1-D tensor under ``exclude_1d``): u = m̂/(√v̂ + ε) and r = 1.

    Returns (θ, m, v).
    """
    g = effective_grad(param, grad, 0.0, maximize)
    exp_avg, exp_avg_sq = moments_reference(g, exp_avg, exp_avg_sq, beta1, beta2)
    bias1, bias2, lr = lamb_corrections(bias_correction, step, beta1, beta2, lr)
    update = (exp_avg / bias1) / (torch.sqrt(exp_avg_sq / bias2) + eps)
    if excluded:
        return param - lr * update, exp_avg, exp_avg_sq
    update = update + weight_decay * param
    weight_norm = torch.linalg.vector_norm(param)
    update_norm = torch.linalg.vector_norm(update)
    if max_weight_norm is not None:
        weight_norm = torch.clamp(weight_norm, max=max_weight_norm)
    denominator = update_norm + eps if eps_in_trust else update_norm
    ratio = torch.where((weight_norm > 0) & (update_norm > 0), weight_norm / denominator, 1.0)
    return param - lr * ratio * update, exp_avg, exp_avg_sq


class LAMB(_LayerwiseRule):
    """LAMB (Y. You et al., "Large Batch Optimization for Deep Learning: Training BERT in 76
    minutes", ICLR 2020, Algorithm 2): Adam's direction plus weight decay, rescaled per tensor
    (per layer) so that its norm is a fixed fraction of the weights' norm.

        m ← β₁m + (1−β₁)g ;  v ← β₂v + (1−β₂)g² ;  m̂ = m/(1−β₁ᵗ) ;  v̂ = v/(1−β₂ᵗ)
        u = m̂/(√v̂ + ε) + λθ
        r = φ(‖θ‖)/‖u‖   (r = 1 when either norm is 0; φ the identity, or a clip at
                          ``max_weight_norm``)
        θ ← θ − η r u                          η = 1e-3, β = (0.9, 0.999), ε = 1e-6, λ = 0

    ``exclude_1d=True`` takes 1-D tensors (biases, norm layers' scales) out of the trust ratio and
    the weight decay, as BERT's recipe does: for them θ ← θ − η m̂/(√v̂ + ε).

    Peer (docs/optimizers.md): ``pytorch_optimizer.Lamb(weight_decouple=False)`` is
    ``bias_correction="lr", max_weight_norm=10, eps_in_trust=True`` (η/(1−β₁ᵗ) outside the
    ratio, uncorrected moments inside it). Its default
    ``weight_decouple=True`` (θ ← θ(1 − ηλ) before the ratio, λθ out of u) is not reproduced.

    Example:
        >>> params = model.parameters()  # doctest: +SKIP
        >>> opt = LAMB(params, lr=1e-3, weight_decay=0.01, exclude_1d=True)  # doctest: +SKIP
    """

    state_names = ("exp_avg", "exp_avg_sq")
    reference = staticmethod(lamb_reference)
    flags = ("exclude_1d", "eps_in_trust")

    def __init__(
        self,
        params: Iterable[Any],
        lr: LearningRate = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-6,
        weight_decay: float = 0.0,
        *,
        exclude_1d: bool = False,
        bias_correction: str = "moments",
        max_weight_norm: float | None = None,
        eps_in_trust: bool = False,
        **options: Unpack[RuleOptions],
    ) -> None:
        super().__init__(params, hyperparameters(locals()), **options)

    def _validate(self, group: Group) -> None:
        super()._validate(group)
        validate_moments(group)
        group["bias_correction"] = validate.choice(
            group["bias_correction"], "bias_correction", ("moments", "lr", "none")
        )
        if group["max_weight_norm"] is not None:
            validate.positive(group["max_weight_norm"], "max_weight_norm")

    def _foreach_update(self, step: StepArgs) -> None:
        group, params, grads, states, lr = step.group, step.params, step.grads, step.states, step.lr
        beta1, beta2 = group["betas"]
        g = effective_grads(params, grads, 0.0, group["maximize"])
        m, v = _moments(group, g, states)
        den = foreach.sqrt(v)
        steps = step.all_steps()
        moments = group["bias_correction"] == "moments"
        if moments:
            foreach.div_(den, [scalar_sqrt(1 - beta2**t) for t in steps])
        foreach.add_(den, group["eps"])
        update = foreach.div(m, den)
        if moments:
            foreach.mul_(update, [1 / (1 - beta1**t) for t in steps])
        trusted = [i for i, p in enumerate(params) if not self._excluded(group, p)]
        if trusted:
            weights = [params[i] for i in trusted]
            directions = [update[i] for i in trusted]
            if group["weight_decay"] != 0:
                foreach.add_(directions, weights, alpha=group["weight_decay"])
            weight_norms = torch.stack(foreach.norm(weights))
            update_norms = torch.stack(foreach.norm(directions))
            clipped = weight_norms
            if group["max_weight_norm"] is not None:
                clipped = torch.clamp(weight_norms, max=group["max_weight_norm"])
            denominator = update_norms + group["eps"] if group["eps_in_trust"] else update_norms
            ratios = torch.where(
                (weight_norms > 0) & (update_norms > 0), clipped / denominator, 1.0
            )
            foreach.mul_(directions, list(ratios.unbind()))
        if group["bias_correction"] == "lr":
            foreach.mul_(update, [1 / (1 - beta1**t) for t in steps])
        foreach.add_(params, update, alpha=-lr)

    def _kept_buffers(self, dtype: torch.dtype) -> tuple[int, int]:
        """The addresses of two buffers of TWO_PASS_BATCH elements of ``dtype`` (allocated once per
        optimizer) that hold u between the two passes: the C loop pipelines consecutive tensors,
        so each uses the buffer the one before it does not."""
        buffers = self.__dict__.setdefault("_kept_buffers_by_dtype", {})
        if dtype not in buffers:
            buffers[dtype] = torch.empty(2, TWO_PASS_BATCH, dtype=dtype)
        pair = buffers[dtype]
        return pair[0].data_ptr(), pair[1].data_ptr()

    def _fast_update(self, step: StepArgs) -> None:
        """One C call for the group (per dtype): per tensor the moments and the sums ‖θ‖², ‖u‖²,
        its trust ratio, then θ ← θ − η r u while θ and u are still in the cache (u kept in a
        buffer up to TWO_PASS_BATCH elements, recomputed from θ, m, v above: cheaper than a
        buffer of its size in memory)."""
        native, rest = step.native_split()
        if native:
            self._native_step(step.subset(native))
        self._foreach_rest(step, rest)

    def _native_step(self, step: StepArgs) -> None:
        """The C step (``lamb_step``) over tensors the kernels take."""
        from descent.optim import _native

        group, lr, params, hosts = step.group, step.lr, step.params, step.hosts
        beta1, beta2 = group["betas"]
        mode = group["bias_correction"]
        # (bias1, bias2, η') per step count: the tensors of a group share one, or a few
        corrections: dict[float, tuple[float, float, float]] = {}
        for host in hosts:
            t = host["step"]
            if t not in corrections:
                corrections[t] = lamb_corrections(mode, t, beta1, beta2, lr)
        per_tensor = [corrections[host["step"]] for host in hosts]
        trusted = [not self._excluded(group, p) for p in params]
        keep = [p.numel() <= TWO_PASS_BATCH for p in params]
        # u's buffer: one of two per dtype, alternating over the kept tensors (the C loop runs a
        # tensor's pass 2 during the next one's pass 1); a tensor not kept never touches u
        u: list[Tensor | int] = list(params)
        pairs: dict[torch.dtype, tuple[int, int]] = {}
        turns: dict[torch.dtype, int] = {}  # one C call per dtype: alternate within each
        for i, param in enumerate(params):
            if keep[i]:
                dtype = param.dtype
                if dtype not in pairs:
                    pairs[dtype], turns[dtype] = self._kept_buffers(dtype), 0
                turn = turns[dtype]
                u[i], turns[dtype] = pairs[dtype][turn], 1 - turn
        max_weight_norm = group["max_weight_norm"]
        _native.run_columns(
            "lamb_step",
            dict(
                p=params,
                g=step.grads,
                m=[state["exp_avg"] for state in step.states],
                v=[state["exp_avg_sq"] for state in step.states],
                u=u,
                beta1=beta1,
                beta2=beta2,
                bias1=[c[0] for c in per_tensor],
                bias2=[c[1] for c in per_tensor],
                eps=group["eps"],
                wd=[group["weight_decay"] if t else 0.0 for t in trusted],
                sign=-1.0 if group["maximize"] else 1.0,
                lr=[c[2] for c in per_tensor],
                max_weight_norm=math.inf if max_weight_norm is None else float(max_weight_norm),
                keep=[int(k) for k in keep],
                trust=[int(t) for t in trusted],
                eps_in_trust=int(group["eps_in_trust"]),
            ),
        )
