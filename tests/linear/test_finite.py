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


# -- design.validated: arrays already in validate_data's output form skip its dispatch -----------


def sklearn_validated(estimator: object, X: object, y: object, reset: bool = True) -> tuple:
    from sklearn.utils.validation import validate_data

    return validate_data(
        estimator, X, y, y_numeric=True, dtype=[np.float64, np.float32], reset=reset,
        ensure_all_finite=False,
    )  # fmt: skip


def same_arrays(got: tuple, expected: tuple) -> bool:
    return len(got) == len(expected) and all(
        np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(got, expected, strict=True)
    )


def outcome(validation: object, *arguments: object) -> tuple[str, object]:
    """("error", its message) or ("arrays", what came back)."""
    try:
        return "arrays", validation(*arguments)  # type: ignore[operator]
    except ValueError as error:
        return "error", str(error)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_ready_arrays_come_back_as_they_are_with_the_attributes_validate_data_sets(
    dtype: type,
) -> None:
    X, y = data()
    X, y = X.astype(dtype), y.astype(dtype)
    ours, theirs = LinearRegressionGD(), LinearRegressionGD()
    got, expected = design.validated(ours, X, y), sklearn_validated(theirs, X, y)
    assert got[0] is X
    assert got[1] is y
    assert same_arrays(got, expected)
    assert ours.n_features_in_ == theirs.n_features_in_ == 3


def test_a_fit_on_arrays_after_one_on_a_dataframe_drops_the_feature_names() -> None:
    pandas = pytest.importorskip("pandas")
    X, y = data()
    model = LinearRegressionGD(max_epochs=3).fit(pandas.DataFrame(X, columns=list("abc")), y)
    assert list(model.feature_names_in_) == ["a", "b", "c"]
    model.fit(X, y)
    assert not hasattr(model, "feature_names_in_")
    assert model.n_features_in_ == 3


@pytest.mark.parametrize(
    "case", ["y with a NaN", "y as a column", "integer X", "list X", "y of another length"]
)
def test_every_other_input_gets_validate_datas_own_answer(case: str) -> None:
    X, y = data()
    if case == "y with a NaN":
        y[4] = np.nan
    elif case == "y as a column":
        y = y[:, None]
    elif case == "integer X":
        X = (10 * X).astype(np.int64)
    elif case == "list X":
        X = X.tolist()
    else:
        y = y[:-1]
    kind, expected = outcome(sklearn_validated, LinearRegressionGD(), X, y)
    got_kind, got = outcome(design.validated, LinearRegressionGD(), X, y)
    assert got_kind == kind
    assert got == expected if kind == "error" else same_arrays(got, expected)  # type: ignore[arg-type]


def test_without_reset_a_width_or_names_mismatch_is_validate_datas_message() -> None:
    X, y = data()
    model = LinearRegressionGD(max_epochs=3).fit(X, y)
    with pytest.raises(ValueError, match="X has 2 features, but LinearRegressionGD is expecting 3"):
        model.fit_report(X[:, :2], y)
    assert design.validated(model, X, y, reset=False)[0] is X
