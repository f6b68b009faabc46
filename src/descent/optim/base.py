"""The shell every descent update rule shares: a torch.optim.Optimizer whose learning rate may be a
schedule, whose update count lives in the optimizer state, and which runs either the rule's pure
reference step (one tensor at a time, the formula line by line) or its fast multi-tensor path.

A rule subclass supplies four things:
- ``_validate(group)``: raise ValueError naming a bad hyperparameter and its accepted range;
- ``_init_state(param, group)``: the per-parameter state (tensors, plus ``"step"``);
- ``_reference_update(group, param, grad, state, lr)``: call the pure reference function;
- ``_fast_update(group, params, grads, states, lr)``: the fast path over all tensors of a group.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor

Schedule = Callable[[int], float]
LearningRate = float | Schedule
Impl = Literal["fast", "reference"]

# Elements per chunk on the chunked fast path: a few arrays of this many float32 values stay in a
# core's L2 cache, so the several passes a formula needs touch main memory once.
CHUNK_ELEMENTS = 1 << 16

_SCHEDULE_MARK = "__schedule__"
_OPAQUE_SCHEDULE = "<callable>"


class UnknownArgumentError(TypeError):
    """An optimizer was given an argument it does not take."""


def check_lr(lr: Any, name: str = "lr") -> None:
    """A learning rate is a finite float ≥ 0 or a callable of the update number."""
    if callable(lr):
        try:
            first = lr(0)
        except Exception as exc:  # a schedule that cannot be evaluated is bad input
            raise ValueError(f"{name}: the schedule {lr!r} failed at update 0: {exc}") from exc
        check_lr(float(first), f"{name}(0)")
        return
    if isinstance(lr, Tensor):
        if lr.numel() != 1:
            raise ValueError(f"{name} must be a scalar, got a tensor of shape {tuple(lr.shape)}")
        lr = lr.item()
    if isinstance(lr, bool) or not isinstance(lr, int | float):
        raise ValueError(
            f"{name} must be a float ≥ 0 or a schedule (a callable of the update number), "
            f"got {lr!r}"
        )
    if not math.isfinite(lr) or lr < 0:
        raise ValueError(f"{name} must be a finite float ≥ 0, got {lr!r}")


def check_unit_interval(value: Any, name: str) -> None:
    """β, ρ, γ and friends live in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be a float in [0, 1), got {value!r}")


def check_positive(value: Any, name: str) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"{name} must be a finite float > 0, got {value!r}")


def check_nonnegative(value: Any, name: str) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError(f"{name} must be a finite float ≥ 0, got {value!r}")


def check_flag(value: Any, name: str) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")


def check_betas(betas: Any) -> None:
    if not isinstance(betas, tuple | list) or len(betas) != 2:
        raise ValueError(f"betas must be a pair (β₁, β₂), each in [0, 1), got {betas!r}")
    check_unit_interval(betas[0], "betas[0] (β₁)")
    check_unit_interval(betas[1], "betas[1] (β₂)")


def effective_grad(param: Tensor, grad: Tensor, weight_decay: float, maximize: bool) -> Tensor:
    """g ← ±g + λθ: the gradient a rule sees (negated to maximize, plus the L2 term)."""
    if maximize:
        grad = -grad
    if weight_decay != 0:
        grad = grad + weight_decay * param
    return grad


def chunk_views(tensors: Sequence[Tensor], size: int = CHUNK_ELEMENTS) -> Iterator[list[Tensor]]:
    """Aligned 1-D slices of equally shaped tensors, ``size`` elements at a time.

    Non-contiguous tensors come back whole (a view of them cannot be flattened without a copy).
    """
    if not all(t.is_contiguous() for t in tensors):
        yield list(tensors)
        return
    flat = [t.view(-1) for t in tensors]
    numel = flat[0].numel()
    if numel <= size:
        yield flat
        return
    for start in range(0, numel, size):
        yield [t[start : start + size] for t in flat]


def scratch_for(tensors: Sequence[Tensor], count: int) -> list[Tensor]:
    """``count`` reusable scratch buffers big enough for one chunk of any of ``tensors``."""
    if not tensors:
        return [torch.empty(0) for _ in range(count)]
    largest = max(t.numel() for t in tensors)
    sample = tensors[0]
    length = min(largest, CHUNK_ELEMENTS)
    return [torch.empty(length, dtype=sample.dtype, device=sample.device) for _ in range(count)]


def fit(scratch: Tensor, like: Tensor) -> Tensor:
    """The leading part of a scratch buffer shaped like ``like``."""
    return scratch[: like.numel()].view(like.shape)


