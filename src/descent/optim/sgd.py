"""Plain gradient descent, Momentum and Nesterov's accelerated gradient."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Unpack

from torch import Tensor

from descent import validate
from descent.errors import InputError
from descent.optim import _compat
from descent.optim._compat import foreach
from descent.optim.base import DescentOptimizer, LearningRate, effective_grad, effective_grads
from descent.optim.fastpath import Group, StepArgs
from descent.optim.options import RuleOptions, hyperparameters

#: Mean elements per tensor from which plain SGD runs torch's axpy rather than its fused kernel.
AXPY_MIN_NUMEL = 1 << 16

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
    on, not here. Equals ``torch.optim.SGD(params, lr)`` (momentum 0) and Keras' SGD. Formulas and
    peers: docs/optimizers.md.

    Args:
        lr: η, a float ≥ 0 or a schedule (callable of the update number n = 0, 1, …).
        weight_decay: λ of the L2 term: g ← g + λθ.
        maximize: ascend instead (g ← −g).
        impl: "fast" (torch's fused kernel where it applies) or "reference" (the formula above).
        state_dtype: accepted for a uniform signature; plain descent keeps no state.

    Example:
        >>> opt = SGD(model.parameters(), lr=0.1)  # doctest: +SKIP
    """

    counts_steps = False  # plain descent keeps no state; the update count lives in the group
    reference = staticmethod(sgd_reference)

    def __init__(
        self,
        params: Iterable[Any],
        lr: LearningRate = 0.01,
        weight_decay: float = 0.0,
        **options: Unpack[RuleOptions],
    ) -> None:
        super().__init__(params, hyperparameters(locals()), **options)

    def _foreach_update(self, step: StepArgs) -> None:
        group, params, grads, lr = step.group, step.params, step.grads, step.lr
        g = effective_grads(params, grads, group["weight_decay"], group["maximize"])
        foreach.add_(params, g, alpha=-lr)

    def _fast_update(self, step: StepArgs) -> None:
        group, lr = step.group, step.lr
        buckets, rest = step.fused_buckets()
        # θ ← θ − η g on large tensors: one in-place axpy per tensor (torch's foreach SGD), a few
        # % faster than the fused kernel there; on small ones the fused kernel, which saves the
        # per-tensor dispatch (about 0.4 µs: 10% of a step of ResNet-50's 161 tensors at ¼ width).
        axpy = (
            group["weight_decay"] == 0
            and not group["maximize"]
            and step.mean_numel() >= AXPY_MIN_NUMEL
        )
        for indices in buckets:
            if axpy:
                foreach.add_(*step.lists(indices), alpha=-lr)
                continue
            kernel = _compat.fused("_fused_sgd_", step.params[indices[0]].device)
            if kernel is None:
                rest += indices
                continue
            kernel(
                *step.lists(indices, None),
                weight_decay=group["weight_decay"],
                momentum=0.0,
                lr=lr,
                dampening=0.0,
                nesterov=False,
                maximize=group["maximize"],
                is_first_step=False,
            )
        self._foreach_rest(step, rest)


