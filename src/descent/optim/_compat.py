"""Every call descent makes into torch's private optimizer kernels, each checked before first use.

torch's fused kernels (``torch._fused_adam_``, ``_fused_adamw_``, ``_fused_sgd_``,
``_fused_adagrad_``) and multi-tensor ops (``torch._foreach_*``) are not public API: their
arguments or arithmetic may change between releases. descent touches them only through this module,
which, the first time one is needed on a device type, checks that it exists and runs a one-time
self-test (a tiny float64 step compared with the public formula). When the check fails, or when the
public path is forced, callers get ``None`` (a fused kernel) or a plain-torch implementation (a
foreach op) and use their public formulation instead, so a new torch slows descent down instead of
breaking it.

Some of descent's fast paths re-express the lecture's form through a fused kernel's internal
arithmetic (AMSGrad without bias correction, Adam's ε-hat, the lecture's Momentum). Those
re-expressions have their own self-tests here, so a kernel whose internals change loses only the
re-expression.

Two more private details, of another kind: torch wraps four Optimizer methods in
``torch._disable_dynamo``, whose first call imports torch._dynamo (:func:`outside_dynamo`); and a
tensor's in-place write counter (:func:`write_count`).

Force the public path with the environment variable ``DESCENT_PUBLIC_TORCH=1`` (read at first use)
or :func:`force_public` (for tests).
"""

from __future__ import annotations

import functools
import math
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor

_forced: bool | None = None  # None: decided by the environment variable
_environment_forced: bool | None = None  # the environment variable, read at first use
_checked: dict[tuple[str, str], bool] = {}


def public_forced() -> bool:
    """True when every private torch call is replaced by its public formulation."""
    global _environment_forced
    if _forced is not None:
        return _forced
    if _environment_forced is None:  # read once: this runs at every kernel call
        _environment_forced = os.environ.get("DESCENT_PUBLIC_TORCH", "") not in ("", "0")
    return _environment_forced


@contextmanager
def force_public(on: bool = True) -> Iterator[None]:
    """Within the block, use (or, with ``on=False``, allow again) only public torch calls."""
    global _forced
    previous = _forced
    _forced = on
    try:
        yield
    finally:
        _forced = previous


def _passes(name: str, device: torch.device, self_test: Callable[[torch.device], bool]) -> bool:
    """The cached outcome of ``self_test`` for ``name`` on this device type."""
    key = (name, device.type)
    if key not in _checked:
        try:
            _checked[key] = bool(self_test(device))
        except Exception:  # a kernel that is missing, renamed or re-typed fails its check
            _checked[key] = False
    return _checked[key]


def _close(a: Tensor, b: Tensor) -> bool:
    return bool(torch.allclose(a, b, rtol=1e-12, atol=1e-15))


# -- foreach ops ---------------------------------------------------------------------------------


def _item(value: Any, index: int) -> Any:
    return value[index] if isinstance(value, list | tuple) else value


def _public_op(name: str) -> Callable[..., Any]:
    """The per-tensor loop equal to ``torch._foreach_<name>``: lists are taken element by element,
    scalars are shared, and an in-place name (ending in ``_``) updates the first list."""
    if name in ("addcdiv_", "addcmul_"):
        # torch's foreach form takes the scalar (or one per tensor) as a third positional argument;
        # the tensor method takes it as ``value``.
        def pointwise(
            tensors: Sequence[Tensor], first: Any, second: Any, scalars: Any = None, **kwargs: Any
        ) -> None:
            for i, tensor in enumerate(tensors):
                if scalars is not None:
                    kwargs = {"value": _item(scalars, i)}
                getattr(tensor, name)(_item(first, i), _item(second, i), **kwargs)

        return pointwise
    if name == "maximum_":

        def maximum(tensors: Sequence[Tensor], others: Any) -> None:
            for i, tensor in enumerate(tensors):
                torch.maximum(tensor, _item(others, i), out=tensor)

        return maximum
    if name.endswith("_"):

        def inplace(tensors: Sequence[Tensor], *args: Any, **kwargs: Any) -> None:
            for i, tensor in enumerate(tensors):
                getattr(tensor, name)(*(_item(a, i) for a in args), **kwargs)

        return inplace

    function = getattr(torch, name)

    def outofplace(tensors: Sequence[Tensor], *args: Any, **kwargs: Any) -> list[Tensor]:
        return [function(t, *(_item(a, i) for a in args), **kwargs) for i, t in enumerate(tensors)]

    return outofplace


