"""Lion: the formula by hand, fast == reference, lion_pytorch as oracle, resume, checks."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from lion_pytorch import Lion as PeerLion

from descent import optim
from tests.optim import oracle
from tests.optim.oracle import assert_all_close, assert_fast_equals_reference, assert_rejects
from tests.optim.resume import assert_resume_is_exact

schedule = oracle.Cosine(1e-3, 1e-5)
run = partial(oracle.run, gradient=oracle.chirping)


def test_two_steps_by_hand() -> None:
    param = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64, requires_grad=True)
    opt = optim.Lion([param], lr=0.1, betas=(0.9, 0.99), weight_decay=0.5, impl="reference")
    param.grad = torch.tensor([0.3, -0.2, 0.0], dtype=torch.float64)
    opt.step()
    # c = 0.1 g → sign(c) = (1, −1, 0) ; θ ← θ − 0.1 (sign(c) + 0.5 θ) ; m = 0.01 g
    expected = torch.tensor(
        [1.0 - 0.1 * 1.5, -2.0 - 0.1 * (-1.0 - 1.0), 0.5 - 0.1 * 0.25], dtype=torch.float64
    )
    torch.testing.assert_close(param.detach(), expected, rtol=0, atol=1e-15)
    torch.testing.assert_close(
        opt.state[param]["exp_avg"], torch.tensor([0.003, -0.002, 0.0], dtype=torch.float64)
    )
    # second gradient (−1, 1, −1): c = 0.9 m + 0.1 g = (−0.0973, 0.0982, −0.1) → sign (−1, 1, −1)
    theta = param.detach().clone()
    param.grad = torch.tensor([-1.0, 1.0, -1.0], dtype=torch.float64)
    opt.step()
    expected = theta - 0.1 * (torch.tensor([-1.0, 1.0, -1.0], dtype=torch.float64) + 0.5 * theta)
    torch.testing.assert_close(param.detach(), expected, rtol=0, atol=1e-15)


VARIANTS = [{}, {"weight_decay": 0.3}, {"betas": (0.95, 0.98), "maximize": True}]


@pytest.mark.parametrize("kwargs", VARIANTS)
def test_fast_equals_reference(kwargs: dict) -> None:
    assert_fast_equals_reference(optim.Lion, {"lr": schedule, **kwargs}, gradient=oracle.chirping)


@pytest.mark.parametrize("kwargs", [{}, {"weight_decay": 0.3}, {"betas": (0.95, 0.98)}])
@pytest.mark.parametrize("impl", ["fast", "reference"])
def test_lion_pytorch_is_the_oracle_over_50_steps(kwargs: dict, impl: str) -> None:
    ours = run(lambda p: optim.Lion(p, lr=1e-3, impl=impl, **kwargs))
    theirs = run(lambda p: PeerLion(p, lr=1e-3, **kwargs))
    assert_all_close(ours, theirs)


def test_resume_with_a_schedule_is_bit_for_bit() -> None:
    assert_resume_is_exact(lambda ps: optim.Lion(ps, lr=schedule, weight_decay=0.1), [(20,)])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"betas": (1.0, 0.99)}, r"betas\[0\].*\[0, 1\)"),
        ({"betas": (0.9,)}, "pair"),
        ({"weight_decay": -0.1}, r"weight_decay.*≥ 0"),
        ({"lr": -1.0}, "lr"),
    ],
)
def test_validation_messages(kwargs: dict, message: str) -> None:
    assert_rejects(optim.Lion, kwargs, message)
