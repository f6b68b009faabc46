"""Muon: Newton–Schulz by hand, fast == reference, torch.optim.Muon (and AdamW for the other
tensors) as oracles, resume, checks."""

from __future__ import annotations

import math

import pytest
import torch

from descent import optim
from descent.optim.muon import NS_COEFFICIENTS, newton_schulz
from tests.optim import oracle
from tests.optim.oracle import assert_all_close, assert_fast_equals_reference, assert_rejects
from tests.optim.resume import assert_resume_is_exact

schedule = oracle.Cosine(0.02, 1e-3)


def run(make: oracle.MakeOptimizer, shapes: tuple = ((7, 3), (4, 6))) -> list[torch.Tensor]:
    return oracle.run(make, shapes)


def scalar_newton_schulz(values: list[float], steps: int = 5) -> list[float]:
    """On a diagonal matrix the iteration acts on each entry: x ← ax + bx³ + cx⁵."""
    a, b, c = NS_COEFFICIENTS
    norm = math.sqrt(sum(v * v for v in values))
    out = []
    for v in values:
        x = v / norm
        for _ in range(steps):
            x = a * x + b * x**3 + c * x**5
        out.append(x)
    return out


def test_newton_schulz_by_hand_on_a_diagonal_matrix() -> None:
    matrix = torch.diag(torch.tensor([3.0, 0.5, -1.0], dtype=torch.float64))
    result = newton_schulz(matrix, dtype=torch.float64)
    expected = torch.diag(torch.tensor(scalar_newton_schulz([3.0, 0.5, -1.0]), dtype=torch.float64))
    torch.testing.assert_close(result, expected, rtol=1e-13, atol=1e-13)
    # every singular value lands near 1 (in the iteration's band, about 0.7 … 1.2)
    singular = torch.linalg.svdvals(
        newton_schulz(torch.randn(6, 9, dtype=torch.float64), dtype=torch.float64)
    )
    assert singular.min() > 0.6
    assert singular.max() < 1.25


def test_one_step_by_hand() -> None:
    """b = (1−μ)g ; u = (1−μ)g + μb ; θ ← θ(1 − ηλ) − η·√max(1, 2/2)·NS(u)."""
    theta = torch.diag(torch.tensor([1.0, 2.0], dtype=torch.float64))
    grad = torch.diag(torch.tensor([0.4, -0.2], dtype=torch.float64))
    param = theta.clone().requires_grad_(True)
    opt = optim.Muon([param], lr=0.1, weight_decay=0.5, ns_dtype=torch.float64)
    param.grad = grad
    opt.step()
    u = 0.05 * grad + 0.95 * 0.05 * grad
    values = scalar_newton_schulz([u[0, 0].item(), u[1, 1].item()])
    ortho = torch.diag(torch.tensor(values, dtype=torch.float64))
    expected = theta * (1 - 0.05) - 0.1 * ortho
    torch.testing.assert_close(param.detach(), expected, rtol=1e-13, atol=1e-13)


VARIANTS = [
    {},
    {"nesterov": False, "weight_decay": 0.0},
    {"lr_scale": "match_rms_adamw", "maximize": True},
]


@pytest.mark.parametrize("kwargs", VARIANTS)
def test_fast_equals_reference(kwargs: dict) -> None:
    # two groups of same-shaped matrices (orthogonalized as a batch), a lone matrix, a vector
    shapes = ((7, 3), (7, 3), (7, 3), (4, 2, 3), (4, 2, 3), (6, 6), (5,))
    assert_fast_equals_reference(
        optim.Muon, {"lr": schedule, "ns_dtype": torch.float64, **kwargs}, shapes
    )


@pytest.mark.parametrize(
    "kwargs", [{}, {"nesterov": False, "weight_decay": 0.0}, {"lr_scale": "match_rms_adamw"}]
)
@pytest.mark.parametrize("impl", ["fast", "reference"])
def test_torch_muon_is_the_oracle_over_50_steps(kwargs: dict, impl: str) -> None:
    peer = {("adjust_lr_fn" if k == "lr_scale" else k): v for k, v in kwargs.items()}
    ours = run(lambda p: optim.Muon(p, lr=0.02, impl=impl, **kwargs))
    theirs = run(lambda p: torch.optim.Muon(p, lr=0.02, **peer))
    assert_all_close(ours, theirs)


def test_batched_newton_schulz_equals_one_matrix_at_a_time() -> None:
    torch.manual_seed(0)
    stack = torch.randn(4, 6, 9)
    for dtype in (torch.bfloat16, torch.float64):
        batched = newton_schulz(stack, dtype=dtype)
        for i in range(4):
            single = newton_schulz(stack[i], dtype=dtype)
            torch.testing.assert_close(batched[i], single, rtol=1e-12, atol=1e-12)
    tall = newton_schulz(stack.mT, dtype=torch.float64)  # tall matrices: by their transposes
    torch.testing.assert_close(tall, newton_schulz(stack, dtype=torch.float64).mT)


@pytest.mark.parametrize("impl", ["fast", "reference"])
def test_torch_muon_is_the_oracle_for_same_shaped_matrices(impl: str) -> None:
    """The batched bfloat16 iteration rounds as torch's one-at-a-time addmm chain."""
    shapes = ((4, 6), (4, 6), (4, 6), (7, 3), (7, 3))
    ours = run(lambda p: optim.Muon(p, lr=0.02, impl=impl), shapes)
    theirs = run(lambda p: torch.optim.Muon(p, lr=0.02), shapes)
    assert_all_close(ours, theirs)


@pytest.mark.parametrize("impl", ["fast", "reference"])
def test_other_tensors_take_torch_adamw(impl: str) -> None:
    """1-D tensors, and a group with use_muon=False, step as torch.optim.AdamW."""
    ours = run(
        lambda p: optim.Muon(
            [{"params": [p[0]], "use_muon": False}, {"params": [p[1]]}], lr=1e-2, impl=impl
        ),
        shapes=((4, 3), (6,)),
    )
    theirs = run(
        lambda p: torch.optim.AdamW(p, lr=1e-2, betas=(0.9, 0.95), eps=1e-10, weight_decay=0.1),
        shapes=((4, 3), (6,)),
    )
    assert_all_close(ours, theirs)


def test_resume_with_a_schedule_is_bit_for_bit() -> None:
    assert_resume_is_exact(lambda ps: optim.Muon(ps, lr=schedule), [(4, 5), (5,)])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"momentum": 1.0}, r"momentum.*\[0, 1\)"),
        ({"ns_steps": 0}, "ns_steps"),
        ({"ns_coefficients": (1.0, 2.0)}, "three numbers"),
        ({"ns_dtype": torch.float16}, "ns_dtype"),
        ({"lr_scale": "rms"}, "lr_scale"),
        ({"adamw_betas": (0.9, 1.0)}, r"betas\[1\]"),
        ({"adamw_eps": 0.0}, r"adamw_eps.*> 0"),
        ({"use_muon": "yes"}, "use_muon"),
    ],
)
def test_validation_messages(kwargs: dict, message: str) -> None:
    assert_rejects(optim.Muon, kwargs, message, shape=(2, 2))
