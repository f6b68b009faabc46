"""Adafactor: the formula by hand, fast == reference, torch.optim.Adafactor as oracle, resume,
checks."""

from __future__ import annotations

import math
from functools import partial

import pytest
import torch

from descent import optim
from tests.optim import oracle
from tests.optim.oracle import assert_all_close, assert_fast_equals_reference, assert_rejects
from tests.optim.resume import assert_resume_is_exact

schedule = oracle.Cosine(1e-2, 1e-4)
# a matrix (row and column factors), a 3-D tensor (factored over its last two dimensions), a vector
SHAPES = ((7, 3), (2, 4, 6), (5,))
run = partial(oracle.run, shapes=SHAPES)


def test_two_steps_of_a_matrix_by_hand() -> None:
    theta = torch.tensor([[1.0, -2.0], [0.5, 3.0]], dtype=torch.float64)
    param = theta.clone().requires_grad_(True)
    opt = optim.Adafactor([param], lr=0.1, impl="reference")
    grads = [
        torch.tensor([[0.5, -1.0], [2.0, 0.25]], dtype=torch.float64),
        torch.tensor([[-0.3, 0.6], [1.0, -2.0]], dtype=torch.float64),
    ]
    rows = torch.zeros(2, 1, dtype=torch.float64)
    cols = torch.zeros(1, 2, dtype=torch.float64)
    for t, g in enumerate(grads, start=1):
        param.grad = g
        opt.step()
        rate = t**-0.8  # 1 − β̂₂ₜ
        sq = g * g + 1e-30
        rows = (1 - rate) * rows + rate * sq.mean(dim=1, keepdim=True)
        cols = (1 - rate) * cols + rate * sq.mean(dim=0, keepdim=True)
        v_hat = rows @ cols / rows.mean()
        u = g / v_hat.sqrt()
        rho = min(0.1, 1 / math.sqrt(t))
        alpha = max(1e-3, theta.pow(2).mean().sqrt().item()) * rho
        clip = max(1.0, u.pow(2).mean().sqrt().item())
        theta = theta - alpha / clip * u
        torch.testing.assert_close(param.detach(), theta, rtol=1e-14, atol=1e-14)


def test_a_vector_keeps_the_full_second_moment() -> None:
    theta = torch.tensor([3.0, -4.0], dtype=torch.float64)  # RMS = √12.5
    param = theta.clone().requires_grad_(True)
    opt = optim.Adafactor([param], lr=0.01)
    param.grad = torch.tensor([0.5, -0.25], dtype=torch.float64)
    opt.step()
    # t = 1: V̂ = g² + ε₁, U ≈ sign(g), RMS(U) ≈ 1, α = RMS(θ)·0.01
    expected = theta - math.sqrt(12.5) * 0.01 * torch.tensor([1.0, -1.0], dtype=torch.float64)
    torch.testing.assert_close(param.detach(), expected, rtol=1e-12, atol=1e-12)
    assert opt.state[param]["variance"].shape == (2,)


def test_a_matrix_keeps_row_and_column_factors() -> None:
    param = torch.ones(6, 4, requires_grad=True)
    opt = optim.Adafactor([param])
    param.grad = torch.ones(6, 4)
    opt.step()
    assert opt.state[param]["row_var"].shape == (6, 1)
    assert opt.state[param]["col_var"].shape == (1, 4)


TORCH_FORM = {"eps": (None, 1e-3), "eps1_inside": False}
VARIANTS = [{}, {"weight_decay": 0.1, "d": 0.5}, {**TORCH_FORM, "maximize": True}]


@pytest.mark.parametrize("kwargs", VARIANTS)
def test_fast_equals_reference(kwargs: dict) -> None:
    assert_fast_equals_reference(optim.Adafactor, {"lr": schedule, **kwargs}, SHAPES)


@pytest.mark.parametrize("kwargs", [{}, {"weight_decay": 0.1}, {"lr": 5e-3, "d": 2.0}])
@pytest.mark.parametrize("impl", ["fast", "reference"])
def test_torch_adafactor_is_the_oracle_over_50_steps(kwargs: dict, impl: str) -> None:
    ours = run(lambda p: optim.Adafactor(p, impl=impl, **TORCH_FORM, **kwargs))
    theirs = run(lambda p: torch.optim.Adafactor(p, **kwargs))
    assert_all_close(ours, theirs)


def test_resume_with_a_schedule_is_bit_for_bit() -> None:
    assert_resume_is_exact(
        lambda ps: optim.Adafactor(ps, lr=schedule, weight_decay=0.1), [(4, 5), (5,)]
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"beta2_decay": 0.5}, r"beta2_decay.*≤ 0"),
        ({"eps": 1e-3}, "pair"),
        ({"eps": (0.0, 1e-3)}, r"eps\[0\].*> 0"),
        ({"eps": (None, -1.0)}, r"eps\[1\].*≥ 0"),
        ({"d": 0.0}, r"d.*> 0"),
        ({"eps1_inside": "no"}, "eps1_inside"),
    ],
)
def test_validation_messages(kwargs: dict, message: str) -> None:
    assert_rejects(optim.Adafactor, kwargs, message)


@pytest.mark.parametrize("impl", ["fast", "reference"])
def test_a_zero_row_and_zero_column_in_float32_stay_finite(impl: str) -> None:
    """With ε₁ = 1e-30 inside, a row and a column whose gradients are always 0 (a dead unit and
    an input that is always 0) give R = C = 1e-30: R·C underflows to 0 in float32, and 0/√0 would
    be NaN. The factored form keeps the update finite (and 0 there)."""
    torch.manual_seed(0)
    param = torch.randn(4, 5, requires_grad=True)
    opt = optim.Adafactor([param], impl=impl)
    for _ in range(3):
        grad = torch.randn(4, 5)
        grad[1, :] = 0.0
        grad[:, 2] = 0.0
        param.grad = grad
        opt.step()
    assert torch.isfinite(param).all()
