"""The lecture's loss and gradient, the exact optimum, the auto step size."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LinearRegression

from descent.linear import Gram, gradient, largest_eigenvalue, least_squares, lipschitz_step, loss


def problem(n: int = 40, k: int = 5, seed: int = 0) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(seed)
    Phi = torch.randn(n, k, generator=generator, dtype=torch.float64)
    y = torch.randn(n, generator=generator, dtype=torch.float64)
    w = torch.randn(k, generator=generator, dtype=torch.float64)
    return Phi, y, w


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_analytic_gradient_equals_autograd_and_centered_difference(reduction: str) -> None:
    Phi, y, w = problem()
    analytic = gradient(Phi, y, w, reduction)
    leaf = w.clone().requires_grad_()
    loss(Phi, y, leaf, reduction).backward()
    torch.testing.assert_close(analytic, leaf.grad, rtol=1e-12, atol=1e-12)
    h = 1e-5
    numeric = torch.stack(
        [
            (loss(Phi, y, w + h * e, reduction) - loss(Phi, y, w - h * e, reduction)) / (2 * h)
            for e in torch.eye(len(w), dtype=torch.float64)
        ]
    )
    torch.testing.assert_close(analytic, numeric, rtol=1e-8, atol=1e-8)


def test_gradient_has_the_minus_sign_the_slides_drop() -> None:
    """At w = 0 with positive data the gradient points away from the data: −2 Σ y φ < 0."""
    Phi = torch.ones(3, 1, dtype=torch.float64)
    y = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    assert gradient(Phi, y, torch.zeros(1, dtype=torch.float64)).item() == -12.0


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_gram_form_equals_the_plain_form(reduction: str) -> None:
    Phi, y, w = problem()
    gram = Gram.of(Phi, y)
    torch.testing.assert_close(gram.gradient(w, reduction), gradient(Phi, y, w, reduction))
    torch.testing.assert_close(gram.loss(w, reduction), loss(Phi, y, w, reduction))


def test_least_squares_matches_scikit_learn() -> None:
    Phi, y, _ = problem(60, 4)
    ours = least_squares(Phi, y)
    theirs = LinearRegression(fit_intercept=False).fit(Phi.numpy(), y.numpy())
    np.testing.assert_allclose(ours.weights.numpy(), theirs.coef_, rtol=1e-10)
    assert ours.rank == 4


def test_least_squares_rank_deficient_gives_minimum_norm() -> None:
    Phi, y, _ = problem(30, 3)
    Phi = torch.cat([Phi, Phi[:, :1]], dim=1)  # a duplicated column
    result = least_squares(Phi, y)
    assert result.rank == 3
    torch.testing.assert_close(result.weights[0], result.weights[3])


def test_power_iteration_finds_the_largest_eigenvalue() -> None:
    Phi, _, _ = problem(100, 8)
    gram = Phi.T @ Phi
    assert largest_eigenvalue(gram) == pytest.approx(
        float(torch.linalg.eigvalsh(gram)[-1]), rel=1e-6
    )


@pytest.mark.parametrize(("mode", "size"), [("full", 200), ("sgd", 1), ("minibatch", 50)])
def test_lipschitz_step_is_stable_for_every_batch(mode: str, size: int) -> None:
    """The step times the largest batch curvature stays below 2 (the stability limit) for every
    batch of that size, and is no more than 4× smaller than the full-batch optimum 1/L."""
    Phi, _, _ = problem(200, 6, seed=3)
    step = lipschitz_step(Phi, mode, 50)
    for start in range(0, 200, size):
        batch = Phi[start : start + size]
        curvature = 2 * float(torch.linalg.eigvalsh(batch.T @ batch)[-1])
        assert step * curvature < 2.0
    if mode == "full":
        top = 2 * float(torch.linalg.eigvalsh(Phi.T @ Phi)[-1])
        assert 0.25 / top < step <= 1.0 / top * 1.0001
