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
