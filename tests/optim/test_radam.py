"""RAdam: the formula by hand, fast == reference, torch.optim.RAdam as oracle, resume, checks."""

from __future__ import annotations

import math
from functools import partial

import pytest
import torch

from descent import optim
from descent.optim.radam import radam_rectification
from tests.optim import oracle
from tests.optim.oracle import assert_all_close, assert_fast_equals_reference, assert_rejects
from tests.optim.resume import assert_resume_is_exact

schedule = oracle.Cosine(0.01, 1e-4)
run = partial(oracle.run, gradient=oracle.chirping)


def test_rectification_by_hand() -> None:
    beta2 = 0.999
    rho_inf = 2 / (1 - beta2) - 1  # 1999
    t = 10
    rho_t = rho_inf - 2 * t * beta2**t / (1 - beta2**t)
    expected = math.sqrt(
        (rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)
    )
    assert radam_rectification(t, beta2, 4.0) == pytest.approx(expected, rel=1e-15)
    # ρ₅ ≈ 4.997: adaptive under the paper's threshold, plain momentum under torch's
    assert radam_rectification(5, beta2, 4.0) is not None
    assert radam_rectification(5, beta2, 5.0) is None
    assert radam_rectification(1, beta2, 4.0) is None


def test_first_steps_by_hand() -> None:
    """t = 1: θ − η m̂ with m̂ = g; t = 5 (ρ₅ > 4): the rectified Adam step."""
    param = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
    opt = optim.RAdam([param], lr=0.1, impl="reference")
    grad = torch.tensor([0.5, -1.0], dtype=torch.float64)
    theta = param.detach().clone()
    m = torch.zeros(2, dtype=torch.float64)
    v = torch.zeros(2, dtype=torch.float64)
    for t in range(1, 6):
        param.grad = grad * t
        opt.step()
        g = grad * t
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        m_hat = m / (1 - 0.9**t)
        rho_inf = 1999.0
        rho_t = rho_inf - 2 * t * 0.999**t / (1 - 0.999**t)
        if rho_t > 4:
            r = math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / (1995 * 1997 * rho_t))
            theta = theta - 0.1 * r * m_hat * math.sqrt(1 - 0.999**t) / (v.sqrt() + 1e-8)
        else:
            theta = theta - 0.1 * m_hat
        torch.testing.assert_close(param.detach(), theta, rtol=1e-14, atol=1e-14)


VARIANTS = [
    {},
    {"weight_decay": 0.1},
    {"weight_decay": 0.1, "decoupled_weight_decay": True},
    {"threshold": 5.0, "maximize": True},
    {"betas": (0.8, 0.99), "eps": 1e-6},
]


@pytest.mark.parametrize("kwargs", VARIANTS)
def test_fast_equals_reference(kwargs: dict) -> None:
    assert_fast_equals_reference(optim.RAdam, {"lr": schedule, **kwargs}, gradient=oracle.chirping)


@pytest.mark.parametrize("kwargs", VARIANTS[:4])
@pytest.mark.parametrize("impl", ["fast", "reference"])
def test_torch_radam_is_the_oracle_over_50_steps(kwargs: dict, impl: str) -> None:
    kwargs = {"threshold": 5.0, **kwargs}
    torch_kwargs = {k: v for k, v in kwargs.items() if k != "threshold"}
    ours = run(lambda p: optim.RAdam(p, lr=0.01, impl=impl, **kwargs))
    theirs = run(lambda p: torch.optim.RAdam(p, lr=0.01, **torch_kwargs))
    assert_all_close(ours, theirs)


def test_paper_threshold_differs_from_torch_at_step_5() -> None:
    paper = run(lambda p: optim.RAdam(p, lr=0.01), steps=5)
    torch_form = run(lambda p: torch.optim.RAdam(p, lr=0.01), steps=5)
    assert not torch.allclose(paper[0], torch_form[0])


def test_resume_with_a_schedule_is_bit_for_bit() -> None:
    assert_resume_is_exact(
        lambda ps: optim.RAdam(ps, lr=schedule, decoupled_weight_decay=True, weight_decay=0.1),
        [(20,)],
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        *oracle.MOMENT_REJECTIONS,
        ({"betas": (1.0, 0.999)}, r"betas\[0\].*\[0, 1\)"),
        ({"threshold": -1.0}, r"threshold.*≥ 0"),
        ({"decoupled_weight_decay": "yes"}, "decoupled_weight_decay"),
        ({"weight_decay": -0.1}, r"weight_decay.*≥ 0"),
    ],
)
def test_validation_messages(kwargs: dict, message: str) -> None:
    assert_rejects(optim.RAdam, kwargs, message)
