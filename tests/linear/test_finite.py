"""X's finiteness: read from the statistics where the basis shows its inputs (identity,
polynomials), from scikit-learn's own check otherwise; the same message either way."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.utils.validation import check_array

from descent.errors import InputError
from descent.linear import LinearRegressionGD, design
from descent.linear.basis import parse_basis


def data(p: int = 3, n: int = 60) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.uniform(-1.0, 1.0, (n, p))
    return X, X @ np.arange(1.0, p + 1) + 0.1 * rng.standard_normal(n)


def sklearn_message(X: np.ndarray) -> str:
    with pytest.raises(ValueError, match="Input X contains") as caught:
        check_array(X, input_name="X", estimator=LinearRegressionGD())
    return str(caught.value)


BASES = ["identity", "poly:2", "powers:3", "rbf:5", "sigmoid:4", "fourier:2"]


@pytest.mark.parametrize("basis", BASES)
@pytest.mark.parametrize("mode", ["full", "minibatch"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_input_is_refused_with_scikit_learns_message(
    basis: str, mode: str, bad: float
) -> None:
    X, y = data(p=1 if basis.startswith("fourier") else 3)
    X[7, 0] = bad
    with pytest.raises(ValueError, match="Input X contains") as caught:
        LinearRegressionGD(basis=basis, mode=mode, max_epochs=2).fit(X, y)
    assert str(caught.value) == sklearn_message(X)


@pytest.mark.parametrize("basis", ["identity", "poly:3"])
def test_the_statistics_route_is_the_one_taken_for_bases_that_show_their_inputs(
    basis: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the statistics tell, no pass of scikit-learn's over X: check_array is not called
    for finite data (it would be called with the data otherwise)."""
    checked: list[object] = []
    monkeypatch.setattr(design, "check_array", lambda X, **_: checked.append(X))
    X, y = data()
    model = LinearRegressionGD(basis=basis).fit(X, y)
    model.fit_report(X, y)
    assert checked == []
    assert design.reads_finiteness(parse_basis(basis), model.n_features_out_)


def test_other_bases_check_x_before_fitting() -> None:
    assert not parse_basis("rbf:5").shows_inputs
    assert parse_basis("identity").shows_inputs
    assert parse_basis("powers:2").shows_inputs


def test_fit_report_refuses_a_non_finite_input() -> None:
    X, y = data()
    model = LinearRegressionGD().fit(X, y)
    X[2, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.fit_report(X, y)


def test_finite_values_whose_squares_overflow_are_named() -> None:
    X, y = data()
    X[0, 0] = 1e200  # finite; its square is not
    with pytest.raises(InputError, match="overflow float64"):
        LinearRegressionGD(standardize=False).fit(X, y)


def test_partial_fit_refuses_a_non_finite_input_on_every_call() -> None:
    X, y = data()
    model = LinearRegressionGD(mode="minibatch", batch_size=10)
    bad = X.copy()
    bad[1, 1] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        model.partial_fit(bad, y)
    model.partial_fit(X, y)
    with pytest.raises(ValueError, match="infinity"):
        model.partial_fit(bad, y)


def test_an_overflowing_x_transpose_y_names_y() -> None:
    X, y = data()
    y = y * 1e306  # finite; Xᵀy is not
    with pytest.raises(InputError, match=r"Xᵀy or yᵀy overflows float64 .* rescale y"):
        LinearRegressionGD(standardize=False).fit(X * 10.0, y)
