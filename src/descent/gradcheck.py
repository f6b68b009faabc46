"""Gradient checks: the analytic gradient (autograd's, or one you give) against a numeric one.

The lecture: compare the analytic gradient with the centered difference (f(x+h) − f(x−h)) / 2h,
h ≈ 1e-5; the forward difference (f(x+h) − f(x)) / h is worse (error O(h) instead of O(h²)).
:func:`check` does that in float64 on a copy (the caller's model, its dtype, gradients and RNG
state are left as they were), on every coordinate of small tensors and a seeded sample of large
ones, and gives a verdict per tensor on the usual scale of the relative error
|a − n| / max(|a| + |n|, tiny):

    ≤ 1e-7 correct · ≤ 1e-4 fine only where the function has kinks · ≤ 1e-2 suspicious · wrong

Kinks: while evaluating f(x + h) and f(x − h), every piecewise operation (relu, abs, max, clamp,
max-pooling, comparisons feeding a where, …) records which branch it took; a coordinate whose two
evaluations took different branches straddles a kink, is flagged, and does not fail the check (the
difference quotient there is no derivative of anything).

Randomness (dropout): torch's RNG is reset to the same seed before every evaluation, so each sees
the same mask. If two evaluations at the same point still differ (randomness from numpy, Python's
random, …), the check refuses with a clear message instead of reporting noise as wrong gradients.
"""

from __future__ import annotations

import copy
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode

from descent.errors import InputError

Method = Literal["centered", "forward"]

CORRECT = 1e-7
KINK_LEVEL = 1e-4
SUSPICIOUS = 1e-2
TINY = 1e-300


class NondeterministicError(ValueError):
    """The checked function gives different values at the same point under a fixed RNG state."""


def verdict_of(relative_error: float) -> str:
    """The usual scale: correct, kink-level (fine only at kinks), suspicious, wrong."""
    if relative_error <= CORRECT:
        return "correct"
    if relative_error <= KINK_LEVEL:
        return "fine only with kinks"
    if relative_error <= SUSPICIOUS:
        return "suspicious"
    return "wrong"


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


class _BranchRecorder(TorchDispatchMode):
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


def _same_branches(first: list[Any], second: list[Any]) -> bool:
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


# -- the result --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Coordinate:
    """One checked coordinate: where, both derivatives, their relative error, the kink flag, and
    the resolution of the difference quotient there (about 10 ε |f| / h: two derivatives closer
    than that are equal as far as the numeric one can tell, e.g. a true zero gradient)."""

    index: tuple[int, ...]
    analytic: float
    numeric: float
    relative_error: float
    kink: bool
    resolution: float = 0.0

    @property
    def judged_error(self) -> float:
        """The relative error, or 0 when the difference is below the numeric resolution."""
        if abs(self.analytic - self.numeric) <= self.resolution:
            return 0.0
        return self.relative_error


