"""LAMB (You et al. 2020): Adam's direction, scaled per layer by a trust ratio ‖θ‖/‖update‖."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Unpack

import torch
from torch import Tensor

from descent import validate
from descent.optim._compat import foreach
from descent.optim.base import (
    Group,
    Host,
    LearningRate,
    State,
    effective_grad,
    effective_grads,
    scalar_sqrt,
    validate_betas,
)
from descent.optim.fastpath import TWO_PASS_BATCH, cache_batches, native_split
from descent.optim.lars import _LayerwiseRule
from descent.optim.options import RuleOptions, hyperparameters


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
    exp_avg = beta1 * exp_avg + (1 - beta1) * g
    exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * g * g
    bias1, bias2 = (1.0, 1.0)
    if bias_correction == "moments":
        bias1, bias2 = 1 - beta1**step, 1 - beta2**step
    elif bias_correction == "lr":
        lr = lr / (1 - beta1**step)
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


def lamb_trust_ratio(
    weight_norm: float,
    update_norm: float,
    *,
    eps: float,
    max_weight_norm: float | None,
    eps_in_trust: bool,
) -> float:
    """r = φ(‖θ‖)/‖u‖ (or /(‖u‖ + ε)), 1 when either norm is 0: the ratio of
    :func:`lamb_reference` from two norms on the host (the C fast path's pass 1 sums them)."""
    if not (weight_norm > 0 and update_norm > 0):
        return 1.0
    clipped = weight_norm if max_weight_norm is None else min(weight_norm, max_weight_norm)
    return clipped / (update_norm + eps if eps_in_trust else update_norm)


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
        group["betas"] = validate_betas(group["betas"])
        validate.positive(group["eps"], "eps (ε)")
        group["bias_correction"] = validate.choice(
            group["bias_correction"], "bias_correction", ("moments", "lr", "none")
        )
        if group["max_weight_norm"] is not None:
            validate.positive(group["max_weight_norm"], "max_weight_norm")

    def _foreach_update(
        self,
        group: Group,
        params: list[Tensor],
        grads: list[Tensor],
        states: list[State],
        hosts: list[Host],
        lr: float,
    ) -> None:
        beta1, beta2 = group["betas"]
        g = effective_grads(params, grads, 0.0, group["maximize"])
        m = [state["exp_avg"] for state in states]
        v = [state["exp_avg_sq"] for state in states]
        foreach.mul_(m, beta1)
        foreach.add_(m, g, alpha=1 - beta1)
        foreach.mul_(v, beta2)
        foreach.addcmul_(v, g, g, value=1 - beta2)
        den = foreach.sqrt(v)
        steps = [host["step"] for host in hosts]
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

    def _kept_buffer(self, dtype: torch.dtype) -> Tensor:
        """The buffer (TWO_PASS_BATCH elements of ``dtype``, allocated once per optimizer) that
        holds u between the two passes of a cache-sized batch."""
        buffers = self.__dict__.setdefault("_kept_buffers", {})
        if dtype not in buffers:
            buffers[dtype] = torch.empty(TWO_PASS_BATCH, dtype=dtype)
        return buffers[dtype]

    def _fast_update(
        self,
        group: Group,
        params: list[Tensor],
        grads: list[Tensor],
        states: list[State],
        hosts: list[Host],
        lr: float,
    ) -> None:
        """Two C passes over each batch of tensors that fits in the cache (a large tensor alone),
        so the second reads from the cache: the moments and the sums ‖θ‖², ‖u‖²; then
        θ ← θ − η r u with u recomputed from the new moments (cheaper than storing it)."""
        from descent.optim import _native

        native, rest = native_split(params, grads, states)
        beta1, beta2 = group["betas"]
        eps, mode = group["eps"], group["bias_correction"]
        sign = -1.0 if group["maximize"] else 1.0
        kept: dict[torch.dtype, Tensor] = {}
        for batch in cache_batches(native, params):
            sums = torch.empty(len(batch), 2, dtype=torch.float64)
            address = sums.data_ptr()  # row j at address + 16 j: no view per tensor
            moments, applies = [], []
            # A batch that fits in the cache keeps u for pass 2 in one buffer (the division and
            # square root are then computed once); a larger tensor recomputes it, which moves
            # fewer bytes than a buffer of its size.
            sizes = [params[i].numel() for i in batch]
            keep = sum(sizes) <= TWO_PASS_BATCH
            offset = 0
            for row, i in enumerate(batch):
                t = hosts[i]["step"]
                bias1, bias2, step = 1.0, 1.0, lr
                if mode == "moments":
                    bias1, bias2 = 1 - beta1**t, 1 - beta2**t
                elif mode == "lr":
                    step = lr / (1 - beta1**t)
                wd = 0.0 if self._excluded(group, params[i]) else group["weight_decay"]
                m, v = states[i]["exp_avg"], states[i]["exp_avg_sq"]
                u: Tensor | int = params[i]  # never read nor written unless keep
                if keep:
                    dtype = params[i].dtype
                    if dtype not in kept:
                        kept[dtype] = self._kept_buffer(dtype)
                    u = kept[dtype].data_ptr() + offset * params[i].element_size()
                    offset += sizes[row]
                shared = dict(
                    p=params[i], m=m, v=v, u=u, bias1=bias1, bias2=bias2, eps=eps, wd=wd, keep=keep
                )
                sums_row = address + 16 * row
                moments.append(
                    dict(shared, g=grads[i], sums=sums_row, beta1=beta1, beta2=beta2, sign=sign)
                )
                applies.append(dict(shared, step=step))
            _native.run("lamb_moments", moments)
            for job, i, (weight_sq, update_sq) in zip(applies, batch, sums.tolist(), strict=True):
                if not self._excluded(group, params[i]):
                    job["step"] *= lamb_trust_ratio(
                        math.sqrt(weight_sq),
                        math.sqrt(update_sq),
                        eps=eps,
                        max_weight_norm=group["max_weight_norm"],
                        eps_in_trust=group["eps_in_trust"],
                    )
            _native.run("lamb_apply", applies)
        self._foreach_some(group, rest, params, grads, states, hosts, lr)
