"""LinearRegressionGD reaches the exact optimum; seeds, dtypes, partial_fit, bad parameters."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn.datasets import load_diabetes

from descent import schedules as sch
from descent.errors import InputError
from descent.linear import LinearRegressionGD

DIABETES_X, DIABETES_Y = load_diabetes(return_X_y=True)


def synthetic(
    n: int = 500, seed: int = 0, conditioned: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """y = Xw + 2 + noise; unless ``conditioned``, the columns have other scales and offsets."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    if not conditioned:
        X = X * [1.0, 3.0, 0.5, 2.0] + [0.0, 1.0, -2.0, 5.0]
    y = X @ np.array([1.0, -2.0, 0.5, 3.0]) + 2.0 + 0.3 * rng.normal(size=n)
    return X, y


@pytest.mark.parametrize("standardize", [True, False])
def test_full_batch_auto_reaches_the_optimum_on_synthetic_data(standardize: bool) -> None:
    X, y = synthetic(conditioned=not standardize)
    model = LinearRegressionGD(standardize=standardize).fit(X, y)
    report = model.fit_report(X, y)
    assert report.converged
    assert abs(report.relative_gap) < 1e-8


def test_defaults_reach_the_optimum_on_diabetes() -> None:
    model = LinearRegressionGD().fit(DIABETES_X, DIABETES_Y)
    assert abs(model.fit_report(DIABETES_X, DIABETES_Y).relative_gap) < 1e-8
    assert model.score(DIABETES_X, DIABETES_Y) == pytest.approx(
        0.518, abs=1e-3
    )  # least squares on all rows


def test_degree_3_polynomial_on_diabetes_with_an_orthonormal_basis() -> None:
    model = LinearRegressionGD(basis="poly:3", standardize="orthonormal")
    report = model.fit(DIABETES_X, DIABETES_Y).fit_report(DIABETES_X, DIABETES_Y)
    assert abs(report.relative_gap) < 1e-8


def test_column_standardization_alone_stalls_on_degree_3_polynomials() -> None:
    """Documents why "orthonormal" exists: the standardized monomials of diabetes have a
    condition number near 1e11, and 500 epochs of full-batch descent stay far from the optimum."""
    model = LinearRegressionGD(basis="poly:3", max_epochs=500)
    report = model.fit(DIABETES_X, DIABETES_Y).fit_report(DIABETES_X, DIABETES_Y)
    assert not report.converged
    assert report.relative_gap > 0.1


@pytest.mark.parametrize(
    ("mode", "lr", "epochs", "tolerance"),
    [
        ("minibatch", sch.InverseTimeDecay(0.002, 50, 1.0), 100, 1e-5),
        ("sgd", sch.InverseTimeDecay(0.005, 500, 1.0), 30, 1e-5),
    ],
)
def test_stochastic_modes_reach_the_optimum_with_a_decaying_schedule(
    mode: str, lr: sch.Schedule, epochs: int, tolerance: float
) -> None:
    X, y = synthetic()
    model = LinearRegressionGD(mode=mode, learning_rate=lr, max_epochs=epochs, random_state=0)
    assert model.fit(X, y).fit_report(X, y).relative_gap < tolerance


def relative_gap(model: LinearRegressionGD, X: np.ndarray, y: np.ndarray) -> float:
    return model.fit(X, y).fit_report(X, y).relative_gap


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_decaying_default_reaches_1e_4_on_diabetes_within_50_epochs(seed: int) -> None:
    """With an orthonormal basis (κ = 1). On column-standardized diabetes (κ of ΦᵀΦ about 470)
    no stable step reaches 1e-4 in 50 epochs of SGD; the next tests hold there."""
    model = LinearRegressionGD(
        mode="single", standardize="orthonormal", max_epochs=50, tol=0.0, random_state=seed
    )
    assert relative_gap(model, DIABETES_X, DIABETES_Y) < 1e-4


def test_the_decaying_default_leaves_the_constant_step_s_noise_floor() -> None:
    gaps = {
        lr: np.mean(
            [
                relative_gap(
                    LinearRegressionGD(
                        mode="single", learning_rate=lr, max_epochs=50, tol=0.0, random_state=s
                    ),
                    DIABETES_X,
                    DIABETES_Y,
                )
                for s in range(3)
            ]
        )
        for lr in ("auto", "constant")
    }
    assert gaps["auto"] < 1e-2
    assert gaps["auto"] < gaps["constant"] / 5


