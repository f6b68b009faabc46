"""torch.optim as the oracle: the arguments named in each docstring reproduce torch's variant."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from descent import optim

Factory = Callable[[list[torch.Tensor]], torch.optim.Optimizer]

PAIRS: dict[str, tuple[Factory, Factory]] = {
    "adam": (
        lambda p: optim.Adam(p, lr=0.01),
        lambda p: torch.optim.Adam(p, lr=0.01),
    ),
    "adam-l2": (
        lambda p: optim.Adam(p, lr=0.01, weight_decay=0.1),
        lambda p: torch.optim.Adam(p, lr=0.01, weight_decay=0.1),
    ),
    "adamw": (
        lambda p: optim.AdamW(p, lr=0.01, weight_decay=0.1),
        lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1),
    ),
    "amsgrad": (
        lambda p: optim.AMSGrad(p, lr=0.01, bias_correction=True),
        lambda p: torch.optim.Adam(p, lr=0.01, amsgrad=True),
    ),
    "sgd": (
        lambda p: optim.SGD(p, lr=0.05),
        lambda p: torch.optim.SGD(p, lr=0.05),
    ),
    "momentum-torch-form": (
        lambda p: optim.Momentum(p, lr=0.05, momentum=0.9, lr_in_buffer=False),
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9),
    ),
    "momentum-lecture-form": (  # equal to torch's for a constant learning rate
        lambda p: optim.Momentum(p, lr=0.05, momentum=0.9),
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9),
    ),
    "nesterov-torch-form": (
        lambda p: optim.Nesterov(p, lr=0.05, momentum=0.9, lr_in_buffer=False),
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True),
    ),
    "nesterov-lecture-form": (
        lambda p: optim.Nesterov(p, lr=0.05, momentum=0.9),
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True),
    ),
    "adagrad": (
        lambda p: optim.Adagrad(p, lr=0.1, eps=1e-10, eps_inside_sqrt=False),
        lambda p: torch.optim.Adagrad(p, lr=0.1),
    ),
    "adagrad-lr-decay": (
        lambda p: optim.Adagrad(
            p,
            lr=0.1,
            eps=1e-10,
            eps_inside_sqrt=False,
            lr_decay=0.01,
            initial_accumulator_value=0.1,
        ),
        lambda p: torch.optim.Adagrad(p, lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1),
    ),
    "rmsprop": (
        lambda p: optim.RMSprop(p, lr=0.01, rho=0.99, eps_inside_sqrt=False),
        lambda p: torch.optim.RMSprop(p, lr=0.01),
    ),
    "rmsprop-centered-momentum": (
        lambda p: optim.RMSprop(
            p, lr=0.01, rho=0.99, eps_inside_sqrt=False, centered=True, momentum=0.5
        ),
        lambda p: torch.optim.RMSprop(p, lr=0.01, centered=True, momentum=0.5),
    ),
    "adadelta": (
        lambda p: optim.Adadelta(p),
        lambda p: torch.optim.Adadelta(p),
    ),
    "adamax": (
        lambda p: optim.AdaMax(p, eps_in_max=True),
        lambda p: torch.optim.Adamax(p),
    ),
    "nadam": (
        lambda p: optim.Nadam(p, lr=0.002, momentum_decay=0.004),
        lambda p: torch.optim.NAdam(p, lr=0.002),
    ),
}


def run(factory: Factory, steps: int = 50) -> list[torch.Tensor]:
    """50 steps on a smooth, non-quadratic loss over two tensors (one 2-D)."""
    generator = torch.Generator().manual_seed(3)
    weight = torch.randn(6, 4, generator=generator, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(4, generator=generator, dtype=torch.float64, requires_grad=True)
    inputs = torch.randn(32, 6, generator=generator, dtype=torch.float64)
    targets = torch.randn(32, 4, generator=generator, dtype=torch.float64)
    opt = factory([weight, bias])
    for _ in range(steps):
        opt.zero_grad()
        loss = ((torch.tanh(inputs @ weight + bias) - targets) ** 2).mean()
        loss.backward()
        opt.step()
    return [weight.detach(), bias.detach()]


@pytest.mark.parametrize("pair", list(PAIRS))
def test_reproduces_torch_over_50_steps(pair: str) -> None:
    ours, theirs = PAIRS[pair]
    # torch keeps NAdam's μ-product in a float32 tensor whatever the parameters' dtype; descent
    # keeps it in float64, so the two agree to float32 rounding of that one scalar.
    rtol = 1e-7 if pair == "nadam" else 1e-10
    for a, b in zip(run(ours), run(theirs), strict=True):
        torch.testing.assert_close(a, b, rtol=rtol, atol=1e-12)


def test_lecture_momentum_differs_from_torch_under_a_schedule() -> None:
    """The docstring's claim: under a changing η the two forms part ways."""
    schedule = [0.1, 0.05, 0.02, 0.01]
    param = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
    peer = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
    ours = optim.Momentum([param], lr=lambda n: schedule[n])
    theirs = torch.optim.SGD([peer], lr=schedule[0], momentum=0.9)
    for n in range(4):
        for group in theirs.param_groups:
            group["lr"] = schedule[n]
        param.grad = torch.tensor([1.0], dtype=torch.float64)
        peer.grad = torch.tensor([1.0], dtype=torch.float64)
        ours.step()
        theirs.step()
    # lecture: v = Σ γ^(n−k) η_k ; torch: b = Σ γ^(n−k) and η_n b
    assert abs(param.item() - peer.item()) > 1e-3
