"""The lecture's loss and gradient, the exact optimum, the auto step size."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LinearRegression

from descent.linear import (
    Basis,
    Gram,
    decay_steps,
    gradient,
    largest_eigenvalue,
    least_squares,
    lipschitz_step,
    loss,
    moments,
    parse_basis,
)
from descent.linear.basis import with_bias


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


# -- the blocked one-pass statistics -------------------------------------------------------------

BASES = ["identity", "poly:3", "powers:3", "rbf:7", "sigmoid:4", "fourier:3", "custom"]


def _basis(name: str) -> Basis:
    if name == "custom":
        return parse_basis(lambda X: torch.cat([X.sin(), X[:, :1] * X[:, 1:2]], dim=1))
    return parse_basis(name)


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("name", BASES)
@pytest.mark.parametrize("rows", [37, 1000])  # blocks that do not divide n; n below one block
def test_blocked_pass_equals_the_plain_product(name: str, rows: int) -> None:
    rng = np.random.default_rng(1)
    # columns of other scales and offsets, |mean| / spread up to 10: centering the k × k
    # statistics costs about ε (mean / spread)² of relative accuracy (docs/linear.md)
    X = rng.normal(size=(200, 3)) * [1.0, 4.0, 0.2] + [0.5, -3.0, 2.0]
    y = rng.normal(size=200) + 7.0
    basis = _basis(name).fit(X)
    F = basis.checked_features(X)
    stats = moments((F[a : a + rows], y[a : a + rows]) for a in range(0, 200, rows))
    mean = F.mean(dim=0)
    scale = 1.0 / (F - mean).square().mean(dim=0).sqrt()
    rotation = torch.linalg.qr(torch.as_tensor(rng.normal(size=(F.shape[1], F.shape[1]))))[0]
    # the plain product, in 80-bit long double so that its own rounding does not count
    wide = [np.asarray(t.numpy(), dtype=np.longdouble) for t in (F, mean, scale, rotation)]
    F_, mean_, scale_, rotation_ = wide
    y_ = np.asarray(y, dtype=np.longdouble)
    for center, transform, design in [
        (None, None, F_),
        (mean, scale, (F_ - mean_) * scale_),
        (mean, rotation, (F_ - mean_) @ rotation_),
    ]:
        Phi = np.concatenate([np.ones((200, 1), dtype=np.longdouble), design], axis=1)
        blocked = stats.gram(center, transform)
        for ours, exact in [(blocked.gram, Phi.T @ Phi), (blocked.moment, Phi.T @ y_)]:
            error = np.linalg.norm((ours.numpy() - exact).astype(np.float64))
            assert error <= 1e-12 * np.linalg.norm(exact.astype(np.float64))
        assert float(blocked.total) == pytest.approx(float(y_ @ y_), rel=1e-12)


@pytest.mark.parametrize("name", BASES)
def test_the_estimator_statistics_equal_its_design(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With blocks of a few hundred bytes the fit reads the rows in many blocks; its ΦᵀΦ and Φᵀy
    are those of the design matrix it describes."""
    from descent.linear import LinearRegressionGD

    monkeypatch.setattr("descent.linear.design.BLOCK_BYTES", 64)  # 256-row blocks
    rng = np.random.default_rng(2)
    X = rng.normal(size=(700, 2)) * [3.0, 0.5] + [1.0, -2.0]
    y = X @ [1.0, 2.0] + rng.normal(size=700)
    model = LinearRegressionGD(basis=_basis(name), max_epochs=2).fit(X, y)
    plain = Gram.of(model._design(X), torch.as_tensor(y))
    assert _relative(model.gram_.gram, plain.gram) < 1e-12
    assert _relative(model.gram_.moment, plain.moment) < 1e-12


def test_gram_optimum_equals_least_squares() -> None:
    rng = np.random.default_rng(3)
    Phi = with_bias(torch.as_tensor(rng.normal(size=(300, 5))))
    y = torch.as_tensor(rng.normal(size=300))
    exact = Gram.of(Phi, y).optimum()
    assert exact is not None
    reference = least_squares(Phi, y)
    assert exact.loss == pytest.approx(reference.loss, rel=1e-12)
    torch.testing.assert_close(exact.weights, reference.weights, rtol=1e-10, atol=1e-12)
    # nearly collinear columns: the normal equations would square κ; it declines
    collinear = torch.cat([Phi, Phi[:, 1:2] + 1e-9 * Phi[:, 2:3]], dim=1)
    assert Gram.of(collinear, y).optimum() is None