# Each op descent uses, with the sample arguments of its self-test: "T" a list of tensors like the
# first one, "S" a list of one scalar per tensor; anything else is passed as it is.
_FOREACH_SAMPLES: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {
    "add_": (("T",), {"alpha": -0.5}),
    "add": (("T",), {"alpha": 0.25}),
    "mul_": (("S",), {}),
    "mul": ((1.5,), {}),
    "div_": (("T",), {}),
    "div": (("S",), {}),
    "addcmul_": (("T", "T"), {"value": 0.125}),
    "addcmul": (("T", "T"), {"value": -1.0}),
    "addcdiv_": (("T", "T", "S"), {}),
    "sqrt_": ((), {}),
    "sqrt": ((), {}),
    "abs": ((), {}),
    "neg": ((), {}),
    "sign": ((), {}),
    "norm": ((), {}),
    "lerp_": (("T", 0.25), {}),
    "sub": (("T",), {}),
    "maximum_": (("T",), {}),
    "copy_": (("T",), {}),
}


def _foreach_self_test(name: str) -> Callable[[torch.device], bool]:
    def check(device: torch.device) -> bool:
        private = getattr(torch, f"_foreach_{name}")
        generator = torch.Generator().manual_seed(0)

        def sample() -> list[Tensor]:
            return [
                (torch.rand(n, generator=generator, dtype=torch.float64) + 0.5).to(device)
                for n in (3, 5)
            ]

        first = sample()
        args = tuple(
            sample() if a == "T" else [0.75, -1.25] if a == "S" else a
            for a in _FOREACH_SAMPLES[name][0]
        )
        kwargs = _FOREACH_SAMPLES[name][1]
        mine = [t.clone() for t in first]
        theirs = [t.clone() for t in first]
        out_private = private(mine, *args, **kwargs)
        out_public = _public_op(name)(theirs, *args, **kwargs)
        if name.endswith("_"):
            out_private, out_public = mine, theirs
        return all(_close(a, b) for a, b in zip(out_private, out_public, strict=True))

    return check


def _tensor_list(value: Any) -> bool:
    return isinstance(value, list | tuple) and bool(value) and isinstance(value[0], Tensor)


class _Foreach:
    """``foreach.add_(tensors, others, alpha=…)`` and friends: torch's multi-tensor op where it
    exists and passes its self-test on the tensors' device type, the per-tensor loop otherwise."""

    def __getattr__(self, name: str) -> Callable[..., Any]:
        # Built once per op name and kept on the instance (later lookups do not come here).
        if name not in _FOREACH_SAMPLES:
            raise AttributeError(f"descent uses no foreach op {name!r}; add it to _FOREACH_SAMPLES")
        public = _public_op(name)
        private_name, check_name = f"_foreach_{name}", f"foreach_{name}"

        def op(tensors: Sequence[Tensor], *args: Any, **kwargs: Any) -> Any:
            if not tensors:
                return None if name.endswith("_") else []
            if name in ("addcdiv_", "addcmul_") and len(args) == 3 and _tensor_list(args[2]):
                # One 0-d tensor per tensor (the device path's step sizes): torch's op takes
                # only numbers there, so scale the quotient (or product) first.
                first, second, scales = args
                combined = getattr(self, name[4:7])(first, second)
                self.mul_(combined, scales)
                return self.add_(tensors, combined)
            if torch.compiler.is_compiling():
                # dynamo traces torch's foreach ops (the self-test's cache would break the graph)
                return getattr(torch, private_name)(list(tensors), *args, **kwargs)
            if not public_forced():
                passed = _checked.get((check_name, tensors[0].device.type))
                if passed is None:
                    passed = _passes(check_name, tensors[0].device, _foreach_self_test(name))
                if passed:
                    return getattr(torch, private_name)(list(tensors), *args, **kwargs)
            return public(tensors, *args, **kwargs)

        if not torch.compiler.is_compiling():  # no side effect inside a traced step
            setattr(self, name, op)
        return op


#: The multi-tensor ops, checked (see :class:`_Foreach`).
foreach = _Foreach()


# -- fused kernels -------------------------------------------------------------------------------


def _tiny(device: torch.device, count: int) -> list[Tensor]:
    generator = torch.Generator().manual_seed(1)
    return [
        torch.randn(4, generator=generator, dtype=torch.float64).to(device) for _ in range(count)
    ]


