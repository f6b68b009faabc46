"""Kink detection: the branch every piecewise operation takes, recorded while the function
runs, so that a difference quotient straddling a kink is flagged.

Two recorders, one chosen once per process:

- at the aten level, with torch's dispatch mode (``torch.utils._python_dispatch``, a private
  module: imported only here, and used only after a self-test shows it records a ReLU's branches);
  it sees every operation, however it was called (modules, functionals, tensor methods);
- at the Python level, with the public ``torch.overrides.TorchFunctionMode``: the same table for
  the functions and tensor methods people call (``F.relu``, ``x.abs()``, ``torch.max``, …); the
  fallback when the private module is missing, fails its self-test, or ``DESCENT_PUBLIC_TORCH=1``
  (the switch of :mod:`descent.optim._compat`) asks for public calls only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode

from descent.optim import _compat

try:  # private (torch ≥ 1.13); see the module docstring
    from torch.utils._python_dispatch import TorchDispatchMode as _DispatchMode
except ImportError:  # pragma: no cover - depends on the installed torch
    _DispatchMode = TorchFunctionMode  # a stand-in base, never instantiated as a recorder

# -- branch recording, for kink detection ------------------------------------------------------

_aten = torch.ops.aten
# op -> which branch its output depends on, as a tensor to compare between evaluations
_BRANCHES: dict[Any, Callable[[tuple, Any], Any]] = {
    _aten.relu.default: lambda args, out: args[0] > 0,
    _aten.abs.default: lambda args, out: args[0] >= 0,
    _aten.sign.default: lambda args, out: out,
    _aten.leaky_relu.default: lambda args, out: args[0] > 0,
    _aten.hardtanh.default: lambda args, out: (
        (args[0] > args[1], args[0] < args[2]) if len(args) > 2 else (args[0] > -1, args[0] < 1)
    ),
    _aten.threshold.default: lambda args, out: args[0] > args[1],
    _aten.clamp.default: lambda args, out: out != args[0],
    _aten.clamp_min.default: lambda args, out: args[0] > args[1],
    _aten.clamp_max.default: lambda args, out: args[0] < args[1],
    _aten.maximum.default: lambda args, out: args[0] >= args[1],
    _aten.minimum.default: lambda args, out: args[0] <= args[1],
    _aten.max.dim: lambda args, out: out[1],
    _aten.min.dim: lambda args, out: out[1],
    _aten.max.default: lambda args, out: torch.argmax(args[0]),
    _aten.min.default: lambda args, out: torch.argmin(args[0]),
    _aten.max_pool2d_with_indices.default: lambda args, out: out[1],
    _aten.max_pool1d_with_indices.default: lambda args, out: out[1],
    _aten.sort.default: lambda args, out: out[1],
    _aten.topk.default: lambda args, out: out[1],
    _aten.gt.Tensor: lambda args, out: out,
    _aten.gt.Scalar: lambda args, out: out,
    _aten.lt.Tensor: lambda args, out: out,
    _aten.lt.Scalar: lambda args, out: out,
    _aten.ge.Tensor: lambda args, out: out,
    _aten.ge.Scalar: lambda args, out: out,
    _aten.le.Tensor: lambda args, out: out,
    _aten.le.Scalar: lambda args, out: out,
}


class _DispatchRecorder(_DispatchMode):  # type: ignore[misc, valid-type]
    """Records, in call order, the branch every piecewise aten operation takes."""

    def __init__(self) -> None:
        super().__init__()
        self.branches: list[Any] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: Any = None):
        out = func(*args, **(kwargs or {}))
        branch = _BRANCHES.get(func)
        if branch is not None:
            taken = branch(args, out)
            taken = (
                tuple(t.detach().clone() for t in taken)
                if isinstance(taken, tuple)
                else (taken.detach().clone())
            )
            self.branches.append((func, taken))
        return out


def same_branches(first: list[Any], second: list[Any]) -> bool:
    if len(first) != len(second):
        return False
    for (op_a, a), (op_b, b) in zip(first, second, strict=True):
        if op_a != op_b:
            return False
        pairs = zip(a, b, strict=True) if isinstance(a, tuple) else [(a, b)]
        for x, y in pairs:
            if x.shape != y.shape or not torch.equal(x, y):
                return False
    return True


# -- the public recorder: torch functions and tensor methods ----------------------------------


def _pool_indices(args: tuple, kwargs: dict) -> Any:
    kwargs = {k: v for k, v in kwargs.items() if k != "return_indices"}
    return F.max_pool2d(*args, **kwargs, return_indices=True)[1]


def _two_sided(args: tuple, out: Any) -> Any:
    low = args[1] if len(args) > 1 else -1.0
    high = args[2] if len(args) > 2 else 1.0
    return (args[0] > low, args[0] < high)


def _extreme(args: tuple, out: Any, kwargs: dict, arg: Callable[..., Any]) -> Any:
    if isinstance(out, tuple):  # max/min along a dimension: (values, indices)
        return out[1]
    if len(args) > 1 and isinstance(args[1], torch.Tensor):  # elementwise max/min of two
        return args[0] >= args[1]
    return arg(args[0])


# function -> which branch its output depends on (kwargs passed for those that need them)
_FUNCTION_BRANCHES: dict[Any, Callable[[tuple, Any, dict], Any]] = {}
for _name in ("relu", "relu_"):
    for _owner in (torch, F, torch.Tensor):
        if hasattr(_owner, _name):
            _FUNCTION_BRANCHES[getattr(_owner, _name)] = lambda a, o, k: a[0] > 0
for _owner in (torch, torch.Tensor):
    _FUNCTION_BRANCHES[_owner.abs] = lambda a, o, k: a[0] >= 0
    _FUNCTION_BRANCHES[_owner.sign] = lambda a, o, k: o
    _FUNCTION_BRANCHES[_owner.clamp] = lambda a, o, k: o != a[0]
    _FUNCTION_BRANCHES[_owner.clip] = lambda a, o, k: o != a[0]
    _FUNCTION_BRANCHES[_owner.maximum] = lambda a, o, k: a[0] >= a[1]
    _FUNCTION_BRANCHES[_owner.minimum] = lambda a, o, k: a[0] <= a[1]
    _FUNCTION_BRANCHES[_owner.max] = lambda a, o, k: _extreme(a, o, k, torch.argmax)
    _FUNCTION_BRANCHES[_owner.min] = lambda a, o, k: _extreme(a, o, k, torch.argmin)
    _FUNCTION_BRANCHES[_owner.sort] = lambda a, o, k: o[1]
    _FUNCTION_BRANCHES[_owner.topk] = lambda a, o, k: o[1]
for _method in ("gt", "lt", "ge", "le", "__gt__", "__lt__", "__ge__", "__le__"):
    _FUNCTION_BRANCHES[getattr(torch.Tensor, _method)] = lambda a, o, k: o
_FUNCTION_BRANCHES[F.leaky_relu] = lambda a, o, k: a[0] > 0
_FUNCTION_BRANCHES[F.hardtanh] = lambda a, o, k: _two_sided(a, o)
_FUNCTION_BRANCHES[F.threshold] = lambda a, o, k: a[0] > a[1]
_FUNCTION_BRANCHES[F.max_pool2d] = lambda a, o, k: _pool_indices(a, k)


class _FunctionRecorder(TorchFunctionMode):
    """Records, in call order, the branch every piecewise torch function or method takes (only
    the outermost call: torch switches the mode off inside it)."""

    def __init__(self) -> None:
        super().__init__()
        self.branches: list[Any] = []

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: Any = None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        branch = _FUNCTION_BRANCHES.get(func)
        if branch is not None:
            taken = branch(args, out, kwargs)
            taken = (
                tuple(t.detach().clone() for t in taken)
                if isinstance(taken, tuple)
                else taken.detach().clone()
            )
            self.branches.append((func, taken))
        return out


# -- the choice --------------------------------------------------------------------------------


def _dispatch_recorder_works() -> bool:
    """The private dispatch mode records a ReLU's branches on this torch."""
    if _DispatchMode is TorchFunctionMode:
        return False
    try:
        with _DispatchRecorder() as recorder:
            torch.relu(torch.tensor([-1.0, 1.0], dtype=torch.float64))
        (func, taken), *_ = recorder.branches
        return func == _aten.relu.default and taken.tolist() == [False, True]
    except Exception:
        return False


_dispatch_ok: bool | None = None


def branch_recorder() -> Any:
    """A context manager whose ``branches`` list fills while the function runs."""
    global _dispatch_ok
    if _compat.public_forced():
        return _FunctionRecorder()
    if _dispatch_ok is None:
        _dispatch_ok = _dispatch_recorder_works()
    return _DispatchRecorder() if _dispatch_ok else _FunctionRecorder()
