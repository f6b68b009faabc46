"""LAMB: the formula by hand, fast == reference, pytorch_optimizer as oracle, resume, checks."""

from __future__ import annotations

import math
from functools import partial

import pytest
import torch
from pytorch_optimizer import Lamb as PeerLamb

from descent import optim
from tests.optim import oracle
from tests.optim.oracle import assert_all_close, assert_fast_equals_reference, assert_rejects
from tests.optim.resume import assert_resume_is_exact

schedule = oracle.Cosine(1e-2, 1e-4)
run = partial(oracle.run, gradient=oracle.chirping)


def test_first_step_by_hand() -> None:
    """t = 1: m̂ = g, v̂ = g², u = g/(|g| + ε) + λθ, θ ← θ − η ‖θ‖/‖u‖ · u."""
    theta = torch.tensor([[3.0, -4.0], [0.0, 1.0]], dtype=torch.float64)
    grad = torch.tensor([[0.5, 2.0], [-1.0, 0.25]], dtype=torch.float64)
    param = theta.clone().requires_grad_(True)
    opt = optim.LAMB([param], lr=0.1, eps=1e-6, weight_decay=0.1, impl="reference")
    param.grad = grad
    opt.step()
    u = grad / (grad.abs() + 1e-6) + 0.1 * theta
    ratio = math.sqrt(26.0) / u.norm().item()
    torch.testing.assert_close(param.detach(), theta - 0.1 * ratio * u, rtol=0, atol=1e-15)


def test_exclude_1d_gives_biases_adams_step_without_decay() -> None:
    weight = torch.ones(2, 2, dtype=torch.float64, requires_grad=True)
    bias = torch.tensor([2.0, -3.0], dtype=torch.float64, requires_grad=True)
    opt = optim.LAMB([weight, bias], lr=0.1, weight_decay=0.5, exclude_1d=True)
    weight.grad = torch.full((2, 2), 0.3, dtype=torch.float64)
    bias.grad = torch.tensor([0.5, -0.25], dtype=torch.float64)
    opt.step()
    # bias: m̂/(√v̂ + ε) = sign(g)·|g|/(|g| + ε), no λθ, no ratio
    expected = torch.tensor([2.0, -3.0], dtype=torch.float64) - 0.1 * torch.tensor(
        [0.5 / (0.5 + 1e-6), -0.25 / (0.25 + 1e-6)], dtype=torch.float64
    )
    torch.testing.assert_close(bias.detach(), expected, rtol=0, atol=1e-15)
    # weight: the trust ratio makes the step η‖θ‖ long
    moved = (weight.detach() - 1.0).norm().item()
    assert moved == pytest.approx(0.1 * 2.0, rel=1e-12)


PEER_FORM = {"bias_correction": "lr", "max_weight_norm": 10.0, "eps_in_trust": True}
VARIANTS = [
    {},
    {"weight_decay": 0.1, "exclude_1d": True},
    {"weight_decay": 0.1, **PEER_FORM},
    {"bias_correction": "none", "maximize": True, "max_weight_norm": 1.0},
]


@pytest.mark.parametrize("kwargs", VARIANTS)
def test_fast_equals_reference(kwargs: dict) -> None:
    assert_fast_equals_reference(optim.LAMB, {"lr": schedule, **kwargs}, gradient=oracle.chirping)


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
@pytest.mark.parametrize("impl", ["fast", "reference"])
def test_pytorch_optimizer_is_the_oracle_over_50_steps(weight_decay: float, impl: str) -> None:
    ours = run(lambda p: optim.LAMB(p, lr=1e-2, weight_decay=weight_decay, impl=impl, **PEER_FORM))
    theirs = run(lambda p: PeerLamb(p, lr=1e-2, weight_decay=weight_decay, weight_decouple=False))
    assert_all_close(ours, theirs)


def test_paper_form_differs_from_the_peer() -> None:
    paper = run(lambda p: optim.LAMB(p, lr=1e-2), steps=3)
    peer = run(lambda p: PeerLamb(p, lr=1e-2, weight_decouple=False), steps=3)
    assert not torch.allclose(paper[0], peer[0])


def test_resume_with_a_schedule_is_bit_for_bit() -> None:
    assert_resume_is_exact(lambda ps: optim.LAMB(ps, lr=schedule, weight_decay=0.1), [(4, 5)])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        *oracle.MOMENT_REJECTIONS,
        ({"bias_correction": "adam"}, "bias_correction"),
        ({"max_weight_norm": 0.0}, r"max_weight_norm.*> 0"),
        ({"exclude_1d": "yes"}, "exclude_1d"),
        ({"eps_in_trust": 1.5}, "eps_in_trust"),
    ],
)
def test_validation_messages(kwargs: dict, message: str) -> None:
    assert_rejects(optim.LAMB, kwargs, message)


def test_bias_correction_none_is_pytorch_optimizers_adam_debias() -> None:
    peer_form = {**PEER_FORM, "bias_correction": "none"}
    ours = run(lambda p: optim.LAMB(p, lr=1e-2, weight_decay=0.01, **peer_form))
    theirs = run(
        lambda p: PeerLamb(p, lr=1e-2, weight_decay=0.01, weight_decouple=False, adam_debias=True)
    )
    assert_all_close(ours, theirs)
