"""LARS (You et al. 2017): momentum SGD with a per-layer rate κ‖θ‖/(‖g‖ + λ‖θ‖)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Unpack

import torch
from torch import Tensor

from descent import validate
from descent.optim._compat import foreach
from descent.optim.base import DescentOptimizer, LearningRate, effective_grad, effective_grads
from descent.optim.fastpath import Group, StepArgs
from descent.optim.options import RuleOptions, hyperparameters


def lars_reference(
    param: Tensor,
    grad: Tensor,
    momentum_buffer: Tensor,
    *,
    lr: float,
    momentum: float = 0.9,
    trust_coefficient: float = 1e-3,
    weight_decay: float = 0.0,
    lr_in_buffer: bool = True,
    excluded: bool = False,
    maximize: bool = False,
) -> tuple[Tensor, Tensor]:
    """r = κ‖θ‖/(‖g‖ + λ‖θ‖)  (1 when ‖θ‖ or the denominator is 0) ;  u = r (g + λθ)
    v ← μv + η u ; θ ← θ − v          (lr_in_buffer, the paper)
    b ← μb + u ;   θ ← θ − η b        (otherwise, pytorch_optimizer's)

    excluded (a 1-D tensor under ``exclude_1d``): u = g (no ratio, no decay).

    Returns (θ, v or b).
    """
    g = effective_grad(param, grad, 0.0, maximize)
    if excluded:
        update = g
    else:
        weight_norm = torch.linalg.vector_norm(param)
        denominator = torch.linalg.vector_norm(g) + weight_decay * weight_norm
        ratio = torch.where(
            (weight_norm > 0) & (denominator > 0),
            trust_coefficient * weight_norm / denominator,
            1.0,
        )
        update = ratio * (g + weight_decay * param)
    if lr_in_buffer:
        momentum_buffer = momentum * momentum_buffer + lr * update
        return param - momentum_buffer, momentum_buffer
    momentum_buffer = momentum * momentum_buffer + update
    return param - lr * momentum_buffer, momentum_buffer


class _LayerwiseRule(DescentOptimizer):
    """What LARS and LAMB share: a per-tensor (per-layer) trust ratio, from which
    ``exclude_1d=True`` exempts vectors (biases, norms' scales), which also get no decay."""

    elementwise = False  # see DescentOptimizer.elementwise

    # The trust ratio's ‖θ‖ keeps θ for its gradient, and the step then overwrites θ in place.
    supports_differentiable = False

    @staticmethod
    def _excluded(group: Group, param: Tensor) -> bool:
        return group["exclude_1d"] and param.dim() <= 1

    def _reference_keywords(self, group: Group, param: Tensor) -> dict[str, Any]:
        return {"excluded": self._excluded(group, param)}


class LARS(_LayerwiseRule):
    """LARS (Y. You, I. Gitman & B. Ginsburg, "Large Batch Training of Convolutional Networks",
    2017, Algorithm 1): momentum SGD whose rate is scaled per tensor (per layer) by the ratio of
    the weights' norm to the gradient's.

        r = κ‖θ‖/(‖g‖ + λ‖θ‖)        (r = 1 when ‖θ‖ or the denominator is 0)
        v ← μv + η r (g + λθ)
        θ ← θ − v                        η = 1, κ = 1e-3 (trust_coefficient), μ = 0.9, λ = 0

    The step of each layer is thus about ηκ‖θ‖ long; the paper decays η polynomially (pass a
    schedule). ``exclude_1d=True`` gives 1-D tensors (biases, norm layers) plain momentum SGD: no
    ratio and no weight decay.

    Peer (docs/optimizers.md): ``pytorch_optimizer.LARS`` keeps η outside the buffer and always
    excludes 1-D tensors: ``lr_in_buffer=False, exclude_1d=True`` reproduces it (under a constant
    η the two buffer forms are equal).

    Example:
        >>> params = model.parameters()  # doctest: +SKIP
        >>> opt = LARS(params, lr=1.0, weight_decay=5e-4, exclude_1d=True)  # doctest: +SKIP
    """

    counts_steps = False  # the update does not depend on t

    state_names = ("momentum_buffer",)
    reference = staticmethod(lars_reference)
    flags = ("exclude_1d", "lr_in_buffer")

    def __init__(
        self,
        params: Iterable[Any],
        lr: LearningRate = 1.0,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        *,
        trust_coefficient: float = 1e-3,
        exclude_1d: bool = False,
        lr_in_buffer: bool = True,
        **options: Unpack[RuleOptions],
    ) -> None:
        super().__init__(params, hyperparameters(locals()), **options)

    def _validate(self, group: Group) -> None:
        super()._validate(group)
        validate.unit_interval(group["momentum"], "momentum (μ)")
        validate.positive(group["trust_coefficient"], "trust_coefficient (κ)")

    def _foreach_update(self, step: StepArgs) -> None:
        group, params, grads, states, lr = step.group, step.params, step.grads, step.states, step.lr
        wd = group["weight_decay"]
        g = effective_grads(params, grads, 0.0, group["maximize"])
        trusted = [i for i, p in enumerate(params) if not self._excluded(group, p)]
        updates = list(g)
        if trusted:
            weights = [params[i] for i in trusted]
            weight_norms = torch.stack(foreach.norm(weights))
            denominator = torch.stack(foreach.norm([g[i] for i in trusted])) + wd * weight_norms
            ratios = torch.where(
                (weight_norms > 0) & (denominator > 0),
                group["trust_coefficient"] * weight_norms / denominator,
                1.0,
            )
            # new tensors: g may be the caller's gradients, which are never written
            decayed = foreach.add([g[i] for i in trusted], weights, alpha=wd)
            foreach.mul_(decayed, list(ratios.unbind()))
            for i, value in zip(trusted, decayed, strict=True):
                updates[i] = value
        buffers = [state["momentum_buffer"] for state in states]
        foreach.mul_(buffers, group["momentum"])
        if group["lr_in_buffer"]:
            foreach.add_(buffers, updates, alpha=lr)
            foreach.add_(params, buffers, alpha=-1.0)
        else:
            foreach.add_(buffers, updates)
            foreach.add_(params, buffers, alpha=-lr)

    def _fast_update(self, step: StepArgs) -> None:
        """One C call for the group (per dtype): per tensor the sums ‖θ‖², ‖g‖², its ratio r,
        then the momentum step on r(g + λθ) while θ and g are still in the cache. An excluded
        tensor steps with r = 1, λ = 0 (u = g)."""
        group, params, lr = step.group, step.params, step.lr
        native, _ = step.native_split()
        trust: int | list[int] = 1
        if group["exclude_1d"]:
            dims = step.planned("dims", lambda: [param.dim() for param in params])
            trust = [int(dims[i] > 1) for i in native]
        self._native_shared(
            "lars_step",
            step,
            {"b": "momentum_buffer"},
            dict(
                trust_coefficient=group["trust_coefficient"],
                wd=group["weight_decay"],
                momentum=group["momentum"],
                lr=lr,
                lr_in_buffer=int(group["lr_in_buffer"]),
                trust=trust,
            ),
        )