def _adam_kernel_test(
    kernel_name: str, *, amsgrad: bool, form: str = "torch"
) -> Callable[[torch.device], bool]:
    """Two steps of torch's fused Adam kernel ``kernel_name`` against descent's reference step.

    ``form`` "torch": the kernel as torch uses it (bias-corrected Adam, AdamW, AMSGrad on v̂, with
    weight decay). The re-expressions through the kernel's internal bias corrections, without
    weight decay: "amsgrad_lecture" (the lecture's AMSGrad, no bias correction: η and ε passed as
    η(1−β₁ᵗ)/√(1−β₂ᵗ) and ε/√(1−β₂ᵗ)) and "epsilon_hat" (Keras' ε-hat Adam: ε passed as
    ε/√(1−β₂ᵗ))."""

    def check(device: torch.device) -> bool:
        from descent.optim.adam import adam_reference, amsgrad_reference  # adam imports this

        kernel = getattr(torch, kernel_name)
        param, grad = _tiny(device, 2)
        m, v, vmax = (torch.zeros_like(param) for _ in range(3))
        step = torch.zeros((), dtype=torch.float32, device=device)
        lr, beta1, beta2, eps = 0.1, 0.8, 0.9, 1e-3
        wd = 0.05 if form == "torch" else 0.0
        reference: Sequence[Tensor] = (param.clone(), m.clone(), v.clone(), vmax.clone())
        for t in (1, 2):
            step += 1
            hyper = dict(step=t, lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=wd)
            kernel_lr, kernel_eps = lr, eps
            if form != "torch":
                kernel_eps = eps / math.sqrt(1 - beta2**t)
            if form == "amsgrad_lecture":
                kernel_lr = lr * (1 - beta1**t) / math.sqrt(1 - beta2**t)
            kernel(
                [param],
                [grad],
                [m],
                [v],
                [vmax] if amsgrad else [],
                [step],
                lr=kernel_lr,
                beta1=beta1,
                beta2=beta2,
                weight_decay=wd,
                eps=kernel_eps,
                amsgrad=amsgrad,
                maximize=False,
            )
            p_ref, *moments = reference
            if amsgrad:
                correct = form == "torch"
                reference = amsgrad_reference(
                    p_ref, grad, *moments, bias_correction=correct, **hyper
                )
            else:
                reference = adam_reference(
                    p_ref,
                    grad,
                    *moments[:2],
                    epsilon_hat=form == "epsilon_hat",
                    decoupled_weight_decay=kernel_name == "_fused_adamw_",
                    **hyper,
                )
        return all(_close(a, b) for a, b in zip((param, m, v), reference, strict=False))

    return check


def _sgd_kernel_test(
    formula: Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor]], **kernel: Any
) -> Callable[[torch.device], bool]:
    """Two steps of torch's fused SGD with the arguments ``kernel`` against ``formula`` (θ, b, g)
    -> (θ, b)."""

    def check(device: torch.device) -> bool:
        param, grad = _tiny(device, 2)
        buffer = torch.zeros_like(param)
        p_ref, b_ref = param.clone(), buffer.clone()
        for _ in range(2):
            torch._fused_sgd_(
                [param], [grad], [buffer], maximize=False, is_first_step=False, **kernel
            )
            p_ref, b_ref = formula(p_ref, b_ref, grad)
        return _close(param, p_ref) and _close(buffer, b_ref)

    return check


def _torch_momentum(nesterov: bool) -> Callable[[torch.device], bool]:
    """torch's momentum SGD (dampening τ, weight decay, Nesterov):
    b ← γb + (1−τ)(g + λθ) ; θ ← θ − η(g + λθ + γb if nesterov else b)."""
    lr, momentum, dampening, wd = 0.1, 0.7, 0.3, 0.05

    def formula(param: Tensor, buffer: Tensor, grad: Tensor) -> tuple[Tensor, Tensor]:
        g = grad + wd * param
        buffer = momentum * buffer + (1 - dampening) * g
        return param - lr * (g + momentum * buffer if nesterov else buffer), buffer

    return _sgd_kernel_test(
        formula, weight_decay=wd, momentum=momentum, lr=lr, dampening=dampening, nesterov=nesterov
    )


def _sgd_self_test(device: torch.device) -> bool:
    """torch's momentum SGD, heavy-ball and Nesterov, against its formula."""
    return all(_torch_momentum(nesterov)(device) for nesterov in (False, True))