def test_default_sgd_beats_sgdregressor_at_its_epoch_count() -> None:
    """scikit-learn's SGDRegressor (defaults, standardized columns) as the oracle: at the epoch
    count it stops at, descent's default SGD is closer to the optimum (mean over seeds 0-2)."""
    from sklearn.linear_model import SGDRegressor

    X = (DIABETES_X - DIABETES_X.mean(axis=0)) / DIABETES_X.std(axis=0)
    optimum = LinearRegressionGD(max_epochs=100_000).fit(X, DIABETES_Y)
    best = optimum.fit_report(X, DIABETES_Y).optimum_loss
    ours, theirs = [], []
    for seed in range(3):
        peer = SGDRegressor(random_state=seed).fit(X, DIABETES_Y)
        residual = DIABETES_Y - peer.predict(X)
        theirs.append((residual @ residual - best) / best)
        model = LinearRegressionGD(
            mode="single", max_epochs=peer.n_iter_, tol=0.0, random_state=seed
        )
        ours.append(relative_gap(model, X, DIABETES_Y))
    assert np.mean(ours) < np.mean(theirs)


def test_average_reports_the_mean_of_the_iterates() -> None:
    X, y = synthetic(60)
    plain = LinearRegressionGD(mode="single", max_epochs=3, tol=0.0, random_state=0).fit(X, y)
    averaged = LinearRegressionGD(
        mode="single", max_epochs=3, tol=0.0, random_state=0, average=True
    ).fit(X, y)
    np.testing.assert_array_equal(plain.w_.detach(), averaged.w_.detach())  # same iterates
    assert averaged.average_.count == 180
    assert not np.array_equal(plain.weights_, averaged.weights_)
    assert averaged.loss_history_[-1] == pytest.approx(
        averaged.fit_report(X, y).final_loss, rel=1e-9
    )


def test_without_the_c_kernels_the_fit_is_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    from descent.linear import epochs

    X, y = synthetic(80)
    compiled = LinearRegressionGD(mode="minibatch", batch_size=7, max_epochs=3, random_state=0)
    compiled.fit(X, y)
    monkeypatch.setattr(epochs._native, "available", lambda: False)
    fallback = LinearRegressionGD(mode="minibatch", batch_size=7, max_epochs=3, random_state=0)
    np.testing.assert_array_equal(fallback.fit(X, y).weights_, compiled.weights_)


def test_same_seed_same_weights_other_seed_other_weights() -> None:
    X, y = synthetic(200)

    def fit(seed: int) -> np.ndarray:
        model = LinearRegressionGD(mode="minibatch", max_epochs=5, random_state=seed)
        return model.fit(X, y).weights_

    np.testing.assert_array_equal(fit(3), fit(3))
    assert not np.array_equal(fit(3), fit(4))


def test_float32_input() -> None:
    X, y = synthetic()
    model = LinearRegressionGD().fit(X.astype(np.float32), y.astype(np.float32))
    assert model.score(X, y) > 0.99
    assert model.predict(X.astype(np.float32)).dtype == np.float64


def test_partial_fit_epochs_equal_fit_epochs() -> None:
    X, y = synthetic(200)
    whole = LinearRegressionGD(mode="minibatch", max_epochs=4, tol=0.0, random_state=1).fit(X, y)
    parts = LinearRegressionGD(mode="minibatch", random_state=1)
    for _ in range(4):
        parts.partial_fit(X, y)
    np.testing.assert_array_equal(parts.weights_, whole.weights_)
    assert parts.n_iter_ == 4


def test_coef_is_reported_for_the_unscaled_basis() -> None:
    X, y = synthetic(conditioned=True)
    scaled = LinearRegressionGD(standardize=True).fit(X, y)
    raw = LinearRegressionGD(standardize=False).fit(X, y)
    np.testing.assert_allclose(scaled.coef_, raw.coef_, rtol=1e-6)
    assert scaled.intercept_ == pytest.approx(raw.intercept_, rel=1e-6)


def test_loss_history_starts_at_w0_and_decreases_in_full_batch() -> None:
    X, y = synthetic()
    model = LinearRegressionGD(max_epochs=20, tol=0.0).fit(X, y)
    history = model.loss_history_
    assert len(history) == model.n_iter_ + 1 >= 10  # (an exactly zero gradient stops it early)
    assert history[0] == pytest.approx(float(y @ y))  # J(0) = Σ y²
    # the Gram form of J cancels terms ~3000× larger than J near the optimum: 1e-9 slack
    assert all(b <= a * (1 + 1e-9) for a, b in itertools.pairwise(history))