class DescentOptimizer(torch.optim.Optimizer):
    """Base of descent's update rules. Not used directly."""

    #: names of the per-parameter state tensors, in the reference function's argument order
    state_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]) -> None:
        impl = defaults.get("impl", "fast")
        if impl not in ("fast", "reference"):
            raise ValueError(f"impl must be 'fast' or 'reference', got {impl!r}")
        defaults.setdefault("step", 0)
        super().__init__(params, defaults)

    # -- construction and validation ----------------------------------------------------------

    @classmethod
    def _reject_unknown(cls, unknown: dict[str, Any]) -> None:
        if unknown:
            accepted = [
                name
                for name in inspect.signature(cls.__init__).parameters
                if name not in ("self", "params", "unknown")
            ]
            names = ", ".join(repr(name) for name in unknown)
            raise UnknownArgumentError(
                f"{cls.__name__} got unknown argument(s) {names}; accepted: {', '.join(accepted)}"
            )

    def _validate(self, group: dict[str, Any]) -> None:
        check_lr(group["lr"])
        check_flag(group.get("maximize", False), "maximize")
        if group.get("impl", "fast") not in ("fast", "reference"):
            raise ValueError(f"impl must be 'fast' or 'reference', got {group['impl']!r}")
        if "weight_decay" in group:
            check_nonnegative(group["weight_decay"], "weight_decay")

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        try:
            self._validate(group)
            for param in group["params"]:
                if param.is_sparse:
                    raise ValueError(f"{type(self).__name__} does not take sparse parameters")
        except ValueError:
            self.param_groups.pop()
            raise

    # -- the learning rate --------------------------------------------------------------------

    @staticmethod
    def lr_at(group: dict[str, Any], update: int | None = None) -> float:
        """The group's learning rate at ``update`` (default: the next update)."""
        lr = group["lr"]
        n = group["step"] if update is None else update
        if callable(lr):
            value = float(lr(n))
            if not math.isfinite(value) or value < 0:
                raise ValueError(
                    f"the learning-rate schedule {lr!r} gave {value!r} at update {n}; "
                    "a learning rate must be a finite float ≥ 0"
                )
            return value
        return float(lr)

    # -- one update ---------------------------------------------------------------------------

    def _init_state(self, param: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def _reference_update(
        self, group: dict[str, Any], param: Tensor, grad: Tensor, state: dict[str, Any], lr: float
    ) -> None:
        raise NotImplementedError

    def _fast_update(
        self,
        group: dict[str, Any],
        params: list[Tensor],
        grads: list[Tensor],
        states: list[dict[str, Any]],
        lr: float,
    ) -> None:
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """One update of every parameter that has a gradient; returns the closure's loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr = self.lr_at(group)
            params, grads, states = [], [], []
            for param in group["params"]:
                if param.grad is None:
                    continue
                if param.grad.is_sparse:
                    raise ValueError(f"{type(self).__name__} does not take sparse gradients")
                state = self.state[param]
                if not state:
                    state.update(self._init_state(param, group))
                params.append(param)
                grads.append(param.grad)
                states.append(state)
            if params:
                self._run(group, params, grads, states, lr)
            group["step"] += 1
        return loss

    def _run(
        self,
        group: dict[str, Any],
        params: list[Tensor],
        grads: list[Tensor],
        states: list[dict[str, Any]],
        lr: float,
    ) -> None:
        # Complex parameters are updated as pairs of reals, as torch.optim does.
        if any(torch.is_complex(p) for p in params):
            params = [torch.view_as_real(p) if torch.is_complex(p) else p for p in params]
            grads = [torch.view_as_real(g) if torch.is_complex(g) else g for g in grads]
            states = [_real_state(s) for s in states]
        if group["impl"] == "reference":
            for param, grad, state in zip(params, grads, states, strict=True):
                self._reference_update(group, param, grad, state, lr)
        else:
            self._fast_update(group, params, grads, states, lr)

    # -- saving and resuming ------------------------------------------------------------------

    #: scalar state kept in float64 whatever the parameter's dtype (torch would cast it on load)
    _float64_state: ClassVar[tuple[str, ...]] = ("mu_product",)

    @staticmethod
    def _process_value_according_to_param_policy(
        param: Tensor,
        value: Tensor,
        param_id: int,
        param_groups: list[dict[Any, Any]],
        key: Any = None,
    ) -> Tensor:
        if key in DescentOptimizer._float64_state:
            return value.to(dtype=torch.float64, device=param.device)
        return torch.optim.Optimizer._process_value_according_to_param_policy(
            param, value, param_id, param_groups, key
        )

    def state_dict(self) -> dict[str, Any]:
        """torch's state dict; a schedule as ``lr`` is stored as its dict form when it has one."""
        saved = super().state_dict()
        for group in saved["param_groups"]:
            lr = group["lr"]
            if callable(lr):
                to_dict = getattr(lr, "to_dict", None)
                group["lr"] = {_SCHEDULE_MARK: to_dict()} if to_dict else _OPAQUE_SCHEDULE
        return saved

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore state; a schedule saved as a dict is rebuilt, an opaque one keeps this lr."""
        current_lrs = [group["lr"] for group in self.param_groups]
        super().load_state_dict(state_dict)
        for group, current in zip(self.param_groups, current_lrs, strict=True):
            lr = group["lr"]
            if isinstance(lr, dict) and _SCHEDULE_MARK in lr:
                from descent.schedules import from_dict

                group["lr"] = from_dict(lr[_SCHEDULE_MARK])
            elif isinstance(lr, str) and lr == _OPAQUE_SCHEDULE:
                if not callable(current):
                    raise ValueError(
                        "the saved optimizer used a schedule that could not be saved (a plain "
                        "callable without to_dict); build the optimizer with the same schedule "
                        "as lr before loading its state"
                    )
                group["lr"] = current

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for index, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {index}")
            for key in sorted(group):
                if key != "params":
                    lines.append(f"    {key}: {group[key]!r}")
        lines.append(")")
        return "\n".join(lines)


def _real_state(state: dict[str, Any]) -> dict[str, Any]:
    return {
        key: torch.view_as_real(value)
        if isinstance(value, Tensor) and torch.is_complex(value)
        else value
        for key, value in state.items()
    }


def zeros_like_state(param: Tensor, names: Sequence[str]) -> dict[str, Any]:
    """Zero tensors for each state name, and the per-parameter step count (as torch keeps it)."""
    state: dict[str, Any] = {"step": torch.tensor(0.0, dtype=torch.float32)}
    for name in names:
        state[name] = torch.zeros_like(param, memory_format=torch.preserve_format)
    return state


# Dtypes torch's fused CPU/CUDA kernels take.
FUSED_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def fused_buckets(
    params: Sequence[Tensor], grads: Sequence[Tensor]
) -> tuple[list[list[int]], list[int]]:
    """Indices of the tensors a fused kernel can take, bucketed by (device, dtype), and the rest.

    The fused kernels want contiguous tensors of one device and dtype; anything else (a
    transposed view, an integer or complex leftover, an odd device) goes through the reference.
    State tensors are made with the parameter's layout, dtype and device (and torch casts loaded
    state to them), so checking the parameter and its gradient is enough. This runs every step:
    it is kept to a plain loop.
    """
    buckets: dict[tuple[torch.device, torch.dtype], list[int]] = {}
    rest: list[int] = []
    for index, (param, grad) in enumerate(zip(params, grads, strict=True)):
        dtype = param.dtype
        device = param.device
        if (
            dtype in FUSED_DTYPES
            and grad.dtype == dtype
            and param.is_contiguous()
            and grad.is_contiguous()
            and device.type in ("cpu", "cuda")
            and grad.device == device
        ):
            key = (device, dtype)
            if key in buckets:
                buckets[key].append(index)
            else:
                buckets[key] = [index]
        else:
            rest.append(index)
    return list(buckets.values()), rest


def pick(items: Sequence[Any], indices: Sequence[int]) -> list[Any]:
    return [items[i] for i in indices]


def by_step(states: Sequence[dict[str, Any]], indices: Sequence[int]) -> dict[int, list[int]]:
    """Indices grouped by their (already incremented) step count, for step-dependent scalars."""
    groups: dict[int, list[int]] = {}
    for index in indices:
        groups.setdefault(int(states[index]["step"].item()), []).append(index)
    return groups


def effective_grad_into(
    out: Tensor, param: Tensor, grad: Tensor, weight_decay: float, maximize: bool
) -> Tensor:
    """±g + λθ written into a scratch chunk; the gradient itself when there is nothing to add."""
    if not maximize and weight_decay == 0:
        return grad
    if maximize:
        torch.neg(grad, out=out)
    else:
        out.copy_(grad)
    if weight_decay != 0:
        out.add_(param, alpha=weight_decay)
    return out


def native_split(params: Sequence[Tensor], grads: Sequence[Tensor]) -> tuple[list[int], list[int]]:
    """Indices the C kernels can take (built, CPU, contiguous, float32/float64), and the rest.

    As in :func:`fused_buckets`, state tensors share the parameter's layout and dtype.
    """
    from descent.optim import _native

    if not _native.available():
        return [], list(range(len(params)))
    native, rest = [], []
    for index, (param, grad) in enumerate(zip(params, grads, strict=True)):
        (native if _native.supports((param, grad)) else rest).append(index)
    return native, rest
