"""Schedule-Free SGD and AdamW (Defazio et al. 2024): no learning-rate schedule; the evaluation
point is an average of the iterates, and the gradient is taken between that average and the
SGD/Adam sequence."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Unpack

import torch
from torch import Tensor

from descent import validate
from descent.errors import InputError
from descent.optim import _compat
from descent.optim._compat import foreach
from descent.optim.adam import validate_moments
from descent.optim.base import DescentOptimizer, LearningRate, effective_grad, effective_grads
from descent.optim.fastpath import Group, Host, State, StepArgs
from descent.optim.options import RuleOptions, hyperparameters


def schedule_free_weight(
    step: int, lr: float, lr_max: float, weight_sum: float, r: float, weight_lr_power: float
) -> tuple[float, float, float]:
    """cₜ = wₜ/Σ wᵢ with wₜ = tʳ · (maxᵢ≤ₜ ηᵢ)^p.  Returns (cₜ, the new max η, the new Σ w)."""
    lr_max = max(lr, lr_max)
    weight = step**r * lr_max**weight_lr_power
    weight_sum = weight_sum + weight
    return (weight / weight_sum if weight_sum != 0 else 0.0), lr_max, weight_sum


def schedule_free_reference(
    param: Tensor,
    grad: Tensor,
    z: Tensor,
    exp_avg_sq: Tensor | None,
    *,
    step: int,
    lr: float,
    ckp1: float,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    maximize: bool = False,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """One step on the training point y (the parameter in train mode), with c = cₜ:

        AdamW (exp_avg_sq given):  v ← β₂v + (1−β₂)g² ;  ĝ = g/(√(v/(1−β₂ᵗ)) + ε) + λy
        SGD (exp_avg_sq None):     ĝ = g + λy
        y ← (1−c) y + c z ;  y ← y + η(β₁(1−c) − 1) ĝ ;  z ← z − η ĝ

    That is z ← z − ηĝ, x ← (1−c)x + cz, y = (1−β₁)z + β₁x, with x never stored (eval mode
    computes it). Returns (y, z, v).
    """
    g = effective_grad(param, grad, 0.0, maximize)
    if exp_avg_sq is not None:
        exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * g * g
        g = g / (torch.sqrt(exp_avg_sq / (1 - beta2**step)) + eps)
    g = g + weight_decay * param
    y = (1 - ckp1) * param + ckp1 * z
    y = y + lr * (beta1 * (1 - ckp1) - 1) * g
    return y, z - lr * g, exp_avg_sq


def _validate_interpolation(value: Any, name: str) -> None:
    """Schedule-Free's β (y = (1−β)z + βx): in [0, 1) as every momentum, and not 0 (y would be z
    and the average x would never enter the gradient)."""
    validate.unit_interval(value, name)
    if value == 0:
        raise InputError(f"{name} must be in (0, 1) for Schedule-Free, got 0")


class _ScheduleFree(DescentOptimizer):
    _adaptive = False

    def _validate(self, group: Group) -> None:
        super()._validate(group)
        validate.nonnegative(group["r"], "r")
        validate.nonnegative(group["weight_lr_power"], "weight_lr_power")
        group.setdefault("train_mode", True)
        group.setdefault("lr_max", -1.0)
        group.setdefault("weight_sum", 0.0)

    def _init_state(self, param: Tensor, group: Group) -> State:
        names = ["z", "exp_avg_sq"] if self._adaptive else ["z"]
        state = self.zeros(param, group, names)
        state["z"].copy_(param)
        return state

    def _momentum(self, group: Group) -> float:
        raise NotImplementedError

    @torch.no_grad()
    def train(self) -> None:
        """Parameters to the training point y = (1−β₁)z + β₁x (where gradients are taken)."""
        self._switch(True)

    @torch.no_grad()
    def eval(self) -> None:
        """Parameters to the average x (evaluate and save models in this mode)."""
        self._switch(False)

    def _switch(self, train: bool) -> None:
        # eval() → train() → eval() with no step between gives back x exactly: train() keeps
        # a copy of x until the next step (or a write to the parameter, which torch's write
        # counter shows: _compat.write_count; without it no copy is kept), and eval() restores
        # it. Computed again, x = y + (1 − 1/β₁)(z − y) would differ from it in the last bit for
        # some elements (two roundings each way), so a checkpoint taken at x would not hold the
        # x a run ends with.
        averages: dict[Tensor, tuple[Tensor, int | None]]
        averages = self.__dict__.setdefault("_averages", {})
        for group in self.param_groups:
            if group["train_mode"] == train:
                continue
            beta1 = self._momentum(group)
            # y = (1−β₁)z + β₁x  ⇔  x = y + (1 − 1/β₁)(z − y)
            weight = 1 - beta1 if train else 1 - 1 / beta1
            for param in group["params"]:
                state = self.state[param]
                if "z" not in state:
                    continue
                kept = averages.pop(param, None)
                if not train and kept is not None and kept[1] == _compat.write_count(param):
                    param.copy_(kept[0])
                    continue
                x = param.clone() if train and _compat.write_count(param) is not None else None
                param.lerp_(state["z"].to(param.dtype), weight)
                if x is not None:
                    averages[param] = (x, _compat.write_count(param))
            group["train_mode"] = train

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.__dict__.pop("_averages", None)  # copies of x from before the load
        super().load_state_dict(state_dict)

    def _run(self, step: StepArgs) -> None:
        group = step.group
        if not group["train_mode"]:
            raise InputError(
                f"{type(self).__name__}.step() was called in eval mode; call optimizer.train() "
                "before training steps (and optimizer.eval() before evaluating)"
            )
        averages = self.__dict__.get("_averages")
        if averages:  # a step moves y: the copies of x kept by train() no longer apply
            for param in group["params"]:
                averages.pop(param, None)
        # cₜ is the group's (all its parameters share the average's weights), as in the authors'
        # code; the weights live in the group, so they are saved with it.
        group["ckp1"], group["lr_max"], group["weight_sum"] = schedule_free_weight(
            group["step"] + 1,
            step.lr,
            group["lr_max"],
            group["weight_sum"],
            group["r"],
            group["weight_lr_power"],
        )
        super()._run(step)

    def _reference_update(
        self, group: Group, param: Tensor, grad: Tensor, state: State, host: Host, lr: float
    ) -> None:
        beta2 = group["betas"][1] if self._adaptive else 0.0
        y, z, v = schedule_free_reference(
            param,
            grad,
            state["z"],
            state["exp_avg_sq"] if self._adaptive else None,
            step=int(host["step"]),
            lr=lr,
            ckp1=group["ckp1"],
            beta1=self._momentum(group),
            beta2=beta2,
            eps=group.get("eps", 0.0),
            weight_decay=group["weight_decay"],
            maximize=group["maximize"],
        )
        param.copy_(y)
        state["z"].copy_(z)
        if v is not None:
            state["exp_avg_sq"].copy_(v)

    def _foreach_update(self, step: StepArgs) -> None:
        group, params, grads, states, lr = step.group, step.params, step.grads, step.states, step.lr
        g = effective_grads(params, grads, 0.0, group["maximize"])
        if self._adaptive:
            beta2 = group["betas"][1]
            v = [state["exp_avg_sq"] for state in states]
            foreach.mul_(v, beta2)
            foreach.addcmul_(v, g, g, value=1 - beta2)
            den = foreach.div(v, [1 - beta2**t for t in step.all_steps()])
            foreach.sqrt_(den)
            foreach.add_(den, group["eps"])
            g = foreach.div(g, den)
        if group["weight_decay"] != 0:
            g = foreach.add(g, params, alpha=group["weight_decay"])
        z = [state["z"] for state in states]
        ckp1 = group["ckp1"]
        foreach.lerp_(params, z, ckp1)
        foreach.add_(params, g, alpha=lr * (self._momentum(group) * (1 - ckp1) - 1))
        foreach.add_(z, g, alpha=-lr)

    def _fast_update(self, step: StepArgs) -> None:
        group, lr = step.group, step.lr
        ckp1 = group["ckp1"]
        beta2 = group["betas"][1] if self._adaptive else 0.0
        # the coefficient of ĝ in y's update, as the reference computes it
        c_y = lr * (self._momentum(group) * (1 - ckp1) - 1)
        adaptive = self._adaptive
        self._native_shared(
            "schedule_free",
            step,
            # without the second moment, z's pointer stands in for v (the kernel never reads it)
            {"z": "z", "v": "exp_avg_sq" if adaptive else "z"},
            dict(
                lr=lr,
                ckp1=ckp1,
                c_y=c_y,
                beta2=beta2,
                bias2=(lambda t: 1 - beta2**t) if adaptive else 1.0,
                eps=group.get("eps", 0.0),
                wd=group["weight_decay"],
                adaptive=int(adaptive),
            ),
        )


class ScheduleFreeSGD(_ScheduleFree):
    """Schedule-Free SGD (A. Defazio et al., "The Road Less Scheduled", NeurIPS 2024): SGD with
    a constant η, whose evaluation point is a weighted average of the iterates, and whose gradient
    is taken between the average and the SGD sequence.

        y = (1−β)z + βx                 (the parameters in train mode)
        ĝ = ∇J(y) + λy
        z ← z − η ĝ
        x ← (1−cₜ)x + cₜz,   cₜ = wₜ/Σᵢ wᵢ,  wₜ = tʳ (maxᵢ≤ₜ ηᵢ)^p
                                          η = 1, β = 0.9 (momentum), r = 0, p = 2

    Call ``optimizer.train()`` before training steps and ``optimizer.eval()`` before evaluating or
    saving the model: the parameters hold y in train mode and x in eval mode. Warmup: pass a
    schedule as ``lr`` (the average's weights follow the largest η so far, as in the paper).
    Peer: ``schedulefree.SGDScheduleFree`` (its ``warmup_steps=n`` is the linear warmup
    schedule η·min(1, (t)/n) here).

    Example:
        >>> opt = ScheduleFreeSGD(model.parameters(), lr=1.0)  # doctest: +SKIP
        >>> opt.train(); ...; opt.eval(); evaluate(model)  # doctest: +SKIP
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: LearningRate = 1.0,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        *,
        r: float = 0.0,
        weight_lr_power: float = 2.0,
        **options: Unpack[RuleOptions],
    ) -> None:
        super().__init__(params, hyperparameters(locals()), **options)

    def _validate(self, group: Group) -> None:
        super()._validate(group)
        _validate_interpolation(group["momentum"], "momentum (β)")

    def _momentum(self, group: Group) -> float:
        return group["momentum"]


