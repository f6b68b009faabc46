"""LARS: the formula by hand, fast == reference, pytorch_optimizer as oracle, resume, checks."""

from __future__ import annotations

import pytest
import torch
from pytorch_optimizer import LARS as PEER_LARS

from descent import optim
from tests.optim import oracle
from tests.optim.oracle import assert_all_close, assert_fast_equals_reference, assert_rejects, run
from tests.optim.resume import assert_resume_is_exact

schedule = oracle.Cosine(0.5, 1e-3)


def test_two_steps_by_hand() -> None:
    """r = κ‖θ‖/(‖g‖ + λ‖θ‖) ; v ← μv + η r (g + λθ) ; θ ← θ − v."""
    theta = torch.tensor([[3.0, -4.0]], dtype=torch.float64)  # ‖θ‖ = 5
    grad = torch.tensor([[0.6, 0.8]], dtype=torch.float64)  # ‖g‖ = 1
    param = theta.clone().requires_grad_(True)
    opt = optim.LARS([param], lr=2.0, momentum=0.5, weight_decay=0.2, trust_coefficient=0.1)
    param.grad = grad
    opt.step()
    ratio = 0.1 * 5 / (1 + 0.2 * 5)  # 0.25
    v = 2.0 * ratio * (grad + 0.2 * theta)
    torch.testing.assert_close(param.detach(), theta - v, rtol=0, atol=1e-15)
    theta = param.detach().clone()
    param.grad = grad
    opt.step()
    ratio = 0.1 * theta.norm() / (1 + 0.2 * theta.norm())
    v = 0.5 * v + 2.0 * ratio * (grad + 0.2 * theta)
    torch.testing.assert_close(param.detach(), theta - v, rtol=0, atol=1e-15)


def test_exclude_1d_gives_biases_plain_momentum_sgd() -> None:
    bias = torch.tensor([2.0, -3.0], dtype=torch.float64, requires_grad=True)
    opt = optim.LARS([bias], lr=0.1, weight_decay=0.5, exclude_1d=True)
    bias.grad = torch.tensor([0.5, -0.25], dtype=torch.float64)
    opt.step()
    expected = torch.tensor([2.0 - 0.05, -3.0 + 0.025], dtype=torch.float64)
    torch.testing.assert_close(bias.detach(), expected, rtol=0, atol=1e-15)


VARIANTS = [
    {},
    {"weight_decay": 0.1, "exclude_1d": True},
    {"weight_decay": 0.1, "lr_in_buffer": False, "trust_coefficient": 0.02},
    {"momentum": 0.0, "maximize": True},
]


@pytest.mark.parametrize("kwargs", VARIANTS)
def test_fast_equals_reference(kwargs: dict) -> None:
    assert_fast_equals_reference(optim.LARS, {"lr": schedule, **kwargs})


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
@pytest.mark.parametrize("impl", ["fast", "reference"])
def test_pytorch_optimizer_is_the_oracle_over_50_steps(weight_decay: float, impl: str) -> None:
    peer_form = {"lr_in_buffer": False, "exclude_1d": True, "trust_coefficient": 0.02}
    ours = run(lambda p: optim.LARS(p, lr=0.5, weight_decay=weight_decay, impl=impl, **peer_form))
    theirs = run(lambda p: PEER_LARS(p, lr=0.5, weight_decay=weight_decay, trust_coefficient=0.02))
    assert_all_close(ours, theirs)


def test_resume_with_a_schedule_is_bit_for_bit() -> None:
    assert_resume_is_exact(lambda ps: optim.LARS(ps, lr=schedule, weight_decay=0.1), [(4, 5)])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"momentum": 1.0}, r"momentum.*\[0, 1\)"),
        ({"trust_coefficient": 0.0}, r"trust_coefficient.*> 0"),
        ({"weight_decay": -1.0}, r"weight_decay.*≥ 0"),
        ({"exclude_1d": "yes"}, "exclude_1d"),
        ({"lr_in_buffer": 2}, "lr_in_buffer"),
    ],
)
def test_validation_messages(kwargs: dict, message: str) -> None:
    assert_rejects(optim.LARS, kwargs, message)