class _MomentumBase(DescentOptimizer):
    _nesterov = False
    counts_steps = False  # only the velocity, as torch keeps it; the update count is the group's
    state_names = ("momentum_buffer",)
    flags = ("lr_in_buffer",)

    def __init__(
        self,
        params: Iterable[Any],
        lr: LearningRate = 0.01,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        *,
        lr_in_buffer: bool = True,
        **options: Unpack[RuleOptions],
    ) -> None:
        # torch's SGD reads dampening and nesterov from a group: with them a state dict goes to and
        # from torch.optim.SGD (which equals lr_in_buffer=False).
        hyper = hyperparameters(locals())
        super().__init__(params, {**hyper, "dampening": 0.0, "nesterov": self._nesterov}, **options)

    def _validate(self, group: Group) -> None:
        super()._validate(group)
        validate.unit_interval(group["momentum"], "momentum (γ)")
        if group["dampening"] != 0:
            raise InputError(
                f"dampening must be 0 (descent's momentum rules have none), got "
                f"{group['dampening']!r}"
            )
        if group["nesterov"] != self._nesterov:
            raise InputError(
                f"nesterov={group['nesterov']!r} does not fit {type(self).__name__}; use "
                "descent.optim.Nesterov for Nesterov's momentum and Momentum for Polyak's"
            )

    def _foreach_update(self, step: StepArgs) -> None:
        group, params, grads, states, lr = step.group, step.params, step.grads, step.states, step.lr
        g = effective_grads(params, grads, group["weight_decay"], group["maximize"])
        buffers = [state["momentum_buffer"] for state in states]
        momentum = group["momentum"]
        foreach.mul_(buffers, momentum)
        if group["lr_in_buffer"]:  # v ← γv + ηg ; θ ← θ − v  (Nesterov: θ ← θ − (γv + ηg))
            foreach.add_(buffers, g, alpha=lr)
            if self._nesterov:
                foreach.add_(params, buffers, alpha=-momentum)
                foreach.add_(params, g, alpha=-lr)
            else:
                foreach.add_(params, buffers, alpha=-1.0)
        else:  # b ← γb + g ; θ ← θ − ηb  (Nesterov: θ ← θ − η(g + γb))
            foreach.add_(buffers, g)
            if self._nesterov:
                foreach.add_(params, g, alpha=-lr)
                foreach.add_(params, buffers, alpha=-lr * momentum)
            else:
                foreach.add_(params, buffers, alpha=-lr)

    def _fast_update(self, step: StepArgs) -> None:
        group, lr = step.group, step.lr
        lecture = group["lr_in_buffer"]
        if lecture and self._nesterov:
            # torch's fused SGD cannot keep the lecture's velocity v (its buffer is v / η); a
            # single-pass C kernel does, and what it cannot take runs the foreach formulation.
            self._native_shared(
                "nesterov",
                step,
                {"v": "momentum_buffer"},
                dict(lr=lr, momentum=group["momentum"], wd=group["weight_decay"]),
            )
            return
        buckets, rest = step.fused_buckets()
        for indices in buckets:
            device = step.params[indices[0]].device
            kernel = _compat.fused("_fused_sgd_", device)
            if kernel is None or (lecture and not _compat.reexpression("momentum_lecture", device)):
                rest += indices
                continue
            if lecture:
                # Dampening 1 − η turns torch's b ← γ b + (1 − d) g into v ← γ v + η g, and
                # a kernel lr of 1 makes the step θ ← θ − v: the lecture's form in one pass.
                kernel_lr, dampening = 1.0, 1.0 - lr
            else:
                # torch's own form: b ← γ b + g ; θ ← θ − η b (or − η(g + γ b) for Nesterov).
                kernel_lr, dampening = lr, 0.0
            kernel(
                *step.lists(indices, "momentum_buffer"),
                weight_decay=group["weight_decay"],
                momentum=group["momentum"],
                lr=kernel_lr,
                dampening=dampening,
                nesterov=self._nesterov,
                maximize=group["maximize"],
                is_first_step=False,
            )
        self._foreach_rest(step, rest)


class Momentum(_MomentumBase):
    """Gradient descent with momentum (Polyak 1964; Qian 1999).

    Lecture (default, ``lr_in_buffer=True``, also Keras' SGD(momentum)):
        v ← γ v + η g ;  θ ← θ − v

    torch (``lr_in_buffer=False``, equals ``torch.optim.SGD(lr, momentum=γ)``):
        b ← γ b + g ;  θ ← θ − η b

    The two are the same for a constant η (v = η b). Under a schedule they differ: torch rescales
    the whole buffer by the new η, the lecture's form keeps the old rates inside v.
    See docs/optimizers.md.

    Args:
        lr: η (float ≥ 0 or schedule of the update number).
        momentum: γ in [0, 1).
        weight_decay: λ of the L2 term g ← g + λθ.
        lr_in_buffer: True for the lecture's/Keras' form, False for torch's.
        maximize: ascend instead.
        impl: "fast" (torch's fused SGD kernel with the hyperparameters re-expressed; for the
            lecture's Nesterov, descent's single-pass C kernel) or "reference".
        state_dtype: dtype of the velocity (default: float32 for bfloat16/float16 parameters).

    Example:
        >>> opt = Momentum(model.parameters(), lr=0.01, momentum=0.9)  # doctest: +SKIP
    """

    reference = staticmethod(momentum_reference)


class Nesterov(_MomentumBase):
    """Nesterov's accelerated gradient (NAG; Nesterov 1983, Sutskever et al. 2013).

    Lecture: v ← γ v + η ∇J(θ − γ v) ;  θ ← θ − v.

    Implemented in the stored look-ahead form (the parameters hold φ = θ − γ v, so the gradient is
    taken where the parameters are, as in any training loop):

        v ← γ v + η g ;  φ ← φ − (γ v + η g)         (lr_in_buffer=True, Keras' form)
        b ← γ b + g ;    φ ← φ − η (g + γ b)         (lr_in_buffer=False, torch.optim.SGD(
                                                      momentum=γ, nesterov=True))

    Both forms visit the same look-ahead points as the lecture's (tests show it on a quadratic);
    they are equal to each other for a constant η. See docs/optimizers.md.

    Args: as :class:`Momentum`.

    Example:
        >>> opt = Nesterov(model.parameters(), lr=0.01)  # doctest: +SKIP
    """

    _nesterov = True
    reference = staticmethod(nesterov_reference)