class ScheduleFreeAdamW(_ScheduleFree):
    """Schedule-Free AdamW (A. Defazio et al., "The Road Less Scheduled", NeurIPS 2024; the
    AlgoPerf 2024 self-tuning winner): Schedule-Free SGD on Adam's normalized gradient.

        y = (1−β₁)z + β₁x               (the parameters in train mode)
        v ← β₂v + (1−β₂)g² ;  ĝ = g/(√(v/(1−β₂ᵗ)) + ε) + λy
        z ← z − η ĝ
        x ← (1−cₜ)x + cₜz,   cₜ = wₜ/Σᵢ wᵢ,  wₜ = tʳ (maxᵢ≤ₜ ηᵢ)^p
                        η = 0.0025, β = (0.9, 0.999), ε = 1e-8, λ = 0, r = 0, p = 2

    ``optimizer.train()`` / ``optimizer.eval()`` switch the parameters between y and x, as for
    :class:`ScheduleFreeSGD`. Peer: ``schedulefree.AdamWScheduleFree`` computes exactly this.

    Example:
        >>> opt = ScheduleFreeAdamW(model.parameters(), lr=2.5e-3)  # doctest: +SKIP
    """

    _adaptive = True

    def __init__(
        self,
        params: Iterable[Any],
        lr: LearningRate = 0.0025,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        *,
        r: float = 0.0,
        weight_lr_power: float = 2.0,
        **options: Unpack[RuleOptions],
    ) -> None:
        super().__init__(params, hyperparameters(locals()), **options)

    def _validate(self, group: Group) -> None:
        super()._validate(group)
        validate_moments(group)
        _validate_interpolation(group["betas"][0], "betas[0] (β₁)")

    def _momentum(self, group: Group) -> float:
        return group["betas"][0]
