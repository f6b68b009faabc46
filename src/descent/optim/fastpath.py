"""The tensors behind a rule's step: which ones a fused or C kernel takes, and lifting
bfloat16/float16 tensors to the compute dtype ("opmath") and back, with optional stochastic
rounding. The shell (:mod:`descent.optim.base`) and the rules' fast paths use these; see its
module docstring for which path runs where."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from descent.optim._compat import foreach

State = dict[str, Any]

# Dtypes torch's fused CPU/CUDA kernels take (the fast path gives them float32/float64 only; lower
# precision goes through the float32 foreach formulation).
FUSED_DTYPES = (torch.float32, torch.float64)


class Lifted:
    """Tensors lifted to the compute dtype by :meth:`DescentOptimizer._lift`."""

    def __init__(
        self,
        originals: list[Tensor],
        params: list[Tensor],
        grads: list[Tensor],
        states: list[State],
        write_back: list[tuple[Tensor, Tensor]],
        generator_seed: tuple[int, int] | None,
    ) -> None:
        self.originals, self.params, self.grads, self.states = originals, params, grads, states
        self.write_back, self.generator_seed = write_back, generator_seed

    def lower(self) -> None:
        """Write the computed values back in the original dtypes (rounding once)."""
        if self.params[0] is not self.originals[0]:
            if self.generator_seed is not None:
                generator = _rounding_generator(self.originals[0].device, *self.generator_seed)
                for param, value in zip(self.originals, self.params, strict=True):
                    param.copy_(stochastic_round_bf16(value, generator))
            else:
                foreach.copy_(self.originals, self.params)
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
