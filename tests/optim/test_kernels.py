"""The C loops that run a whole step of a sum-dependent rule (LAMB, Prodigy) over many tensors:
on one thread they pipeline the tensors' passes, on several they split each pass over the
threads. Both give the reference step, and the same bits as each other."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from descent import optim
from descent.optim import _native
from descent.optim.fastpath import TWO_PASS_BATCH

pytestmark = pytest.mark.skipif(not _native.available(), reason="the C kernels are not built")

# kept, then larger than the kept buffer (u recomputed; LAMB's pipeline spreads the previous
# tensor's pass 2 over its first blocks only), tiny, 1-D (excluded under exclude_1d), 2-D
SIZES = [(3000,), (TWO_PASS_BATCH + 7,), (5,), (TWO_PASS_BATCH // 2,), (64,), (7, 3)]


def _trajectory(
    name: str, impl: str, threads: int, dtype: torch.dtype, kwargs: dict[str, Any]
) -> list[torch.Tensor]:
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        generator = torch.Generator().manual_seed(3)
        params = [torch.randn(s, generator=generator, dtype=dtype) for s in SIZES]
        opt = optim.create(name, [p.requires_grad_() for p in params], impl=impl, **kwargs)
        for k in range(3):
            for i, p in enumerate(params):
                p.grad = torch.sin(p.detach() * (k + 1) + i)
            opt.step()
        return [p.detach().clone() for p in params]
    finally:
        torch.set_num_threads(before)


CASES = [
    ("lamb", {"lr": 0.01, "weight_decay": 0.1, "exclude_1d": True}),
    ("lamb", {"lr": 0.01, "bias_correction": "lr", "max_weight_norm": 1.0, "eps_in_trust": True}),
    ("prodigy", {"weight_decay": 0.01}),
    ("prodigy", {"weight_decay": 0.01, "decouple": False, "maximize": True}),
]


@pytest.mark.parametrize(("name", "kwargs"), CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_one_thread_and_two_threads_give_the_same_bits(
    name: str, kwargs: dict[str, Any], dtype: torch.dtype
) -> None:
    one = _trajectory(name, "fast", 1, dtype, kwargs)
    two = _trajectory(name, "fast", 2, dtype, kwargs)
    for a, b in zip(one, two, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize(("name", "kwargs"), CASES)
@pytest.mark.parametrize("threads", [1, 2])
def test_the_c_loops_equal_the_reference(name: str, kwargs: dict[str, Any], threads: int) -> None:
    fast = _trajectory(name, "fast", threads, torch.float64, kwargs)
    reference = _trajectory(name, "reference", threads, torch.float64, kwargs)
    for a, b in zip(fast, reference, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


LR_SCHEDULE = [1.0, 1.0, 0.0, 1.0]


@pytest.mark.parametrize("threads", [1, 2])
def test_prodigy_without_a_step_still_moves_its_moments(threads: int) -> None:
    """A zero gradient first (Σ|s| = 0: m, v move, θ and d do not), then lr = 0 (θ moves with the
    moments as they are, s and r do not): the C passes follow the reference through both."""
    finals = []
    for impl in ("fast", "reference"):
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            generator = torch.Generator().manual_seed(4)
            params = [torch.randn(s, generator=generator, dtype=torch.float64) for s in SIZES[1:]]
            opt = optim.create(
                "prodigy",
                [p.requires_grad_() for p in params],
                impl=impl,
                lr=lambda k: LR_SCHEDULE[min(k, 3)],
                weight_decay=0.1,
            )
            for k in range(4):
                for i, p in enumerate(params):
                    p.grad = torch.zeros_like(p) if k == 0 else torch.cos(p.detach() * k + i)
                opt.step()
            group = opt.param_groups[0]
            finals.append(
                [p.detach().clone() for p in params]
                + [torch.tensor([group["d"], group["d_max"], group["d_numerator"]])]
            )
        finally:
            torch.set_num_threads(before)
    for a, b in zip(*finals, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_lamb_over_mixed_dtypes_equals_one_group_per_dtype() -> None:
    """float32 and float64 tensors interleaved in one group (one C call per dtype, each pipelined
    with its own pair of u buffers) step as two groups of one dtype each, bit for bit."""
    sizes = [(3000,), (2000,), (4000,), (50, 20), (1000,)]
    dtypes = [torch.float32, torch.float64, torch.float32, torch.float64, torch.float32]

    def make() -> list[torch.Tensor]:
        generator = torch.Generator().manual_seed(6)
        return [
            torch.randn(s, generator=generator, dtype=d).requires_grad_()
            for s, d in zip(sizes, dtypes, strict=True)
        ]

    mixed, split = make(), make()
    kwargs = {"lr": 0.01, "weight_decay": 0.1}
    one = optim.create("lamb", mixed, **kwargs)
    two = optim.create(
        "lamb",
        [{"params": [p for p in split if p.dtype == d]} for d in (torch.float32, torch.float64)],
        **kwargs,
    )
    for k in range(3):
        for params in (mixed, split):
            for i, p in enumerate(params):
                p.grad = torch.sin(p.detach() * (k + 1) + i)
        one.step()
        two.step()
    for a, b in zip(mixed, split, strict=True):
        assert torch.equal(a, b)