@pytest.mark.parametrize(
    ("mode", "size", "reduction"),
    [("single", 1, "sum"), ("minibatch", 7, "sum"), ("minibatch", 7, "mean")],
)
def test_decay_steps_is_its_formula(mode: str, size: int, reduction: str) -> None:
    """t₀ = min(n/2, 1/(η₀ μ)), μ = 2 λ_min(ΦᵀΦ)/n · (B for "sum"), λ_min from numpy."""
    generator = torch.Generator().manual_seed(0)
    for n, spread in ((400, 1.0), (400, 1e-3), (30, 1.0)):
        Phi = torch.randn(n, 4, generator=generator, dtype=torch.float64) * torch.tensor(
            [1.0, 1.0, spread, 1.0], dtype=torch.float64
        )
        gram = Phi.T @ Phi
        step = lipschitz_step(Phi, mode, size, reduction, gram, n=n)
        smallest = np.linalg.eigvalsh(gram.numpy())[0]
        mu = 2 * smallest / n * (size if reduction == "sum" else 1)
        expected = min(n / 2, 1 / (step * mu))
        assert decay_steps(step, gram, n, mode, size, reduction) == pytest.approx(expected, 1e-9)
    assert decay_steps(0.1, None, 300, "single", 1) == 150.0  # no statistics: the cap


def test_the_stochastic_bound_needs_no_power_iteration_below_a_column_norm() -> None:
    """λ_max(ΦᵀΦ) ≥ its largest diagonal entry, so a heaviest example below it is the bound:
    the shortcut gives the step the power iteration gives."""
    generator = torch.Generator().manual_seed(1)
    Phi = torch.randn(300, 5, generator=generator, dtype=torch.float64)
    gram = Phi.T @ Phi
    assert float((Phi * Phi).sum(dim=1).max()) <= float(gram.diagonal().max())
    shortcut = lipschitz_step(Phi, "single", 1, "sum", gram, n=300)
    iterated = lipschitz_step(Phi, "single", 1, "sum")  # no ΦᵀΦ: power iteration on Φ
    assert shortcut == pytest.approx(iterated, rel=1e-12)
    assert shortcut == pytest.approx(1 / (2 * float((Phi * Phi).sum(dim=1).max())), rel=1e-12)


@pytest.mark.parametrize("basis", ["poly:1", "poly:3", "poly:5", "powers:4", "identity"])
@pytest.mark.parametrize("block", [37, 1 << 15])  # blocks that do not divide n; n below one
@pytest.mark.parametrize("native", [True, False])  # the C power sums, or numpy's products
def test_a_basis_shortcut_statistics_equal_its_design(
    basis: str, block: int, native: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shorter routes a basis takes to its statistics (power sums for one input's
    polynomial, one product for the identity) give the design matrix's ΦᵀΦ and Φᵀy."""
    from descent.linear import LinearRegressionGD, compiled

    if not native:
        monkeypatch.setattr(compiled, "entry", lambda name: None)
    elif compiled.entry("power_sums_f64") is None:
        pytest.skip("the C kernels are not built: the numpy case covers the shortcut")
    monkeypatch.setattr("descent.linear.basis._POWER_BLOCK", block)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(500, 1)) * 1.5 + 0.7
    y = 2.0 - x[:, 0] + 0.5 * x[:, 0] ** 3 + rng.normal(size=500)
    for standardize in (False, True, "orthonormal"):
        model = LinearRegressionGD(basis=basis, standardize=standardize, max_epochs=2).fit(x, y)
        plain = Gram.of(model._design(x), torch.as_tensor(y))
        assert _relative(model.gram_.gram, plain.gram) < 1e-12
        assert _relative(model.gram_.moment, plain.moment) < 1e-12
        assert float(model.gram_.total) == pytest.approx(float(plain.total), rel=1e-12)
    assert parse_basis(basis).fit(x).moments(x, y) is not None
    two_inputs = np.c_[x, x]  # several inputs' monomials: no shortcut, the blocked pass
    shortcut = parse_basis(basis).fit(two_inputs).moments(two_inputs, y)
    assert (shortcut is not None) == (basis == "identity")
