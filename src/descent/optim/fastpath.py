"""The tensors behind a rule's step: which ones a fused or C kernel takes, and lifting
bfloat16/float16 tensors to the compute dtype ("opmath") and back, with optional stochastic
rounding. The shell (:mod:`descent.optim.base`) and the rules' fast paths use these; see its
module docstring for which path runs where."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import is_, itemgetter
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from descent.optim._compat import foreach

if TYPE_CHECKING:
    from descent.optim.stepping import Plan

Group = dict[str, Any]
State = dict[str, Any]
Host = dict[str, float]

# Dtypes torch's fused CPU/CUDA kernels take (the fast path gives them float32/float64 only; lower
# precision goes through the float32 foreach formulation).
FUSED_DTYPES = (torch.float32, torch.float64)


class StepArgs:
    """One group's update as a rule's step receives it: the ``group``, the ``params`` that have a
    gradient, their ``grads``, ``states`` (the state dicts) and ``hosts`` (the host mirrors of
    the scalar state, ``host["step"]`` the step count t of this update), and ``lr``, the
    learning rate of this update. Made once per group step and passed whole through the shell,
    the kernel calls and every rule's ``_foreach_update(step)`` / ``_fast_update(step)``.

    ``plan`` is the group's step plan (:class:`~descent.optim.stepping.Plan`) when these are its
    own lists and its kernel splits apply to them, else None; the methods below then answer from
    what the plan keeps instead of reading every tensor again. A :meth:`subset` or a set of
    lifted tensors (:meth:`with_tensors`) has no plan.
    """

    __slots__ = ("grads", "group", "hosts", "lr", "params", "plan", "states")

    def __init__(
        self,
        group: Group,
        params: list[Tensor],
        grads: list[Tensor],
        states: list[State],
        hosts: list[Host],
        lr: float,
        plan: Plan | None = None,
    ) -> None:
        self.group, self.params, self.grads, self.states = group, params, grads, states
        self.hosts, self.lr, self.plan = hosts, lr, plan

    def subset(self, indices: Sequence[int]) -> StepArgs:
        """The same step on the tensors at ``indices`` (this one when they are all of it, in
        order, as a split's indices are: a kernel over the whole group copies no list)."""
        if len(indices) == len(self.params):
            return self
        return StepArgs(
            self.group,
            pick(self.params, indices),
            pick(self.grads, indices),
            pick(self.states, indices),
            pick(self.hosts, indices),
            self.lr,
        )

    def with_tensors(
        self, params: list[Tensor], grads: list[Tensor], states: list[State]
    ) -> StepArgs:
        """The same step on other tensors standing for these (lifted, or complex ones as reals),
        one for one."""
        return StepArgs(self.group, params, grads, states, self.hosts, self.lr)

    # -- what the kernels take (the plan's answers when it applies) ---------------------------

    def fused_buckets(self) -> tuple[list[list[int]], list[int]]:
        """Indices of the tensors a fused kernel takes, bucketed by (device, dtype), and the
        rest (a new list the caller may extend)."""
        plan = self.plan
        if plan is not None:
            return plan.fused[0], list(plan.fused[1])
        return fused_buckets(self.params, self.grads, self.states)

    def native_split(self) -> tuple[list[int], list[int]]:
        """Indices the C kernels take, and the rest (a new list the caller may extend)."""
        plan = self.plan
        if plan is not None:
            return plan.native[0], list(plan.native[1])
        return native_split(self.params, self.grads, self.states)

    def native_dtype(self) -> torch.dtype | None:
        """The one dtype of the tensors the C kernels take, when the plan knows it; else None
        (the caller reads them)."""
        plan = self.plan
        return None if plan is None else plan.native_dtype

    def mean_numel(self) -> float:
        """Elements per tensor, on average."""
        plan = self.plan
        return mean_numel(self.params) if plan is None else plan.mean_numel

    def planned(self, key: str, compute: Callable[[], Any]) -> Any:
        """``compute()``, kept in the plan under ``key`` (for what a rule derives from the
        parameters alone, e.g. their dimensions: the plan is rebuilt when they change)."""
        plan = self.plan
        if plan is None:
            return compute()
        value = plan.memo.get(key)
        if value is None:
            value = plan.memo[key] = compute()
        return value

    def lists(self, indices: list[int], *state_keys: str | None) -> list[list[Any]]:
        """[θ, g, state[key] for each key] of the tensors at ``indices``, one list each, as a
        kernel takes them (a key None: an empty list, for a tensor list the kernel skips)."""
        whole = len(indices) == len(self.params)
        lists = (
            [self.params, self.grads]
            if whole
            else [
                pick(self.params, indices),
                pick(self.grads, indices),
            ]
        )
        for key in state_keys:
            lists.append([] if key is None else self.column(key, indices))
        return lists

    def column(self, key: str, indices: list[int]) -> list[Tensor]:
        """``states[i][key]`` for i in ``indices``: kept in the plan when the indices are all of
        them (read again after a load: the plan is rebuilt; checked by identity at each step, so
        a tensor replaced by hand is the one used)."""
        plan, states = self.plan, self.states
        if plan is not None and len(indices) == len(states):
            column = plan.columns.get(key)
            if column is None or not all(map(is_, column, map(itemgetter(key), states))):
                column = plan.columns[key] = [state[key] for state in states]
            return column
        return [states[i][key] for i in indices]

    # (comprehensions, not map(itemgetter): torch.compile traces the foreach path, and dynamo
    # does not trace an itemgetter)
    def all_steps(self) -> list[Any]:
        """The step count t of each tensor (a float, or a 0-d tensor on the "device" path)."""
        return [host["step"] for host in self.hosts]

    def steps(self, indices: Sequence[int]) -> list[Any]:
        """The step count t of each tensor at ``indices``."""
        hosts = self.hosts
        return [hosts[i]["step"] for i in indices]

    def by_step(self, indices: list[int], compute: Callable[[float], Any]) -> Any:
        """``compute(t)`` for the step count t of the tensors at ``indices``: one value when they
        all share t (the usual case: computed once), else a list of one per tensor (the C
        kernels' path, never traced: one C-level pass over the host dicts)."""
        hosts = self.hosts if len(indices) == len(self.hosts) else pick(self.hosts, indices)
        steps = list(map(_STEP, hosts))
        if steps.count(steps[0]) == len(steps):
            return compute(steps[0])
        return [compute(step) for step in steps]


_STEP = itemgetter("step")


def mean_numel(params: list[Tensor]) -> float:
    """Elements per tensor, on average."""
    return sum(param.numel() for param in params) / max(len(params), 1)


class Lifted:
    """Tensors lifted to the compute dtype by :meth:`DescentOptimizer._lift`: ``step`` is the
    step on them, ``originals`` the parameters :meth:`lower` writes back into."""

    def __init__(
        self,
        originals: list[Tensor],
        step: StepArgs,
        write_back: list[tuple[Tensor, Tensor]],
        generator_seed: tuple[int, int] | None,
    ) -> None:
        self.originals, self.step = originals, step
        self.write_back, self.generator_seed = write_back, generator_seed

    def lower(self) -> None:
        """Write the computed values back in the original dtypes (rounding once)."""
        params = self.step.params
        if params[0] is not self.originals[0]:
            if self.generator_seed is not None:
                generator = _rounding_generator(self.originals[0].device, *self.generator_seed)
                for param, value in zip(self.originals, params, strict=True):
                    param.copy_(stochastic_round_bf16(value, generator))
            else:
                foreach.copy_(self.originals, params)
        for target, value in self.write_back:
            target.copy_(value)


def _rounding_generator(device: torch.device, step: int, ordinal: int) -> torch.Generator:
    """The random bits of stochastic rounding: a function of the update number and the bucket,
    so the same run rounds the same way, and a resumed run as if never interrupted."""
    generator = torch.Generator(device=device)
    generator.manual_seed(0x5EED_0000 + 1_000_003 * step + ordinal)
    return generator


def stochastic_round_bf16(value: Tensor, generator: torch.Generator) -> Tensor:
    """float32 → bfloat16 rounded up or down at random, with the probability of rounding up equal
    to the fraction of the gap below: unbiased, so many small updates are not all lost.

    bfloat16 keeps a float32's upper 16 bits: adding 16 random bits to the magnitude and
    truncating the lower 16 does exactly that (for either sign, as floats are sign-magnitude).
    """
    bits = value.float().contiguous().view(torch.int32)
    noise = torch.randint(
        0, 1 << 16, bits.shape, dtype=torch.int32, device=bits.device, generator=generator
    )
    return ((bits + noise) & -65536).view(torch.float32).to(torch.bfloat16)


def real_state(state: State) -> State:
    return {
        key: torch.view_as_real(value)
        if isinstance(value, Tensor) and torch.is_complex(value)
        else value
        for key, value in state.items()
    }


def pick(items: Sequence[Any], indices: Sequence[int]) -> list[Any]:
    return [items[i] for i in indices]


def plain_state(param: Tensor, states: State) -> bool:
    """float32/float64, contiguous, state of the parameter's dtype (what a kernel needs of a
    parameter and its state; the device is the caller's test, the gradient :func:`_plain`'s)."""
    dtype = param.dtype
    if dtype not in FUSED_DTYPES or not param.is_contiguous():
        return False
    for key, value in states.items():
        if value.dtype != dtype and key != "step" and value.dim() > 0:
            return False
    return True


def _plain(param: Tensor, grad: Tensor | None, states: State) -> bool:
    """:func:`plain_state`, and a contiguous gradient of the parameter's dtype (``grad`` None:
    the step plan, which checks the gradients at each step). This runs every step over every
    tensor where no step plan applies: the cheapest tests first."""
    if grad is not None and (grad.dtype != param.dtype or not grad.is_contiguous()):
        return False
    return plain_state(param, states)


def fused_buckets(
    params: Sequence[Tensor], grads: Sequence[Tensor | None], states: Sequence[State]
) -> tuple[list[list[int]], list[int]]:
    """Indices of the tensors a fused kernel can take, bucketed by (device, dtype), and the rest
    (for the foreach formulation); ``grads`` may be Nones (see :func:`_plain`). This runs every
    step: it is kept to a plain loop."""
    buckets: dict[tuple[torch.device, torch.dtype], list[int]] = {}
    rest: list[int] = []
    for index, (param, grad, state) in enumerate(zip(params, grads, states, strict=True)):
        device = param.device
        same_device = grad is None or grad.device == device
        if device.type in ("cpu", "cuda") and same_device and _plain(param, grad, state):
            buckets.setdefault((param.device, param.dtype), []).append(index)
        else:
            rest.append(index)
    return list(buckets.values()), rest


def native_split(
    params: Sequence[Tensor], grads: Sequence[Tensor | None], states: Sequence[State]
) -> tuple[list[int], list[int]]:
    """Indices the C kernels can take (built, CPU, contiguous, float32/float64), and the rest;
    ``grads`` may be Nones (see :func:`_plain`). No device object is built (``is_cpu``): this
    runs every step over every tensor."""
    from descent.optim import _native

    if not _native.available():
        return [], list(range(len(params)))
    native, rest = [], []
    for index, (param, grad, state) in enumerate(zip(params, grads, states, strict=True)):
        ok = param.is_cpu and (grad is None or grad.is_cpu) and _plain(param, grad, state)
        (native if ok else rest).append(index)
    return native, rest


#: The largest tensor whose LAMB direction u the C step keeps in a buffer between its passes
#: (small enough that the tensor's parameters, gradients, state and u stay in the last-level
#: cache between the passes; above it, pass 2 recomputes u).
TWO_PASS_BATCH = 1 << 19
