"""Prodigy: the formula by hand, fast == reference, prodigyopt as oracle, resume, checks."""

from __future__ import annotations

import math

import pytest
import torch
from prodigyopt import Prodigy as PeerProdigy

from descent import optim
from tests.optim import oracle
from tests.optim.oracle import assert_all_close, assert_fast_equals_reference, assert_rejects, run
from tests.optim.resume import assert_resume_is_exact

schedule = oracle.Cosine(1.0, 1e-2)


def test_first_step_by_hand() -> None:
    """t = 1 from θ₀: r = 0 (θ = θ₀), so d̂ = 0 and d stays d₀; s = (d/d₀)·dη·g = d₀g;
    θ ← θ − d₀ m/(√v + d₀ε) with m = d₀(1−β₁)g, v = d₀²(1−β₂)g²."""
    theta = torch.tensor([1.0, -2.0], dtype=torch.float64)
    grad = torch.tensor([0.5, -0.25], dtype=torch.float64)
    param = theta.clone().requires_grad_(True)
    opt = optim.Prodigy([param], impl="reference")
    param.grad = grad
    opt.step()
    d0 = 1e-6
    m = d0 * 0.1 * grad
    v = d0 * d0 * 0.001 * grad * grad
    torch.testing.assert_close(
        param.detach(), theta - d0 * m / (v.sqrt() + d0 * 1e-8), rtol=0, atol=1e-18
    )
    assert opt.param_groups[0]["d"] == d0
    # second step: r = β₃·0 + (d/d₀)·d·⟨g, θ₀ − θ⟩ > 0, so d grows to r/‖s‖₁
    moved = theta - param.detach()
    param.grad = grad
    opt.step()
    beta3 = math.sqrt(0.999)
    r = d0 * float(grad @ moved)
    s = beta3 * d0 * grad + d0 * grad
    assert opt.param_groups[0]["d"] == pytest.approx(max(d0, r / s.abs().sum().item()), rel=1e-12)


VARIANTS = [
    {},
    {"weight_decay": 0.01},
    {"weight_decay": 0.01, "decouple": False},
    {"bias_correction": True},
    {"safeguard_warmup": True},
    {"d_coef": 2.0, "growth_rate": 1.05},
]


@pytest.mark.parametrize("kwargs", [*VARIANTS, {"maximize": True, "beta3": 0.95}])
def test_fast_equals_reference(kwargs: dict) -> None:
    assert_fast_equals_reference(optim.Prodigy, {"lr": schedule, **kwargs})


@pytest.mark.parametrize("kwargs", VARIANTS)
@pytest.mark.parametrize("impl", ["fast", "reference"])
def test_prodigyopt_is_the_oracle_over_50_steps(kwargs: dict, impl: str) -> None:
    peer = {("use_bias_correction" if k == "bias_correction" else k): v for k, v in kwargs.items()}
    ours = run(lambda p: optim.Prodigy(p, impl=impl, **kwargs))
    theirs = run(lambda p: PeerProdigy(p, **peer))
    moved = run(lambda p: optim.SGD(p, lr=0.0))
    assert max((a - b).abs().max().item() for a, b in zip(ours, moved, strict=True)) > 1e-5
    assert_all_close(ours, theirs)


def test_resume_with_a_schedule_is_bit_for_bit() -> None:
    assert_resume_is_exact(lambda ps: optim.Prodigy(ps, lr=schedule, weight_decay=0.1), [(4, 5)])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        *oracle.MOMENT_REJECTIONS,
        ({"d0": 0.0}, r"d0.*> 0"),
        ({"d_coef": -1.0}, r"d_coef.*> 0"),
        ({"growth_rate": 0.5}, r"growth_rate.*≥ 1"),
        ({"beta3": 1.0}, r"beta3.*\[0, 1\)"),
        ({"decouple": "yes"}, "decouple"),
    ],
)
def test_validation_messages(kwargs: dict, message: str) -> None:
    assert_rejects(optim.Prodigy, kwargs, message)


def _in_the_kernels_order(values: list[float]) -> float:
    """Σ values as the C kernels add them: blocks of 4,096 in order, each in 8 lanes (element i
    in lane i mod 8, left to right) joined pairwise, the blocks' sums added in block order."""
    total = 0.0
    for start in range(0, len(values), 4096):
        lanes = [0.0] * 8
        for i, value in enumerate(values[start : start + 4096]):
            lanes[i % 8] += value
        total += ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + (
            (lanes[4] + lanes[5]) + (lanes[6] + lanes[7])
        )
    return total


@pytest.mark.parametrize(("size", "threads"), [(2 * 4096 + 305, 1), (70_001, 2)])
def test_c_sums_add_in_their_documented_order(size: int, threads: int) -> None:
    """Pass 1's sums Σg(θ₀ − θ) and Σ|s| (β₃ = 0, c_s = 1: s ← g) equal, to the bit, the fixed
    order docs/optimizers.md states, over several blocks and a tail that is no multiple of 8, on
    one thread and split over two: no thread count or vector unit changes a step."""
    from descent.optim import _native

    if not _native.available():
        pytest.skip("the C kernels are not built")
    generator = torch.Generator().manual_seed(11)
    p, g, p0 = (torch.randn(size, generator=generator, dtype=torch.float64) for _ in range(3))
    s = torch.zeros(size, dtype=torch.float64)
    sums = torch.zeros(1, 2, dtype=torch.float64)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        _native.run_columns(
            "prodigy_sums",
            dict(
                p=[p],
                g=[g],
                p0=[p0],
                s=[s],
                sums=[sums.data_ptr()],
                beta3=0.0,
                c_s=1.0,
                wd=0.0,
                sign=1.0,
                update=1,
            ),
        )
    finally:
        torch.set_num_threads(before)
    assert torch.equal(s, g)
    dots = (g * (p0 - p)).tolist()
    magnitudes = g.abs().tolist()
    assert sums[0, 0].item() == _in_the_kernels_order(dots)
    assert sums[0, 1].item() == _in_the_kernels_order(magnitudes)
