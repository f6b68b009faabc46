"""The calls of a fast update (what :class:`~descent.optim.stepping.Stepping` inherits): the
foreach formulation on (device, dtype) buckets, and the one way a rule calls a C kernel
(:meth:`KernelCalls._native_shared`: one list per kernel argument). Which tensors a kernel takes
is the step's to say (:class:`~descent.optim.fastpath.StepArgs`, from the step plan when its
lists are the plan's)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from descent.optim import _native

if TYPE_CHECKING:
    from descent.optim.base import DescentOptimizer
    from descent.optim.fastpath import StepArgs


class KernelCalls:
    """The kernel-path helpers of a rule's fast update (a mixin of Stepping)."""

    def _foreach_run(self: DescentOptimizer, step: StepArgs) -> None:
        """The foreach formulation on (device, dtype) buckets (see :meth:`_lift`)."""
        buckets: dict[tuple[torch.device, torch.dtype, torch.dtype], list[int]] = {}
        for i, (param, state) in enumerate(zip(step.params, step.states, strict=True)):
            buckets.setdefault(
                (param.device, param.dtype, self._compute_dtype(param, state)), []
            ).append(i)
        for ordinal, indices in enumerate(buckets.values()):
            # one bucket (the usual case): the step's lists as they are, no copies
            work = self._lift(step.subset(indices), ordinal)
            self._foreach_update(work.step)
            work.lower()

    def _foreach_rest(self: DescentOptimizer, step: StepArgs, rest: list[int]) -> None:
        """The foreach formulation on the tensors at ``rest`` (those no kernel took; usually
        none, and then no list is made)."""
        if rest:
            self._foreach_run(step.subset(rest))

    def _native_shared(
        self: DescentOptimizer,
        kernel: str,
        step: StepArgs,
        state_keys: dict[str, str | None],
        scalars: dict[str, Any],
    ) -> None:
        """descent's single-pass C kernel ``kernel`` on the tensors it takes, the foreach
        formulation on the rest. θ is the kernel's ``p``, the gradient its ``g``, ``state[key]``
        its tensor ``name`` for each name → key of ``state_keys`` (a key ``None``: θ again, for
        a tensor the kernel does not read under these settings), and ``scalars`` (plus
        ``sign``, −1 to maximize) the rest: each a value every tensor takes, a list of one per
        tensor the kernel takes (``step.native_split()``'s first indices, in order), or a
        callable of the step count t (see :meth:`StepArgs.by_step`). One list per argument, no
        dictionary per tensor: a step over hundreds of small tensors then costs its kernel call
        and the packing of its lists (one address read per tensor and list)."""
        native, rest = step.native_split()
        if native:
            p, g = step.lists(native)
            columns = {"p": p, "g": g}
            for name, key in state_keys.items():
                columns[name] = p if key is None else step.column(key, native)
            for name, value in scalars.items():
                columns[name] = step.by_step(native, value) if callable(value) else value
            columns["sign"] = -1.0 if step.group["maximize"] else 1.0
            _native.run_columns(kernel, columns, dtype=step.native_dtype())
        self._foreach_rest(step, rest)
