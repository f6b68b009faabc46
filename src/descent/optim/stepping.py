"""One update of a descent rule: state creation, the step plan, and the dispatch to the reference,
foreach or fast path (what :class:`~descent.optim.base.DescentOptimizer` inherits from
:class:`Stepping`; the paths are described in :mod:`descent.optim.base`).

The step plan
-------------
What a group's step gathers that does not change from one step to the next (the parameters that
have a gradient, their state dicts and host mirrors, the step counters, which tensors a fused or C
kernel takes) is computed once and kept in a :class:`Plan`, so that a step of a model with hundreds
of small tensors costs the kernel calls and little else, as torch's fused step does. A step only
re-reads the gradients (a new tensor each step after ``zero_grad()``) and checks that they are
dense and contiguous. The plan is rebuilt when the parameters with a gradient change (by identity:
a parameter swapped into the group is seen), when a parameter is added to the group or the
optimizer's state gains or loses an entry, when a step counter is replaced, and after
``load_state_dict``; a list of state tensors it keeps is checked against the states at each step
(by identity, a few microseconds for hundreds of tensors), so a tensor replaced by hand
(``opt.state[p]["exp_avg"] = …``) is the one the next step updates, as in torch. Give it the
dtype and layout of the one it replaces: the kernels chosen when the plan was made take it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from itertools import repeat
from operator import attrgetter, is_, itemgetter
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import Tensor

from descent.errors import InputError
from descent.optim import _native
from descent.optim._compat import foreach
from descent.optim.fastpath import (
    Group,
    Host,
    Lifted,
    State,
    StepArgs,
    fused_buckets,
    mean_numel,
    native_split,
    real_state,
)
from descent.optim.kernel_calls import KernelCalls

if TYPE_CHECKING:
    from descent.optim.base import DescentOptimizer

__all__ = ["Group", "Host", "Plan", "State", "StepArgs", "Stepping"]

Path = Literal["reference", "device", "foreach", "fast"]


def _counter_bump(counters: list[Tensor]) -> Callable[[], None] | None:
    """t ← t + 1 on every counter in one C call whose pointer array is built once (the counters
    are the state's own step tensors: the plan is rebuilt when one is replaced); None where
    :func:`descent.optim._native.counter_pointers` refuses them."""
    pointers = _native.counter_pointers(counters) if counters else None
    if pointers is None:
        return None
    return partial(_native.add_one_at, pointers)


class Plan:
    """The per-group lists a step reuses (see the module docstring)."""

    __slots__ = (
        "bump",
        "columns",
        "counters",
        "dtypes",
        "fused",
        "group",
        "group_params",
        "group_size",
        "has_complex",
        "hosts",
        "kinds",
        "mean_numel",
        "memo",
        "native",
        "native_dtype",
        "params",
        "state_map",
        "state_size",
        "states",
    )

    def __init__(self, optimizer: DescentOptimizer, group: Group, params: list[Tensor]) -> None:
        self.group, self.group_params = group, group["params"]
        self.group_size = len(group["params"])
        self.params = params
        optimizer_state = optimizer.state
        for param in params:
            if not optimizer_state[param]:
                optimizer._new_state(param, group)
        self.states = [optimizer_state[param] for param in params]
        self.hosts = [optimizer._host(p, s) for p, s in zip(params, self.states, strict=True)]
        self.counters = [state["step"] for state in self.states] if optimizer.counts_steps else []
        self.bump = _counter_bump(self.counters)
        self.columns: dict[str, list[Tensor]] = {}
        self.has_complex = any(torch.is_complex(param) for param in params)
        self.dtypes = [param.dtype for param in params]
        # what each gradient must be (dense_grads): _GRAD_KIND of a dense gradient of its param
        self.kinds = [(torch.strided, param.dtype, param.is_cpu) for param in params]
        # Which tensors a kernel takes, as far as the parameters and states say; a step checks
        # its gradients (:meth:`dense_grads`) before using these.
        unchecked = [None] * len(params)  # the gradients are checked at each step
        self.fused = fused_buckets(params, unchecked, self.states)
        self.native = native_split(params, unchecked, self.states)
        native_dtypes = {self.dtypes[i] for i in self.native[0]}
        self.native_dtype = native_dtypes.pop() if len(native_dtypes) == 1 else None
        self.mean_numel = mean_numel(params)
        self.memo: dict[str, Any] = {}  # what a rule derives from the parameters (StepArgs.planned)
        self.state_map, self.state_size = optimizer_state, len(optimizer_state)

    def fits(self, optimizer: DescentOptimizer, group: Group, params: list[Tensor]) -> bool:
        """True when this plan still describes ``group`` with gradients on ``params``."""
        return (
            self.group is group
            and self.group_params is group["params"]
            and self.group_size == len(group["params"])
            and self.state_map is optimizer.state
            and self.state_size == len(optimizer.state)
            and len(params) == len(self.params)
            and all(map(is_, params, self.params))
            and all(map(is_, self.counters, map(itemgetter("step"), self.states)))
        )

    def dense_grads(self, grads: list[Tensor]) -> bool:
        """True when every gradient is dense, contiguous, of the dtype and on the side (CPU or
        not) its parameter had when the plan was made: what the kernels need besides what the
        plan checked once. A model moved or cast after the optimizer was made fails this, and
        its step then checks every tensor afresh. (Two C-level passes: the (layout, dtype, side)
        triples compared as one list, whose items are singletons compared by identity first,
        then contiguity, only asked of dense tensors.)"""
        return list(map(_GRAD_KIND, grads)) == self.kinds and all(map(_CONTIGUOUS, grads))


_GRAD_KIND = attrgetter("layout", "dtype", "is_cpu")
_CONTIGUOUS = Tensor.is_contiguous


class Stepping(KernelCalls):
    """The step machinery of :class:`~descent.optim.base.DescentOptimizer` (a mixin: the rule's
    hooks and the state's dtypes are the base's)."""

    # set by DescentOptimizer.__init__ (and __setstate__)
    _hosts: dict[Tensor, Host]
    _plans: dict[int, Plan]

    def _forget_plans(self: DescentOptimizer) -> None:
        """Drop the host mirrors and plans (the state was replaced or stepped on the device)."""
        self._hosts.clear()
        self._plans.clear()

    # -- state ----------------------------------------------------------------------------------

    def _new_state(
        self: DescentOptimizer, param: Tensor, group: Group, keep_host: bool = True
    ) -> None:
        state = self.state[param]
        if self.counts_steps:
            state["step"] = torch.zeros((), dtype=torch.float32, device=param.device)
        state.update(self._init_state(param, group))
        host = {"step": 0.0} if self.counts_steps else {}
        for key, value in self._init_host(group).items():
            state[key] = torch.tensor(value, dtype=self.scalar_state[key], device=param.device)
            host[key] = value
        if keep_host:
            self._hosts[param] = host

    def _host(self: DescentOptimizer, param: Tensor, state: State) -> Host:
        """The host mirror of ``param``'s scalar state (read from the device once, after a load)."""
        host = self._hosts.get(param)
        if host is None:
            keys = (["step"] if self.counts_steps else []) + list(self.scalar_state)
            host = {key: float(state[key]) for key in keys if key in state}
            self._hosts[param] = host
        return host

    def _device_host(self: DescentOptimizer, state: State) -> Host:
        """The scalar state as 0-d device tensors (the "device" path): t in float64 (float32
        where the device has no float64) so that βᵗ is as exact as on the host."""
        host: dict[str, Any] = {key: state[key] for key in self.scalar_state}
        if self.counts_steps:
            step = state["step"]
            host["step"] = step.to(torch.float32 if step.device.type == "mps" else torch.float64)
        return host

    # -- one update -----------------------------------------------------------------------------

    def step(self: DescentOptimizer, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """One update of every parameter that has a gradient; returns the closure's loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        # As torch's optimizers: the update is recorded by autograd only when differentiable.
        with torch.set_grad_enabled(bool(self.defaults["differentiable"])):
            for group in self.param_groups:
                self._step_group(group)
        return loss

    def _step_group(self: DescentOptimizer, group: Group) -> None:
        lr = self.lr_at(group)
        params = group["params"]
        grads = [param.grad for param in params]
        if any(map(is_, grads, repeat(None))):
            params = [param for param, grad in zip(params, grads, strict=True) if grad is not None]
            grads = [grad for grad in grads if grad is not None]
        else:
            params = list(params)  # the plan keeps this list: not the group's own
        if params:
            if self._path(group) == "device":
                self._step_on_device(group, params, grads, lr)
            else:
                self._step_on_host(group, params, grads, lr)
        group["step"] += 1

    def _step_on_host(
        self: DescentOptimizer,
        group: Group,
        params: list[Tensor],
        grads: list[Tensor],
        lr: float,
    ) -> None:
        plan = self._plans.get(id(group))
        if plan is None or not plan.fits(self, group, params):
            self._refuse_sparse(grads)
            live = {id(other) for other in self.param_groups}  # plans of removed groups go
            for key in [key for key in self._plans if key not in live]:
                del self._plans[key]
            plan = self._plans[id(group)] = Plan(self, group, params)
        # the plan's kernel splits apply only when the gradients are what it expects
        active = plan if plan.dense_grads(grads) else None
        if active is None:
            self._refuse_sparse(grads)
        if plan.bump is not None:
            plan.bump()
        elif plan.counters and not _native.add_one(plan.counters):
            foreach.add_(plan.counters, 1.0)
        for host in plan.hosts if self.counts_steps else ():
            host["step"] += 1
        self._run(StepArgs(group, plan.params, grads, plan.states, plan.hosts, lr, active))

    def _step_on_device(
        self: DescentOptimizer, group: Group, params: list[Tensor], grads: list[Tensor], lr: float
    ) -> None:
        """The "device" path: t read from the device, nothing cached (a compiled or captured
        step must not depend on host state)."""
        self._refuse_sparse(grads)
        states = []
        for param in params:
            if not self.state[param]:
                self._new_state(param, group, keep_host=False)
            states.append(self.state[param])
        # The host mirrors go stale; an eager step after this reads them back once.
        if self._hosts or self._plans:
            self._forget_plans()
        if self.counts_steps:
            foreach.add_([state["step"] for state in states], 1.0)
        hosts = [self._device_host(state) for state in states]
        self._run(StepArgs(group, params, grads, states, hosts, lr))

    def _refuse_sparse(self: DescentOptimizer, grads: Sequence[Tensor]) -> None:
        if any(grad.is_sparse for grad in grads):
            raise InputError(f"{type(self).__name__} does not take sparse gradients")

    def _path(self: DescentOptimizer, group: Group) -> Path:
        """Which step runs (see :mod:`descent.optim.base`)."""
        if group["impl"] == "reference" or group["foreach"] is False or group["differentiable"]:
            return "reference"
        if group["capturable"] or torch.compiler.is_compiling():
            return "device"
        if group["foreach"] or group["fused"] is False:
            return "foreach"
        return "fast"

    def _run(self: DescentOptimizer, step: StepArgs) -> None:
        step = self._as_real(step)
        path = self._path(step.group)
        if path == "reference":
            group, hosts, lr = step.group, step.hosts, step.lr
            for i in range(len(step.params)):
                work = self._lift(step.subset([i]), i)
                lifted = work.step
                self._reference_update(
                    group, lifted.params[0], lifted.grads[0], lifted.states[0], hosts[i], lr
                )
                work.lower()
        elif path == "fast":
            self._fast_update(step)
        else:
            # Under torch.compile the foreach formulation is what dynamo can trace (a ctypes call
            # breaks the graph, and torch's private fused calls fail functionalization); the
            # compiler fuses it into one kernel per bucket.
            self._foreach_run(step)

    @staticmethod
    def _as_real(step: StepArgs) -> StepArgs:
        """Complex parameters (and their gradients and state) as pairs of reals, as torch.optim
        updates them (new lists: the plan's kernel splits do not apply to them); the step itself
        when there are none."""
        plan = step.plan
        if plan is not None and not plan.has_complex:
            return step
        if not any(torch.is_complex(param) for param in step.params):
            return step
        return step.with_tensors(
            [torch.view_as_real(p) if torch.is_complex(p) else p for p in step.params],
            [torch.view_as_real(g) if torch.is_complex(g) else g for g in step.grads],
            [real_state(s) for s in step.states],
        )

    # -- lifting to the compute dtype ---------------------------------------------------------

    def _per_element(self: DescentOptimizer, state: State) -> list[str]:
        return [key for key in state if key != "step" and key not in self.scalar_state]

    def _compute_dtype(self: DescentOptimizer, param: Tensor, state: State) -> torch.dtype:
        """float32 or wider ("opmath", as torch's fused kernels compute)."""
        keys = self._per_element(state)
        state_dtype = state[keys[0]].dtype if keys else param.dtype
        return torch.promote_types(torch.promote_types(param.dtype, state_dtype), torch.float32)

    def _lift(self: DescentOptimizer, step: StepArgs, ordinal: int) -> Lifted:
        """The step's parameters, gradients and states (all of one dtype each) in the compute
        dtype: copies for bfloat16/float16 (and any state dtype other than the compute dtype),
        the tensors themselves otherwise. ``lower()`` writes the copies back."""
        params, states = step.params, step.states
        compute = self._compute_dtype(params[0], states[0])
        lifted_states, write_back = [], []
        for state in states:
            lifted = dict(state)
            for key in self._per_element(state):
                if state[key].dtype != compute:
                    lifted[key] = state[key].to(compute)
                    write_back.append((state[key], lifted[key]))
            lifted_states.append(lifted)
        group = step.group
        stochastic = group.get("stochastic_rounding", False) and params[0].dtype == torch.bfloat16
        return Lifted(
            originals=params,
            step=step.with_tensors(
                [p.to(compute) for p in params], [g.to(compute) for g in step.grads], lifted_states
            ),
            write_back=write_back,
            generator_seed=(group["step"], ordinal) if stochastic else None,
        )
