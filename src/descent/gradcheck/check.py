"""The check itself: the function or module in float64 on a copy, the numeric gradient by
centered (or forward) differences, compared with the analytic one."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn

from descent import validate
from descent.errors import InputError
from descent.gradcheck.kinks import branch_recorder, same_branches
from descent.gradcheck.report import (
    TINY,
    Coordinate,
    GradcheckResult,
    NondeterministicError,
    TensorReport,
)

Method = Literal["centered", "forward"]

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
    validate.positive(h, "h")
    if method not in ("centered", "forward"):
        raise ValueError(f"method must be 'centered' or 'forward', got {method!r}")
    validate.positive_int(max_coords, "max_coords")
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
            with branch_recorder() as recorder:
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
    return numeric, not same_branches(branches_plus, branches_minus), resolution
