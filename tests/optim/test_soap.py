"""SOAP: a rotated-basis step by hand, the basis refresh, fast == reference, heavyball.SOAP as
the oracle over 50 steps, resume, checks."""

from __future__ import annotations

import math

import pytest
import torch

from descent import optim
from descent.optim.soap import eigenbasis, refresh_basis, soap_sides
from tests.optim import oracle
from tests.optim.oracle import assert_all_close, assert_fast_equals_reference, assert_rejects
from tests.optim.resume import assert_resume_is_exact

schedule = oracle.Cosine(0.01, 1e-3)


def rotation(angle: float) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, -s], [s, c]], dtype=torch.float64)


def test_three_steps_by_hand_in_a_known_eigenbasis() -> None:
    """Gradients G_k = U diag(a_k, b_k) Wᵀ share one eigenbasis (Q_L = U, Q_R = W up to signs),
    so in the rotated basis SOAP is Adam on the diagonal entries, which we compute by hand. (ε is
    large here because rounding leaves ~1e-16 off the diagonal, which an Adam step divides by
    √V + ε.)"""
    u, w = rotation(0.3), rotation(-1.1)
    diagonals = [(3.0, 1.0), (0.5, -2.0), (1.5, 0.25)]
    lr, beta1, beta2, eps, decay = 0.1, 0.9, 0.99, 1e-2, 0.5
    theta = torch.tensor([[1.0, -2.0], [0.5, 3.0]], dtype=torch.float64)
    param = theta.clone().requires_grad_(True)
    opt = optim.SOAP(
        [param],
        lr=lr,
        betas=(beta1, beta2),
        eps=eps,
        weight_decay=decay,
        precondition_frequency=1,
    )
    for a, b in diagonals:
        param.grad = u @ torch.diag(torch.tensor([a, b], dtype=torch.float64)) @ w.T
        opt.step()
    # step 1 only builds the preconditioner; steps 2 and 3 are Adam steps t = 1, 2
    expected = theta.clone()
    m = [0.0, 0.0]
    v = [0.0, 0.0]
    for t, pair in enumerate(diagonals[1:], start=1):
        n = []
        for j, gj in enumerate(pair):
            m[j] = beta1 * m[j] + (1 - beta1) * gj
            v[j] = beta2 * v[j] + (1 - beta2) * gj * gj
            n.append((m[j] / (1 - beta1**t)) / (math.sqrt(v[j] / (1 - beta2**t)) + eps))
        direction = u @ torch.diag(torch.tensor(n, dtype=torch.float64)) @ w.T
        expected = expected * (1 - lr * decay) - lr * direction
    torch.testing.assert_close(param.detach(), expected, rtol=1e-12, atol=1e-12)


def test_refresh_basis_is_power_iteration_towards_the_eigenvectors() -> None:
    torch.manual_seed(0)
    x = torch.randn(5, 5, dtype=torch.float64)
    eigenvectors = torch.linalg.qr(x).Q
    factor = (
        eigenvectors
        @ torch.diag(torch.tensor([5.0, 3.0, 2.0, 1.0, 0.5]).double())
        @ (eigenvectors.T)
    )
    # one step from Q = I: the QR of L's columns, taken in decreasing diag(L), each in its place
    basis = refresh_basis(factor, torch.eye(5, dtype=torch.float64))
    order = torch.argsort(torch.diagonal(factor), descending=True)
    q, r = torch.linalg.qr(factor[:, order])
    q = q * torch.sign(torch.diagonal(r))
    torch.testing.assert_close(basis[:, order], q, rtol=1e-13, atol=1e-13)
    # repeated, it converges to the eigenvectors (up to order and sign)
    for _ in range(200):
        basis = refresh_basis(factor, basis)
    overlap = (basis.T @ eigenvectors).abs()
    torch.testing.assert_close(overlap.max(dim=0).values, torch.ones(5, dtype=torch.float64))
    assert torch.allclose(basis.T @ basis, torch.eye(5, dtype=torch.float64), atol=1e-12)
    # the initial basis: eigenvectors by decreasing eigenvalue
    first = eigenbasis(factor)
    torch.testing.assert_close(
        (first.T @ eigenvectors).abs(), torch.eye(5, dtype=torch.float64), atol=1e-10, rtol=0
    )


def test_which_sides_are_preconditioned() -> None:
    assert soap_sides(torch.Size([4, 6]), 10_000) == (True, True)
    assert soap_sides(torch.Size([4, 6]), 5) == (True, False)
    assert soap_sides(torch.Size([1, 6]), 10_000) == (False, True)
    assert soap_sides(torch.Size([3, 2, 2]), 10_000) == (True, True)  # as 3 × 4
    assert soap_sides(torch.Size([7]), 10_000) == (False, False)  # a vector: Adam