def test_any_update_rule() -> None:
    X, y = synthetic()
    model = LinearRegressionGD(
        optimizer="adam",
        learning_rate=sch.ExponentialDecay(0.5, 500, 0.1),
        max_epochs=3000,
        loss_reduction="mean",
    )
    assert model.fit(X, y).fit_report(X, y).relative_gap < 1e-6


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"mode": "online"}, "mode must be one of full, single, minibatch"),
        ({"optimizer": "lbfgs"}, "unknown optimizer 'lbfgs'"),
        ({"learning_rate": "fast"}, "learning_rate must be 'auto', 'constant'"),
        ({"average": "yes"}, "average"),
        ({"learning_rate": -1.0}, "lr must be a finite"),
        ({"max_epochs": 0}, "max_epochs must be a positive integer"),
        ({"standardize": "yes"}, "standardize must be"),
        ({"loss_reduction": "median"}, "loss_reduction"),
    ],
)
def test_bad_parameters(params: dict, message: str) -> None:
    X, y = synthetic(50)
    with pytest.raises(ValueError, match=message):
        LinearRegressionGD(**params).fit(X, y)


def test_divergence_is_reported_with_the_learning_rate() -> None:
    X, y = synthetic(50)
    with pytest.raises(ValueError, match="diverged"):
        LinearRegressionGD(learning_rate=10.0, standardize=False).fit(X, y)


def test_nan_in_data_is_refused() -> None:
    X, y = synthetic(50)
    X[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        LinearRegressionGD().fit(X, y)


@pytest.mark.parametrize(("old", "canonical"), [("sgd", "single"), ("Mini-Batch", "minibatch")])
def test_batch_mode_aliases_give_the_same_fit(old: str, canonical: str) -> None:
    X, y = synthetic(100)
    settings = {"max_epochs": 3, "random_state": 0, "learning_rate": 0.001}
    aliased = LinearRegressionGD(mode=old, **settings).fit(X, y)
    named = LinearRegressionGD(mode=canonical, **settings).fit(X, y)
    np.testing.assert_array_equal(aliased.weights_, named.weights_)
    assert aliased.batches_.mode == canonical
    assert aliased.get_params()["mode"] == old  # scikit-learn: parameters stay as given


@pytest.mark.parametrize("lr", [100.0, 1e300])
def test_a_diverging_fit_is_an_error_with_advice(lr: float) -> None:
    """`descent regress --lr 100` used to end with J = inf and R² = −inf, exit status 0."""
    with pytest.raises(InputError, match=r"diverged in epoch \d+ .*learning_rate='auto'"):
        LinearRegressionGD(learning_rate=lr).fit(DIABETES_X, DIABETES_Y)


def test_a_diverging_stochastic_fit_is_an_error_too() -> None:
    with pytest.raises(InputError, match="diverged"):
        LinearRegressionGD(mode="minibatch", learning_rate=100.0).fit(DIABETES_X, DIABETES_Y)


@pytest.mark.parametrize(
    ("basis", "inputs", "size"),
    [
        ("poly:50", 10, "75,394,027,565"),  # C(60, 10) − 1: once tried to enumerate them all
        ("powers:400000", 3, "1,200,000"),
        ("rbf:2000000", 1, "2,000,000"),
        ("sigmoid:300000", 4, "1,200,000"),
        ("fourier:200000", 3, "1,200,000"),
    ],
)
def test_a_basis_too_large_is_refused_up_front_with_its_size(
    basis: str, inputs: int, size: str
) -> None:
    X = np.random.default_rng(0).normal(size=(30, inputs))
    with pytest.raises(InputError, match=f"has {size} functions, more than the 1,000,000"):
        LinearRegressionGD(basis=basis).fit(X, X[:, 0])


def test_a_basis_beyond_the_memory_is_refused_with_its_size(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("descent.linear.design.available_memory", lambda: 2**20)
    X, y = synthetic(2000)
    with pytest.raises(
        InputError,
        match=r"has 69 functions; fitting it to 2,000 examples needs about 1\.2 MiB, more than "
        r"the 1\.0 MiB",
    ):
        LinearRegressionGD(basis="poly:4", mode="minibatch").fit(X, y)
    with pytest.raises(InputError, match="has 3,000 functions"):  # a custom basis: by one row
        LinearRegressionGD(basis=lambda X: X.repeat(1, 750)).fit(X, y)
