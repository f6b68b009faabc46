"""Prodigy (Mishchenko & Defazio 2024): Adam whose step size d is estimated on the fly from the
distance travelled, so the learning rate stays at 1."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Unpack

import torch
from torch import Tensor

from descent import validate
from descent.errors import InputError
from descent.optim._compat import foreach
from descent.optim.adam import validate_moments
from descent.optim.base import DescentOptimizer, LearningRate, effective_grad, effective_grads
from descent.optim.fastpath import Group, State, StepArgs
from descent.optim.options import RuleOptions, hyperparameters


def prodigy_estimate(
    d: float,
    d_max: float,
    d0: float,
    numerator: float,
    denominator: float,
    d_coef: float,
    growth_rate: float,
) -> tuple[float, float]:
    """d̂ = d_coef·r/‖s‖₁ ; d ← max(d, d̂) on the first estimate ; d_max ← max(d_max, d̂) ;
    d ← min(d_max, d·growth_rate).  Returns (d, d_max)."""
    d_hat = d_coef * numerator / denominator
    if d == d0:
        d = max(d, d_hat)
    d_max = max(d_max, d_hat)
    return min(d_max, d * growth_rate), d_max


def prodigy_step_size(
    step: int,
    lr: float,
    d: float,
    beta1: float,
    beta2: float,
    beta3: float | None,
    bias_correction: bool,
) -> tuple[float, float]:
    """(β₃, dη): β₃ = √β₂ unless given ; dη = d·η·(√(1−β₂ᵗ)/(1−β₁ᵗ) if bias_correction else 1)."""
    beta3 = math.sqrt(beta2) if beta3 is None else beta3
    scale = math.sqrt(1 - beta2**step) / (1 - beta1**step) if bias_correction else 1.0
    return beta3, d * lr * scale


def prodigy_reference(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    sums: list[Tensor],
    starts: list[Tensor],
    *,
    step: int,
    lr: float,
    d: float,
    d_max: float,
    numerator: float,
    d0: float = 1e-6,
    beta1: float = 0.9,
    beta2: float = 0.999,
    beta3: float | None = None,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    decouple: bool = True,
    bias_correction: bool = False,
    safeguard_warmup: bool = False,
    d_coef: float = 1.0,
    growth_rate: float = math.inf,
    maximize: bool = False,
) -> tuple[list[Tensor], list[Tensor], list[Tensor], list[Tensor], float, float, float]:
    """One step of a whole group (d is shared by its tensors), with β₃ = √β₂ by default:

        dη = d·η·(√(1−β₂ᵗ)/(1−β₁ᵗ) if bias_correction else 1)
        r ← β₃ r + (d/d₀)·dη·Σ ⟨g, θ₀ − θ⟩
        m ← β₁m + d(1−β₁)g ;  v ← β₂v + d²(1−β₂)g²
        s ← β₃ s + (d/d₀)·dη·g            (safeguard_warmup: (d/d₀)·d·g)
        d, d_max ← prodigy_estimate(d, d_max, d₀, r, Σ‖s‖₁)   (no step while Σ‖s‖₁ = 0)
        θ ← θ − dη λ θ (decouple; else g ← g + λθ first) ;  θ ← θ − dη m/(√v + d ε)

    Returns (θ, m, v, s, d, d_max, r).
    """
    beta3, dlr = prodigy_step_size(step, lr, d, beta1, beta2, beta3, bias_correction)
    numerator = numerator * beta3
    new_m, new_v, new_s, gs = [], [], [], []
    for param, grad, m, v, s, start in zip(
        params, grads, exp_avgs, exp_avg_sqs, sums, starts, strict=True
    ):
        g = effective_grad(param, grad, 0.0 if decouple else weight_decay, maximize)
        gs.append(g)
        if lr > 0:
            numerator += (d / d0) * dlr * float(torch.sum(g * (start - param)))
            m = beta1 * m + d * (1 - beta1) * g
            v = beta2 * v + d * d * (1 - beta2) * g * g
            s = beta3 * s + (d / d0) * (d if safeguard_warmup else dlr) * g
        new_m.append(m)
        new_v.append(v)
        new_s.append(s)
    denominator = sum(float(torch.sum(torch.abs(s))) for s in new_s)
    if denominator == 0:
        return list(params), new_m, new_v, new_s, d, d_max, numerator / beta3
    if lr > 0:
        d, d_max = prodigy_estimate(d, d_max, d0, numerator, denominator, d_coef, growth_rate)
    new_params = []
    for param, m, v in zip(params, new_m, new_v, strict=True):
        if decouple and weight_decay != 0:
            param = param - weight_decay * dlr * param
        new_params.append(param - dlr * m / (torch.sqrt(v) + d * eps))
    return new_params, new_m, new_v, new_s, d, d_max, numerator


class Prodigy(DescentOptimizer):
    """Prodigy (K. Mishchenko & A. Defazio, "Prodigy: An Expeditiously Adaptive Parameter-Free
    Learner", ICML 2024): Adam with a step size d estimated from the gradients' correlation with
    the distance travelled from θ₀; η stays 1 (or a schedule's shape, e.g. cosine to 0).

        dη = d·η
        r ← β₃ r + (d/d₀)·dη·Σ ⟨g, θ₀ − θ⟩
        m ← β₁m + d(1−β₁)g ;  v ← β₂v + d²(1−β₂)g²
        s ← β₃ s + (d/d₀)·dη·g
        d̂ = d_coef·r/Σ‖s‖₁ ;  d ← max(d, d̂) at the first estimate (d = d₀)
        d_max ← max(d_max, d̂) ;  d ← min(d_max, d·growth_rate)
        θ ← θ − dη λθ ;  θ ← θ − dη m/(√v + dε)
              η = 1, β = (0.9, 0.999), β₃ = √β₂, ε = 1e-8, d₀ = 1e-6, λ = 0 (decoupled)

    d is estimated per parameter group (the group's tensors share it). The authors' package
    ``prodigyopt.Prodigy`` computes exactly this for one group (it shares one d across groups).
    ``bias_correction``, ``safeguard_warmup``, ``d_coef``, ``growth_rate`` and ``decouple`` are
    the authors' options, with their defaults. Each step reads two sums back to the host.

    Example:
        >>> opt = Prodigy(model.parameters(), lr=1.0, weight_decay=0.01)  # doctest: +SKIP
    """

    elementwise = False  # see DescentOptimizer.elementwise

    # d is estimated on the host from two sums read back every step.
    supports_differentiable = False
    device_steps = False

    flags = ("decouple", "bias_correction", "safeguard_warmup")

    def __init__(
        self,
        params: Iterable[Any],
        lr: LearningRate = 1.0,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        *,
        beta3: float | None = None,
        d0: float = 1e-6,
        d_coef: float = 1.0,
        growth_rate: float = math.inf,
        decouple: bool = True,
        bias_correction: bool = False,
        safeguard_warmup: bool = False,
        **options: Unpack[RuleOptions],
    ) -> None:
        super().__init__(params, hyperparameters(locals()), **options)

    def _validate(self, group: Group) -> None:
        super()._validate(group)
        validate_moments(group)
        if group["beta3"] is not None:
            validate.unit_interval(group["beta3"], "beta3 (β₃)")
        validate.positive(group["d0"], "d0 (d₀)")
        validate.positive(group["d_coef"], "d_coef")
        if not (isinstance(group["growth_rate"], int | float) and group["growth_rate"] >= 1):
            rate = group["growth_rate"]
            raise InputError(f"growth_rate must be a number ≥ 1 (math.inf: none), got {rate!r}")
        group.setdefault("d", group["d0"])
        group.setdefault("d_max", group["d0"])
        group.setdefault("d_numerator", 0.0)

    def _init_state(self, param: Tensor, group: Group) -> State:
        state = self.zeros(param, group, ["exp_avg", "exp_avg_sq", "s", "p0"])
        state["p0"].copy_(param)
        return state

    @staticmethod
    def _step_size(group: Group, step: int, lr: float) -> tuple[float, float]:
        """(β₃, dη) of this group at step t (:func:`prodigy_step_size`)."""
        beta1, beta2 = group["betas"]
        return prodigy_step_size(
            step, lr, group["d"], beta1, beta2, group["beta3"], group["bias_correction"]
        )

    @staticmethod
    def _estimate(
        group: Group, numerator: float, denominator: float, update: bool
    ) -> tuple[float, float]:
        """(d, d_max) after this step: :func:`prodigy_estimate` when ``update`` (the callers'
        condition: η > 0), else the group's as they are."""
        d, d_max = group["d"], group["d_max"]
        if not update:
            return d, d_max
        return prodigy_estimate(
            d, d_max, group["d0"], numerator, denominator, group["d_coef"], group["growth_rate"]
        )

    def _run(self, step: StepArgs) -> None:
        step = self._as_real(step)
        if step.group["impl"] != "reference" and self._path(step.group) == "fast":
            self._fast_update(step)
        else:
            self._lifted_group(step)

    def _lifted_group(self, step: StepArgs) -> None:
        """The reference (impl="reference") or foreach step on the tensors lifted to their
        compute dtype. d couples every tensor of the group: lift all (device, dtype) buckets, step
        them together, write them back."""
        buckets: dict[tuple[torch.device, torch.dtype, torch.dtype], list[int]] = {}
        for i, (param, state) in enumerate(zip(step.params, step.states, strict=True)):
            key = (param.device, param.dtype, self._compute_dtype(param, state))
            buckets.setdefault(key, []).append(i)
        works = [
            self._lift(step.subset(indices), ordinal)
            for ordinal, indices in enumerate(buckets.values())
        ]
        lifted = StepArgs(
            step.group,
            [p for work in works for p in work.step.params],
            [g for work in works for g in work.step.grads],
            [s for work in works for s in work.step.states],
            [h for work in works for h in work.step.hosts],
            step.lr,
        )
        if step.group["impl"] == "reference":
            self._reference_group(lifted)
        else:
            self._foreach_group(lifted)
        for work in works:
            work.lower()

    @staticmethod
    def _reference_group(step: StepArgs) -> None:
        group, params, states = step.group, step.params, step.states
        beta1, beta2 = group["betas"]
        names = ("exp_avg", "exp_avg_sq", "s")
        new_params, m, v, s, d, d_max, numerator = prodigy_reference(
            params,
            step.grads,
            *([state[name] for state in states] for name in names),
            [state["p0"] for state in states],
            step=int(step.hosts[0]["step"]),
            lr=step.lr,
            d=group["d"],
            d_max=group["d_max"],
            numerator=group["d_numerator"],
            d0=group["d0"],
            beta1=beta1,
            beta2=beta2,
            beta3=group["beta3"],
            eps=group["eps"],
            weight_decay=group["weight_decay"],
            decouple=group["decouple"],
            bias_correction=group["bias_correction"],
            safeguard_warmup=group["safeguard_warmup"],
            d_coef=group["d_coef"],
            growth_rate=group["growth_rate"],
            maximize=group["maximize"],
        )
        for i, state in enumerate(states):
            params[i].copy_(new_params[i])
            for name, values in zip(names, (m, v, s), strict=True):
                state[name].copy_(values[i])
        group["d"], group["d_max"], group["d_numerator"] = d, d_max, numerator

    def _foreach_group(self, step: StepArgs) -> None:
        group, params, grads, states, lr = step.group, step.params, step.grads, step.states, step.lr
        beta1, beta2 = group["betas"]
        beta3, dlr = self._step_size(group, int(step.hosts[0]["step"]), lr)
        d, d0, wd = group["d"], group["d0"], group["weight_decay"]
        grads = effective_grads(params, grads, 0.0 if group["decouple"] else wd, group["maximize"])
        m = [state["exp_avg"] for state in states]
        v = [state["exp_avg_sq"] for state in states]
        s = [state["s"] for state in states]
        numerator = group["d_numerator"] * beta3
        if lr > 0:
            travelled = foreach.sub([state["p0"] for state in states], params)
            dots = torch.stack([torch.sum(a * b) for a, b in zip(grads, travelled, strict=True)])
            numerator += (d / d0) * dlr * float(dots.sum())
            foreach.mul_(m, beta1)
            foreach.add_(m, grads, alpha=d * (1 - beta1))
            foreach.mul_(v, beta2)
            foreach.addcmul_(v, grads, grads, value=d * d * (1 - beta2))
            foreach.mul_(s, beta3)
            foreach.add_(s, grads, alpha=(d / d0) * (d if group["safeguard_warmup"] else dlr))
        denominator = float(torch.stack(foreach.norm(s, 1)).sum())
        if denominator == 0:
            return
        d, d_max = self._estimate(group, numerator, denominator, lr > 0)
        if wd != 0 and group["decouple"]:
            foreach.add_(params, params, alpha=-wd * dlr)
        den = foreach.sqrt(v)
        foreach.add_(den, d * group["eps"])
        foreach.addcdiv_(params, m, den, [-dlr] * len(params))
        group["d"], group["d_max"], group["d_numerator"] = d, d_max, numerator

    def _fast_update(self, step: StepArgs) -> None:
        """The whole group's step: the C passes on the tensors as they are when the kernels take
        every tensor, else the foreach formulation on the lifted tensors."""
        if not self._native_group(step):
            self._lifted_group(step)

    def _native_group(self, step: StepArgs) -> bool:
        """The group's step in two C passes over its tensors (False, nothing done, unless the
        kernels take every tensor): pass 1 updates s and sums Σ g(θ₀ − θ) and Σ|s| per tensor;
        the host then estimates d; pass 2 updates m and v (they need only the old d, but moving
        them here saves pass 1 their reads and writes) and applies θ's step, which needs the new
        d."""
        from descent.optim import _native

        group, params, grads, states, lr = step.group, step.params, step.grads, step.states, step.lr
        if not params or step.native_split()[1]:
            return False
        beta1, beta2 = group["betas"]
        beta3, dlr = self._step_size(group, int(step.hosts[0]["step"]), lr)
        d, d0, wd = group["d"], group["d0"], group["weight_decay"]
        update = int(lr > 0)
        sign = -1.0 if group["maximize"] else 1.0
        coupled_wd = 0.0 if group["decouple"] else wd  # in g: ±g + λθ
        sums = torch.empty(len(params), 2, dtype=torch.float64)
        address = sums.data_ptr()  # row i at address + 16 i: no view per tensor
        shared = dict(
            beta3=beta3,
            c_s=(d / d0) * (d if group["safeguard_warmup"] else dlr),
            wd=coupled_wd,
            sign=sign,
            update=update,
        )
        _native.run_columns(
            "prodigy_sums",
            dict(
                shared,
                p=params,
                g=grads,
                p0=[state["p0"] for state in states],
                s=[state["s"] for state in states],
                sums=list(range(address, address + 16 * len(params), 16)),
            ),
        )
        totals = sums.tolist()
        numerator = group["d_numerator"] * beta3
        if lr > 0:
            for dot, _ in totals:
                numerator += (d / d0) * dlr * dot
        denominator = sum(l1 for _, l1 in totals)
        apply = int(denominator != 0)
        d, d_max = self._estimate(group, numerator, denominator, bool(apply) and lr > 0)
        shared = dict(
            c_m=group["d"] * (1 - beta1),
            c_v=group["d"] * group["d"] * (1 - beta2),
            beta1=beta1,
            beta2=beta2,
            wd=coupled_wd,
            sign=sign,
            decay=wd * dlr if wd != 0 and group["decouple"] else 0.0,
            step=dlr,
            d_eps=d * group["eps"],
            update=update,
            apply=apply,
        )
        # last tensor first: pass 1 left the last ones' θ and g in the cache
        _native.run_columns(
            "prodigy_apply",
            dict(
                shared,
                p=params[::-1],
                g=grads[::-1],
                m=[state["exp_avg"] for state in reversed(states)],
                v=[state["exp_avg_sq"] for state in reversed(states)],
            ),
        )
        if apply:  # (Σ|s| = 0: d, d_max and r stay, as in the reference)
            group["d"], group["d_max"], group["d_numerator"] = d, d_max, numerator
        return True
