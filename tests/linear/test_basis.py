"""Basis functions map (n, p) inputs to (n, k+1) design matrices with the bias first."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from sklearn.preprocessing import PolynomialFeatures

from descent.errors import InputError
from descent.linear import RBF, Custom, Fourier, Identity, Polynomial, Sigmoid, parse_basis

X = np.random.default_rng(0).normal(size=(30, 3))


@pytest.mark.parametrize(
    ("basis", "columns"),
    [
        (Identity(), 4),
        (Polynomial(3), 20),
        (Polynomial(3, interactions=False), 10),
        (RBF(5), 6),
        (Sigmoid(4), 13),
        (Fourier(2), 13),
        (Custom(lambda x: x[:, :1] ** 2), 2),
    ],
)
def test_shapes_and_bias_column(basis: object, columns: int) -> None:
    Phi = basis.fit_transform(X)  # type: ignore[attr-defined]
    assert Phi.shape == (30, columns)
    assert torch.equal(Phi[:, 0], torch.ones(30, dtype=torch.float64))
    assert torch.isfinite(Phi).all()


def test_polynomial_equals_scikit_learn_polynomial_features() -> None:
    ours = Polynomial(3).fit_transform(X).numpy()
    theirs = PolynomialFeatures(3).fit_transform(X)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)


def test_rbf_value() -> None:
    basis = RBF(centers=[[0.0], [1.0]], width=0.5).fit(np.zeros((1, 1)))
    Phi = basis.transform(np.array([[1.0]]))
    assert Phi[0, 1].item() == pytest.approx(np.exp(-1 / (2 * 0.25)))
    assert Phi[0, 2].item() == pytest.approx(1.0)


def test_transform_checks_the_number_of_inputs() -> None:
    basis = Polynomial(2).fit(X)
    with pytest.raises(ValueError, match="fitted on 3 input features, got 2"):
        basis.transform(X[:, :2])
    with pytest.raises(ValueError, match="not fitted"):
        RBF(3).transform(X)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("identity", Identity()),
        ("poly:3", Polynomial(3)),
        ("powers:2", Polynomial(2, False)),
        ("rbf:7", RBF(7)),
        ("sigmoid:4", Sigmoid(4)),
        ("fourier:3", Fourier(3)),
    ],
)
def test_parse_basis(spec: str, expected: object) -> None:
    assert parse_basis(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("quadratic", "unknown basis 'quadratic'"),
        ("poly:x", "not an integer"),
        ("poly:0", "degree must be an integer ≥ 1"),
        ("identity:2", "takes no argument"),
    ],
)
def test_parse_basis_errors(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_basis(spec)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Sigmoid(0), "number of centers must be a positive integer, got 0"),
        (lambda: Sigmoid(True), "number of centers must be a positive integer, got True"),
        (lambda: Fourier(2.5), "frequencies must be a positive integer, got 2.5"),
        (lambda: Fourier(3, period=-1.0), "fourier period must be > 0, got -1.0"),
        (lambda: Fourier(3, period=float("inf")), "fourier period must be a finite number"),
        (lambda: RBF(5, width=0.0), "RBF width must be > 0, got 0.0"),
        (lambda: RBF(5, width=float("nan")), "RBF width must be a finite number"),
    ],
)
def test_bad_basis_arguments_are_refused_in_the_library_wording(make, message: str) -> None:
    with pytest.raises(InputError, match=re.escape(message)):
        make()
