"""The calls of a fast update (what :class:`~descent.optim.stepping.Stepping` inherits): the
splits of a group's tensors between the fused kernels, descent's C kernels and the foreach
formulation, each kept in the step plan when the lists are its own, and the one way a rule calls
a C kernel (:meth:`KernelCalls._native_shared`: one list per kernel argument)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import is_, itemgetter
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from descent.optim import _native
from descent.optim.fastpath import fused_buckets, native_split, pick

if TYPE_CHECKING:
    from descent.optim.base import DescentOptimizer
    from descent.optim.stepping import Group, Host, State

_STEP = itemgetter("step")


def mean_numel(params: list[Tensor]) -> float:
    """Elements per tensor, on average."""
    return sum(param.numel() for param in params) / max(len(params), 1)


class KernelCalls:
    """The kernel-path helpers of a rule's fast update (a mixin of Stepping)."""

    # -- the splits a fast update uses ----------------------------------------------------------

    def _fused_buckets(
        self, params: list[Tensor], grads: list[Tensor], states: list[State]
    ) -> tuple[list[list[int]], list[int]]:
        """Indices of the tensors a fused kernel takes, bucketed by (device, dtype), and the
        rest (a new list the caller may extend): the plan's when these are its lists."""
        plan = self._active
        if plan is not None and params is plan.params:
            return plan.fused[0], list(plan.fused[1])
        return fused_buckets(params, grads, states)

    def _native_split(
        self, params: list[Tensor], grads: list[Tensor], states: list[State]
    ) -> tuple[list[int], list[int]]:
        """Indices the C kernels take, and the rest: the plan's when these are its lists."""
        plan = self._active
        if plan is not None and params is plan.params:
            return plan.native[0], list(plan.native[1])
        return native_split(params, grads, states)

    def _native_dtype(self, params: list[Tensor]) -> torch.dtype | None:
        """The one dtype of the tensors the C kernels take, when the plan knows it (these are its
        lists, of one dtype); else None (the caller reads them)."""
        plan = self._active
        if plan is not None and params is plan.params:
            return plan.native_dtype
        return None

    def _planned(self, params: list[Tensor], key: str, compute: Callable[[], Any]) -> Any:
        """``compute()``, kept in the plan under ``key`` when ``params`` are its list (for what a
        rule derives from the parameters alone, e.g. their dimensions: the plan is rebuilt
        when they change)."""
        plan = self._active
        if plan is None or params is not plan.params:
            return compute()
        value = plan.memo.get(key)
        if value is None:
            value = plan.memo[key] = compute()
        return value

    def _mean_numel(self, params: list[Tensor]) -> float:
        """Elements per tensor, on average (the plan's when these are its lists)."""
        plan = self._active
        if plan is not None and params is plan.params:
            return plan.mean_numel
        return mean_numel(params)

    def _pick(self, items: list[Any], indices: list[int]) -> list[Any]:
        """``items`` at ``indices``: the list itself when they are all of it (in order, as a
        split's indices are), so a kernel over the whole group copies no list."""
        return items if len(indices) == len(items) else pick(items, indices)

    def _column(self, states: list[State], name: str, indices: list[int]) -> list[Tensor]:
        """``states[i][name]`` for i in ``indices``: kept in the plan when the states are its
        own and the indices all of them (read again after a load: the plan is rebuilt)."""
        plan = self._active
        if plan is not None and states is plan.states and len(indices) == len(states):
            column = plan.columns.get(name)
            if column is None or not all(map(is_, column, map(itemgetter(name), states))):
                column = plan.columns[name] = [state[name] for state in states]
            return column
        return [states[i][name] for i in indices]

    # -- the foreach formulation and the C kernels ----------------------------------------------

    def _foreach_run(
        self: DescentOptimizer,
        group: Group,
        params: Sequence[Tensor],
        grads: Sequence[Tensor],
        states: Sequence[State],
        hosts: Sequence[Host],
        lr: float,
    ) -> None:
        """The foreach formulation on (device, dtype) buckets (see :meth:`_lift`)."""
        buckets: dict[tuple[torch.device, torch.dtype, torch.dtype], list[int]] = {}
        for i, (param, state) in enumerate(zip(params, states, strict=True)):
            buckets.setdefault(
                (param.device, param.dtype, self._compute_dtype(param, state)), []
            ).append(i)
        if len(buckets) == 1:  # the usual case: the lists as they are, no copies
            work = self._lift(group, list(params), list(grads), list(states), 0)
            self._foreach_update(group, work.params, work.grads, work.states, list(hosts), lr)
            work.lower()
            return
        for ordinal, indices in enumerate(buckets.values()):
            work = self._lift(
                group, pick(params, indices), pick(grads, indices), pick(states, indices), ordinal
            )
            self._foreach_update(
                group, work.params, work.grads, work.states, pick(hosts, indices), lr
            )
            work.lower()

    def _foreach_some(
        self: DescentOptimizer,
        group: Group,
        indices: list[int],
        params: list[Tensor],
        grads: list[Tensor],
        states: list[State],
        hosts: list[Host],
        lr: float,
    ) -> None:
        """The foreach formulation on the tensors at ``indices`` (those no kernel took)."""
        if indices:
            self._foreach_run(
                group,
                pick(params, indices),
                pick(grads, indices),
                pick(states, indices),
                pick(hosts, indices),
                lr,
            )

    def _native_shared(
        self: DescentOptimizer,
        kernel: str,
        group: Group,
        params: list[Tensor],
        grads: list[Tensor],
        states: list[State],
        hosts: list[Host],
        lr: float,
        state_keys: dict[str, str | None],
        scalars: dict[str, Any],
    ) -> None:
        """descent's single-pass C kernel ``kernel`` on the tensors it takes, the foreach
        formulation on the rest. θ is the kernel's ``p``, the gradient its ``g``, ``state[key]``
        its tensor ``name`` for each name → key of ``state_keys`` (a key ``None``: θ again, for
        a tensor the kernel does not read under these settings), and ``scalars`` (plus
        ``sign``, −1 to maximize) the rest: each a value every tensor takes, a list of one per
        tensor the kernel takes (``_native_split``'s first indices, in order), or a callable of
        the step count t (see :meth:`_by_step`). One list per argument, no dictionary per
        tensor: a step over hundreds of small tensors then costs its kernel call and the packing
        of its lists (one address read per tensor and list)."""
        native, rest = self._native_split(params, grads, states)
        if native:
            columns = {"p": self._pick(params, native), "g": self._pick(grads, native)}
            for name, key in state_keys.items():
                columns[name] = columns["p"] if key is None else self._column(states, key, native)
            for name, value in scalars.items():
                columns[name] = self._by_step(hosts, native, value) if callable(value) else value
            columns["sign"] = -1.0 if group["maximize"] else 1.0
            _native.run_columns(kernel, columns, dtype=self._native_dtype(params))
        self._foreach_some(group, rest, params, grads, states, hosts, lr)

    def _by_step(
        self, hosts: list[Host], indices: list[int], compute: Callable[[float], Any]
    ) -> Any:
        """``compute(t)`` for the step count t of the tensors at ``indices``: one value when they
        all share t (the usual case: computed once), else a list of one per tensor."""
        steps = list(map(_STEP, self._pick(hosts, indices)))
        if steps.count(steps[0]) == len(steps):
            return compute(steps[0])
        return [compute(step) for step in steps]
