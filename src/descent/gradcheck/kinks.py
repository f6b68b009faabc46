"""Kink detection: the branch every piecewise operation takes, recorded while the function
runs (a torch dispatch mode), so that a difference quotient straddling a kink is flagged."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

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


class BranchRecorder(TorchDispatchMode):
    """Records, in call order, the branch every piecewise operation takes."""

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