@dataclass(frozen=True)
class TensorReport:
    """The check of one tensor (an input or a parameter)."""

    name: str
    shape: tuple[int, ...]
    numel: int
    coordinates: list[Coordinate] = field(repr=False)

    @property
    def checked(self) -> int:
        return len(self.coordinates)

    @property
    def kinks(self) -> int:
        return sum(c.kink for c in self.coordinates)

    def _errors(self, include_kinks: bool = True) -> list[float]:
        return [c.judged_error for c in self.coordinates if include_kinks or not c.kink]

    @property
    def max_error(self) -> float:
        """The largest relative error, as measured (kinks and tiny gradients included)."""
        return max((c.relative_error for c in self.coordinates), default=0.0)

    @property
    def median_error(self) -> float:
        errors = sorted(c.relative_error for c in self.coordinates)
        return errors[len(errors) // 2] if errors else 0.0

    @property
    def unresolved(self) -> int:
        """Coordinates whose error exceeds 1e-7 only because the gradient is below what the
        difference quotient resolves (their verdict counts them correct)."""
        return sum(
            1 for c in self.coordinates if c.relative_error > CORRECT and c.judged_error == 0.0
        )

    @property
    def worst(self) -> list[Coordinate]:
        """The five coordinates with the largest relative error (kinks last)."""
        ranked = sorted(
            self.coordinates, key=lambda c: (not c.kink, c.judged_error, c.relative_error)
        )
        return ranked[::-1][:5]

    @property
    def verdict(self) -> str:
        """The verdict of the worst coordinate that is not at a kink ("kink" if only those)."""
        smooth = self._errors(include_kinks=False)
        if not smooth:
            return "kink" if self.coordinates else "not checked"
        return verdict_of(max(smooth))

    @property
    def passed(self) -> bool:
        return all(c.kink or c.judged_error <= CORRECT for c in self.coordinates)


@dataclass(frozen=True)
class GradcheckResult:
    """Per-tensor reports; ``passed`` only when every checked coordinate is correct or at a kink.

    Prints as a table (rich), converts with ``to_dict()``."""

    tensors: list[TensorReport]
    method: str
    h: float

    @property
    def passed(self) -> bool:
        return all(report.passed for report in self.tensors)

    @property
    def max_error(self) -> float:
        return max((report.max_error for report in self.tensors), default=0.0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "method": self.method,
            "h": self.h,
            "tensors": [
                {
                    "name": r.name,
                    "shape": list(r.shape),
                    "checked": r.checked,
                    "of": r.numel,
                    "max_relative_error": r.max_error,
                    "median_relative_error": r.median_error,
                    "kinks": r.kinks,
                    "below_resolution": r.unresolved,
                    "verdict": r.verdict,
                    "worst": [
                        {
                            "index": list(c.index),
                            "analytic": c.analytic,
                            "numeric": c.numeric,
                            "relative_error": c.relative_error,
                            "kink": c.kink,
                            "below_resolution": c.judged_error == 0.0 and c.relative_error > 0,
                        }
                        for c in r.worst
                    ],
                }
                for r in self.tensors
            ],
        }

    def __rich__(self) -> Any:
        from rich.table import Table

        table = Table(
            title=f"gradient check ({self.method} differences, h = {self.h:g}): "
            + ("PASSED" if self.passed else "FAILED"),
        )
        columns = (
            "tensor",
            "checked",
            "max rel. error",
            "median",
            "kinks",
            "below resolution",
            "verdict",
            "worst coordinate: analytic vs numeric",
        )
        for column in columns:
            table.add_column(column, justify="left" if column in ("tensor", "verdict") else "right")
        for report in self.tensors:
            worst = report.worst[0] if report.worst else None
            where = (
                f"{list(worst.index)}: {worst.analytic:.6g} vs {worst.numeric:.6g}"
                + (" (kink)" if worst.kink else "")
                if worst
                else ""
            )
            table.add_row(
                f"{report.name} {list(report.shape)}",
                f"{report.checked}/{report.numel}",
                f"{report.max_error:.1e}",
                f"{report.median_error:.1e}",
                str(report.kinks),
                str(report.unresolved),
                report.verdict,
                where,
            )
        return table

    def __str__(self) -> str:
        from rich.console import Console

        console = Console(width=140, file=io.StringIO())
        console.print(self)
        return console.file.getvalue()  # type: ignore[attr-defined]


# -- the check ---------------------------------------------------------------------------------


def check(
    fn_or_module: Callable[..., Any] | nn.Module,
    inputs: Tensor | Sequence[Any],
    *,
    loss: Callable[..., Tensor] | None = None,
    params: Sequence[str] | None = None,
    analytic: Callable[..., Sequence[Tensor] | Tensor] | None = None,
    h: float = 1e-5,
    method: Method = "centered",
    max_coords: int = 200,
    seed: int = 0,
) -> GradcheckResult:
    """Check the gradient of ``fn_or_module`` at ``inputs``.

    - A function of tensors: ``check(f, (x, y))`` checks the gradient with respect to each
      floating-point input that requires grad (every floating input if none does). A custom
      ``torch.autograd.Function`` is checked through its ``apply``.
    - A module: ``check(model, (batch, targets), loss=F.cross_entropy)`` checks the gradient of
      ``loss(model(batch), targets)`` with respect to the module's parameters (or the named
      ``params``). Without ``loss`` the output is reduced as below.
    - ``analytic``: a function returning the gradient(s) to check instead of autograd's, e.g.
      descent's closed-form least-squares gradient.

    A non-scalar output is reduced to ⟨out, v⟩ with a fixed, seeded random v, which checks the
    whole Jacobian in one random direction. Everything runs in float64 on copies.

    Args:
        h: the step of the difference quotient. method: "centered" or "forward".
        max_coords: tensors with more elements are checked on a seeded random sample of this many.
        seed: seeds the coordinate sample, the projection, and torch's RNG at every evaluation.
    """
    if not (isinstance(h, int | float) and h > 0 and math.isfinite(h)):
        raise ValueError(f"h must be a finite float > 0, got {h!r}")
    if method not in ("centered", "forward"):
        raise ValueError(f"method must be 'centered' or 'forward', got {method!r}")
    if isinstance(max_coords, bool) or not isinstance(max_coords, int) or max_coords < 1:
        raise ValueError(f"max_coords must be a positive integer, got {max_coords!r}")
    args = list(inputs) if isinstance(inputs, list | tuple) else [inputs]
    saved_rng = torch.random.get_rng_state()
    try:
        if isinstance(fn_or_module, nn.Module):
            names, tensors, evaluate = _module_problem(fn_or_module, args, loss, params, seed)
        else:
            names, tensors, evaluate = _function_problem(fn_or_module, args, seed)
        reports = _compare(names, tensors, evaluate, analytic, args, h, method, max_coords, seed)
    finally:
        torch.random.set_rng_state(saved_rng)
    return GradcheckResult(reports, method, h)


def _to64(value: Any) -> Any:
    if isinstance(value, Tensor) and value.is_floating_point():
        return value.detach().to(torch.float64).clone()
    if isinstance(value, Tensor):
        return value.detach().clone()
    return value


def _reduce(output: Any, seed: int) -> Tensor:
    """A scalar from the output: itself, or ⟨out, v⟩ with a seeded random v."""
    if isinstance(output, tuple | list):
        return sum(_reduce(part, seed + index) for index, part in enumerate(output))  # type: ignore[return-value]
    if not isinstance(output, Tensor):
        raise ValueError(f"the checked function must return tensors, got {type(output).__name__}")
    if output.numel() == 1:
        return output.reshape(())
    generator = torch.Generator().manual_seed(seed + 7919)
    direction = torch.randn(output.shape, generator=generator, dtype=torch.float64)
    return (output.to(torch.float64) * direction).sum()


def _function_problem(
    fn: Callable[..., Any], args: list[Any], seed: int
) -> tuple[list[str], list[Tensor], Callable[[], Tensor]]:
    copies = [_to64(a) for a in args]
    floating = [i for i, a in enumerate(args) if isinstance(a, Tensor) and a.is_floating_point()]
    chosen = [i for i in floating if args[i].requires_grad] or floating
    if not chosen:
        raise ValueError("nothing to check: no floating-point tensor among the inputs")
    names = [f"input {i}" for i in chosen]
    tensors = [copies[i] for i in chosen]

    def evaluate() -> Tensor:
        torch.manual_seed(seed)
        return _reduce(fn(*copies), seed)

    return names, tensors, evaluate


def _module_problem(
    module: nn.Module,
    args: list[Any],
    loss: Callable[..., Tensor] | None,
    params: Sequence[str] | None,
    seed: int,
) -> tuple[list[str], list[Tensor], Callable[[], Tensor]]:
    model = copy.deepcopy(module).to(torch.float64)
    named = dict(model.named_parameters())
    if params is None:
        chosen = [name for name, p in named.items() if p.requires_grad]
    else:
        unknown = [name for name in params if name not in named]
        if unknown:
            raise ValueError(
                f"no parameter named {', '.join(map(repr, unknown))}; the module has: "
                f"{', '.join(named)}"
            )
        chosen = list(params)
    if not chosen:
        raise ValueError("nothing to check: the module has no parameter that requires grad")
    copies = [_to64(a) for a in args]
    if loss is not None and len(copies) < 2:
        raise ValueError("with a loss, inputs must be (batch, targets)")

    def evaluate() -> Tensor:
        torch.manual_seed(seed)
        if loss is None:
            return _reduce(model(*copies), seed)
        *batch, targets = copies
        return _reduce(loss(model(*batch), targets), seed)

    return chosen, [named[name] for name in chosen], evaluate


def _sample(
    numel: int, shape: tuple[int, ...], max_coords: int, seed: int
) -> list[tuple[int, ...]]:
    if numel <= max_coords:
        flat = range(numel)
    else:
        generator = torch.Generator().manual_seed(seed)
        flat = sorted(torch.randperm(numel, generator=generator)[:max_coords].tolist())
    return (
        [tuple(int(i) for i in torch.unravel_index(torch.tensor(f), shape)) for f in flat]
        if (shape)
        else [()]
    )


def _compare(
    names: list[str],
    tensors: list[Tensor],
    evaluate: Callable[[], Tensor],
    analytic: Callable[..., Any] | None,
    args: list[Any],
    h: float,
    method: Method,
    max_coords: int,
    seed: int,
) -> list[TensorReport]:
    with torch.no_grad():
        first, second = evaluate(), evaluate()
    if not bool(torch.isfinite(first).all()):
        # before the determinism test: NaN ≠ NaN would read as "different values"
        raise InputError(
            f"the checked function's value at the given point is {first.item()!r}, not a finite "
            "number, so it has no gradient to check there; find where it becomes non-finite "
            "(0/0, log of 0 or a negative, an overflow) or check at another point"
        )
    if not torch.equal(first, second):
        raise NondeterministicError(
            "the function gives different values at the same point even with torch's RNG reset "
            f"before each evaluation ({first.item()!r} then {second.item()!r}): its randomness "
            "comes from elsewhere (numpy, Python's random, a data loader); make it "
            "deterministic before checking its gradient"
        )
    gradients = _analytic_gradients(tensors, evaluate, analytic, args)
    reports = []
    for index, (name, tensor, gradient) in enumerate(zip(names, tensors, gradients, strict=True)):
        coordinates = []
        for where in _sample(tensor.numel(), tuple(tensor.shape), max_coords, seed + index):
            numeric, kink, resolution = _numeric(tensor, where, evaluate, h, method)
            exact = float(gradient[where])
            error = abs(exact - numeric) / max(abs(exact) + abs(numeric), TINY)
            coordinates.append(Coordinate(where, exact, numeric, error, kink, resolution))
        reports.append(TensorReport(name, tuple(tensor.shape), tensor.numel(), coordinates))
    return reports


def _analytic_gradients(
    tensors: list[Tensor],
    evaluate: Callable[[], Tensor],
    analytic: Callable[..., Any] | None,
    args: list[Any],
) -> list[Tensor]:
    if analytic is not None:
        given = analytic(*[_to64(a) for a in args])
        given = [given] if isinstance(given, Tensor) else list(given)
        if len(given) != len(tensors):
            raise ValueError(
                f"analytic returned {len(given)} gradient(s) for {len(tensors)} checked tensor(s)"
            )
        for tensor, gradient in zip(tensors, given, strict=True):
            if tuple(gradient.shape) != tuple(tensor.shape):
                raise ValueError(
                    f"analytic gradient of shape {tuple(gradient.shape)} for a tensor of shape "
                    f"{tuple(tensor.shape)}"
                )
        return [g.detach().to(torch.float64) for g in given]
    leaves = [t.requires_grad_(True) for t in tensors]
    with torch.enable_grad():
        value = evaluate()
        if not value.requires_grad:
            return [torch.zeros_like(t) for t in leaves]
        grads = torch.autograd.grad(value, leaves, allow_unused=True)
    for leaf in leaves:
        leaf.requires_grad_(False)
    return [
        torch.zeros_like(t) if g is None else g.detach() for t, g in zip(leaves, grads, strict=True)
    ]


def _numeric(
    tensor: Tensor, where: tuple[int, ...], evaluate: Callable[[], Tensor], h: float, method: Method
) -> tuple[float, bool, float]:
    """The difference quotient at one coordinate, whether a kink lies within ±h, and the
    quotient's resolution (rounding of f in float64, divided by the step)."""
    original = float(tensor[where])

    def at(value: float) -> tuple[float, list[Any]]:
        with torch.no_grad():
            tensor[where] = value
            with _BranchRecorder() as recorder:
                result = float(evaluate())
        return result, recorder.branches

    try:
        plus, branches_plus = at(original + h)
        if method == "centered":
            minus, branches_minus = at(original - h)
            step = 2 * h
        else:
            minus, branches_minus = at(original)
            step = h
        numeric = (plus - minus) / step
        resolution = 10 * torch.finfo(torch.float64).eps * max(abs(plus), abs(minus), 1.0) / step
    finally:
        with torch.no_grad():
            tensor[where] = original
    return numeric, not _same_branches(branches_plus, branches_minus), resolution


__all__ = [
    "Coordinate",
    "GradcheckResult",
    "NondeterministicError",
    "TensorReport",
    "check",
    "verdict_of",
]