def rippling(p: torch.Tensor, k: int, i: int) -> torch.Tensor:
    """sin(1.3θ + 0.3k + i) + 0.1θ: the drifting field, a little steeper."""
    return torch.sin(1.3 * p + 0.3 * k + i) + 0.1 * p


def run(
    make: oracle.MakeOptimizer, shapes: tuple = ((4, 4), (4, 4), (3, 3), (5,))
) -> list[torch.Tensor]:
    return oracle.run(make, shapes, gradient=rippling)


VARIANTS = [
    {},
    {"convention": "heavyball", "precondition_frequency": 3},
    {"precondition_frequency": 1, "maximize": True, "weight_decay": 0.0},
    {"shampoo_beta": 0.5, "max_precond_dim": 3},
]


@pytest.mark.parametrize("kwargs", VARIANTS)
def test_fast_equals_reference(kwargs: dict) -> None:
    # same-shaped matrices (batched together), a 3-D tensor (as 3 × 3), a vector and a 1×5
    # matrix (one matrix shape, different sides), and a matrix whose long side is beyond
    # max_precond_dim in the last variant
    shapes = ((4, 4), (4, 4), (3, 1, 3), (3, 6), (5,), (1, 5))
    assert_fast_equals_reference(optim.SOAP, {"lr": schedule, **kwargs}, shapes, rippling)


def heavyball_soap(params: list[torch.Tensor], **kwargs: object) -> torch.optim.Optimizer:
    heavyball = pytest.importorskip("heavyball")
    heavyball.utils.compile_mode = None  # eager: the test compares arithmetic, not compilers
    return heavyball.SOAP(params, compile_step=False, storage_dtype="float64", **kwargs)


# heavyball keeps lr and the betas as float32 scalars: these values are exact in float32, so the
# comparison sees the algorithm, not that rounding.
PEER_ARGS = {"lr": 2**-7, "betas": (0.875, 0.9375), "weight_decay": 0.0625}


@pytest.mark.parametrize("frequency", [1, 2, 4])
@pytest.mark.parametrize("impl", ["fast", "reference"])
def test_heavyball_soap_is_the_oracle_over_50_steps(frequency: int, impl: str) -> None:
    """shampoo_beta = 0 (L = GGᵀ of the latest gradient) makes heavyball's debiased factor
    weights exact, so the two agree to rounding."""
    theirs = run(
        lambda p: heavyball_soap(p, shampoo_beta=0.0, precondition_frequency=frequency, **PEER_ARGS)
    )
    ours = run(
        lambda p: optim.SOAP(
            p,
            shampoo_beta=0.0,
            precondition_frequency=frequency,
            convention="heavyball",
            impl=impl,
            **PEER_ARGS,
        )
    )
    assert_all_close(ours, theirs)


def test_heavyball_soap_with_factor_averaging() -> None:
    """With β_s > 0 heavyball's factor weights 1 − (1−β_s)/(1−β_sᵗ) are float32 numbers: the
    bases, and so the iterates, then agree to about float32's precision (the paper's convention,
    for contrast, is far from heavyball's here)."""
    theirs = run(lambda p: heavyball_soap(p, shampoo_beta=0.875, **PEER_ARGS))
    ours = run(
        lambda p: optim.SOAP(
            p, shampoo_beta=0.875, convention="heavyball", precondition_frequency=2, **PEER_ARGS
        )
    )
    paper = run(lambda p: optim.SOAP(p, shampoo_beta=0.875, precondition_frequency=2, **PEER_ARGS))
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-7)
    assert max(float((a - b).abs().max()) for a, b in zip(paper, theirs, strict=True)) > 1e-4


def test_resume_with_a_schedule_is_bit_for_bit() -> None:
    assert_resume_is_exact(
        lambda ps: optim.SOAP(ps, lr=schedule, precondition_frequency=3),
        [(4, 5), (4, 5), (5,)],
        split=13,
    )


def test_trains_a_small_regression() -> None:
    torch.manual_seed(0)
    x = torch.randn(64, 6)
    y = x @ torch.randn(6, 3)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    opt = optim.SOAP(model.parameters(), lr=3e-2, precondition_frequency=2)
    losses = []
    for _ in range(150):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        *oracle.MOMENT_REJECTIONS,
        ({"shampoo_beta": 1.5}, r"shampoo_beta.*\[0, 1\)"),
        ({"precondition_frequency": 0}, "precondition_frequency"),
        ({"max_precond_dim": 2.5}, "max_precond_dim"),
        ({"convention": "distributed"}, "convention"),
        ({"weight_decay": -1.0}, "weight_decay"),
    ],
)
def test_validation_messages(kwargs: dict, message: str) -> None:
    assert_rejects(optim.SOAP, kwargs, message, shape=(2, 2))


def test_complex_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="complex"):
        optim.SOAP([torch.zeros(2, 2, dtype=torch.complex64, requires_grad=True)])