def _adagrad_self_test(device: torch.device) -> bool:
    param, grad = _tiny(device, 2)
    total = torch.full_like(param, 0.1)
    step = torch.zeros((), dtype=torch.float32, device=device)
    p_ref, s_ref = param.clone(), total.clone()
    lr, lr_decay, wd, eps = 0.1, 0.2, 0.05, 1e-3
    for t in (1, 2):
        step += 1
        torch._fused_adagrad_(
            [param],
            [grad],
            [total],
            [step],
            lr=lr,
            lr_decay=lr_decay,
            weight_decay=wd,
            eps=eps,
            maximize=False,
        )
        g = grad + wd * p_ref
        s_ref = s_ref + g * g
        p_ref = p_ref - lr / (1 + (t - 1) * lr_decay) * g / (torch.sqrt(s_ref) + eps)
    return _close(param, p_ref) and _close(total, s_ref)


_FUSED_SELF_TESTS: dict[str, Callable[[torch.device], bool]] = {
    "_fused_adam_": _adam_kernel_test("_fused_adam_", amsgrad=False),
    "_fused_adam_amsgrad": _adam_kernel_test("_fused_adam_", amsgrad=True),
    "_fused_adamw_": _adam_kernel_test("_fused_adamw_", amsgrad=False),
    "_fused_sgd_": _sgd_self_test,
    "_fused_adagrad_": _adagrad_self_test,
}


def fused(name: str, device: torch.device, *, amsgrad: bool = False) -> Callable[..., Any] | None:
    """torch's fused kernel ``name`` (e.g. ``"_fused_adam_"``) if it exists and passed its self-test
    on this device type, else None (the caller runs its public formulation)."""
    if public_forced():
        return None
    key = name + ("amsgrad" if amsgrad else "")
    if not _passes(key, device, _FUSED_SELF_TESTS[key]):
        return None
    return getattr(torch, name)


# -- re-expressions through a kernel's internals ---------------------------------------------------


def _momentum_lecture(lr: float = 0.1, momentum: float = 0.7) -> Callable[[torch.device], bool]:
    """The lecture's v ← γv + ηg ; θ ← θ − v through fused SGD with dampening 1 − η and lr 1."""

    def formula(param: Tensor, velocity: Tensor, grad: Tensor) -> tuple[Tensor, Tensor]:
        velocity = momentum * velocity + lr * grad
        return param - velocity, velocity

    return _sgd_kernel_test(
        formula, weight_decay=0.0, momentum=momentum, lr=1.0, dampening=1.0 - lr, nesterov=False
    )


_REEXPRESSIONS: dict[str, Callable[[torch.device], bool]] = {
    "amsgrad_lecture": _adam_kernel_test("_fused_adam_", amsgrad=True, form="amsgrad_lecture"),
    "adam_epsilon_hat": _adam_kernel_test("_fused_adam_", amsgrad=False, form="epsilon_hat"),
    "momentum_lecture": _momentum_lecture(),
}


def reexpression(name: str, device: torch.device) -> bool:
    """True when the fused kernel behind re-expression ``name`` (a key of ``_REEXPRESSIONS``) still
    computes what the re-expression assumes, on this device type."""
    return not public_forced() and _passes(name, device, _REEXPRESSIONS[name])


def outside_dynamo(method: Callable[..., Any]) -> Callable[..., Any]:
    """torch.optim.Optimizer's ``method`` without its ``torch._disable_dynamo`` wrapper while
    torch._dynamo is not imported.

    torch wraps ``add_param_group``, ``zero_grad``, ``state_dict`` and ``load_state_dict`` in
    ``torch._disable_dynamo``, whose first call imports torch._dynamo (1.5 s on a 2-core machine,
    more than a short run's training, and the first fit of a small linear model pays it too) only
    to mark the method as not to be traced. While torch._dynamo is not imported nothing traces,
    so the undecorated method (the ``__wrapped__`` that ``functools.wraps`` leaves) does the
    same; once it is imported (torch.compile), or with the public path forced, the decorated
    method runs. A torch whose wrapper leaves no ``__wrapped__`` gets the decorated one always."""
    plain = getattr(method, "__wrapped__", None)
    if plain is None:
        return method

    @functools.wraps(plain)
    def call(*args: Any, **kwargs: Any) -> Any:
        if "torch._dynamo" in sys.modules or public_forced():
            return method(*args, **kwargs)
        return plain(*args, **kwargs)

    return call


def write_count(tensor: Tensor) -> int | None:
    """How many in-place writes ``tensor`` has had (torch's ``Tensor._version``, which autograd
    keeps), so a copy taken earlier can be known to still equal it; None where this torch has
    no such counter (the caller then keeps no copy). It is a counter, not arithmetic, so the
    forced public path (which replaces private kernels) keeps it."""
    version = getattr(tensor, "_version", None)
    return version if isinstance(version, int) else None
