"""The full-batch loops on the k × k statistics (descent.linear.full_batch): a fit that outlasts
the first chunk of gd_statistics (O(k²) an epoch) continues in G's eigenbasis
(gd_eigen_statistics, O(k) an epoch). Both stand for the Python reference
(descend_with_optimizer): the same epochs, stopping reason, loss history and weights, to
rounding; a fit that ends within the first chunk is the plain loop's, bit for bit."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch

from descent.errors import InputError
from descent.linear import LinearRegressionGD, compiled, epochs, full_batch

needs_c = pytest.mark.skipif(
    compiled.entry("gd_eigen_statistics") is None, reason="descent's C kernels are not built"
)


def correlated(n: int = 300, k: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Columns sharing one factor (pairwise correlation about 0.9): κ(ΦᵀΦ) ≈ 300 after
    standardizing, so the default fit (tol 1e-10) needs about 5,500 epochs."""
    rng = np.random.default_rng(seed)
    X = 3.0 * rng.normal(size=(n, 1)) + rng.normal(size=(n, k))
    return X, X @ rng.normal(size=k) + rng.normal(size=n)


@pytest.fixture
def eigen_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the calls of gd_eigen_statistics (each call: one chunk of epochs)."""
    calls: list[int] = []
    entry = compiled.entry

    def counting(name: str) -> Any:
        function = entry(name)
        if name != "gd_eigen_statistics":
            return function
        return lambda *args: calls.append(1) or function(*args)

    monkeypatch.setattr(compiled, "entry", counting)
    return calls


def three_fits(
    monkeypatch: pytest.MonkeyPatch, X: np.ndarray, y: np.ndarray, **params: Any
) -> dict[str, LinearRegressionGD]:
    """The same fit by the eigenbasis loop (after its first chunk), by gd_statistics alone and
    by the Python reference, in several C calls each (a small STATISTICS_CHUNK: the seams)."""
    return {label: LinearRegressionGD(**params).fit(X, y) for label in three_paths(monkeypatch)}


def three_paths(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Sets up each path in turn ("eigen", "sequential", "python"), in several C calls each (a
    small STATISTICS_CHUNK: the seams), and yields its label."""
    monkeypatch.setattr(full_batch, "STATISTICS_CHUNK", 700)
    eigen_after = full_batch.EIGENBASIS_AFTER
    for label, compiled_on, first_chunk in [
        ("eigen", True, eigen_after),
        ("sequential", True, 10**9),
        ("python", False, eigen_after),
    ]:
        monkeypatch.setattr(epochs, "COMPILED", compiled_on)
        monkeypatch.setattr(full_batch, "EIGENBASIS_AFTER", first_chunk)
        yield label


@needs_c
@pytest.mark.parametrize(
    "params",
    [
        {},  # the gradient rule ‖∇J‖ ≤ tol·‖∇J₀‖: about 5,500 epochs
        {"tol": 0.0, "tol_loss": 1e-9},  # the flat-loss rule (far above J's rounding)
        {"tol": 0.0, "max_epochs": 3000},  # neither: max_epochs
        {"loss_reduction": "mean", "tol": 1e-12},
    ],
)
def test_the_eigenbasis_loop_equals_the_sequential_loop_and_the_python_loop(
    params: dict[str, Any], monkeypatch: pytest.MonkeyPatch, eigen_calls: list[int]
) -> None:
    X, y = correlated()
    fits = three_fits(monkeypatch, X, y, **params)
    eigen = fits["eigen"]
    assert eigen.n_iter_ > full_batch.EIGENBASIS_AFTER
    assert len(eigen_calls) >= 2  # the eigenbasis ran, over a seam between calls
    for other in (fits["sequential"], fits["python"]):
        assert eigen.n_iter_ == other.n_iter_
        assert eigen.converged_ == other.converged_
        assert len(eigen.loss_history_) == len(other.loss_history_) == eigen.n_iter_ + 1
        np.testing.assert_allclose(eigen.loss_history_, other.loss_history_, rtol=1e-10)
        np.testing.assert_allclose(eigen.weights_, other.weights_, rtol=1e-10, atol=1e-12)
    if "max_epochs" in params:
        assert eigen.n_iter_ == params["max_epochs"]
        assert not eigen.converged_
    # the gradient left on w_ is the one at the final point, as gd_statistics leaves it
    reported = eigen.gram_.gradient(eigen.w_.detach(), eigen.loss_reduction)
    torch.testing.assert_close(eigen.w_.grad, reported, rtol=1e-9, atol=1e-9)


@needs_c
def test_a_diverging_step_stops_in_the_same_epoch_on_every_loop(
    monkeypatch: pytest.MonkeyPatch, eigen_calls: list[int]
) -> None:
    """η = 1.05/λ_max: the top direction grows by 5% an epoch and overflows after about 3,600
    epochs, long after the first chunk; the message (epoch, J) is the same on every path."""
    X, y = correlated()
    top = float(torch.linalg.eigvalsh(LinearRegressionGD(max_epochs=1).fit(X, y).gram_.gram)[-1])
    messages = {}
    for label in three_paths(monkeypatch):
        with pytest.raises(InputError, match=r"diverged in epoch (\d+)") as raised:
            LinearRegressionGD(learning_rate=1.05 / top, max_epochs=100_000).fit(X, y)
        messages[label] = str(raised.value)
    assert eigen_calls
    epoch = int(messages["eigen"].split("diverged in epoch ")[1].split()[0])
    assert epoch > full_batch.EIGENBASIS_AFTER
    # the epoch is the same; J at the overflow differs in its last digits only
    for label in ("sequential", "python"):
        assert messages[label].split(" (J")[0] == messages["eigen"].split(" (J")[0]


@needs_c
@pytest.mark.parametrize("params", [{"tol": 1e-3}, {"tol": 0.0, "max_epochs": 500}])
def test_a_fit_that_ends_in_the_first_chunk_is_the_plain_loop_s_bit_for_bit(
    params: dict[str, Any], monkeypatch: pytest.MonkeyPatch, eigen_calls: list[int]
) -> None:
    X, y = correlated()
    fits = []
    for first_chunk in (full_batch.EIGENBASIS_AFTER, 10**9):
        monkeypatch.setattr(full_batch, "EIGENBASIS_AFTER", first_chunk)
        fits.append(LinearRegressionGD(**params).fit(X, y))
    assert 0 < fits[0].n_iter_ < full_batch.EIGENBASIS_AFTER
    assert eigen_calls == []
    assert fits[0].n_iter_ == fits[1].n_iter_
    assert fits[0].loss_history_ == fits[1].loss_history_
    assert torch.equal(fits[0].w_, fits[1].w_)


@needs_c
@pytest.mark.parametrize(("reduction", "scale"), [("sum", 1.0), ("mean", 1 / 50)])
def test_the_eigenbasis_loop_is_its_formula(reduction: str, scale: float) -> None:
    """gd_eigen_statistics against its recurrence written out: zᵢ ← zᵢ − η·2s(λᵢzᵢ − βᵢ), with
    J = s(c − 2βᵀz + zᵀΛz) and ‖∇J‖ = ‖2s(Λz − β)‖ at every epoch, and after t epochs the
    closed form zᵢ* + (1 − 2ηsλᵢ)ᵗ (zᵢ(0) − zᵢ*), zᵢ* = βᵢ/λᵢ."""
    rng = np.random.default_rng(3)
    k, updates, lr = 13, 40, 0.02 / scale  # k not a multiple of the kernel's 8 lanes
    eigenvalues = rng.uniform(0.5, 20.0, size=k)
    beta = rng.normal(size=k)
    total = float(beta @ (beta / eigenvalues)) + 4.0  # c ≥ βᵀΛ⁻¹β: J* = 4s
    z0 = rng.normal(size=k)
    z, grad = torch.tensor(z0), torch.zeros(k, dtype=torch.float64)
    lam, b = torch.tensor(eigenvalues), torch.tensor(beta)
    losses = torch.zeros(updates + 1, dtype=torch.float64)
    first_norm, status = torch.zeros(1, dtype=torch.float64), torch.zeros(1, dtype=torch.int64)
    made = compiled.entry("gd_eigen_statistics")(
        lam.data_ptr(), b.data_ptr(), total, z.data_ptr(), grad.data_ptr(), k, scale, lr,
        updates, 0.0, 0.0, losses.data_ptr(), first_norm.data_ptr(), 1, status.data_ptr(),
    )  # fmt: skip
    assert made == updates
    assert int(status) == 0
    expected, point = [], z0.copy()
    for epoch in range(updates + 1):
        gradient = 2 * scale * (eigenvalues * point - beta)
        expected.append(scale * (total - 2 * beta @ point + point @ (eigenvalues * point)))
        if epoch == 0:
            assert float(first_norm) == pytest.approx(np.linalg.norm(gradient), rel=1e-14)
        if epoch < updates:
            point = point - lr * gradient
    np.testing.assert_allclose(losses.numpy(), expected, rtol=1e-13)
    np.testing.assert_allclose(z.numpy(), point, rtol=1e-13)
    np.testing.assert_allclose(grad.numpy(), 2 * scale * (eigenvalues * point - beta), rtol=1e-12)
    optimum = beta / eigenvalues
    closed = optimum + (1 - 2 * lr * scale * eigenvalues) ** updates * (z0 - optimum)
    np.testing.assert_allclose(z.numpy(), closed, rtol=1e-11)
    assert expected[-1] < expected[0]
    assert min(expected) >= 4 * scale * (1 - 1e-12)


@needs_c
def test_kernels_built_before_the_eigenbasis_loop_run_the_plain_loop_to_the_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A library without an entry gives None (not an AttributeError), and the fit is then
    gd_statistics' alone, bit for bit."""
    monkeypatch.setitem(compiled.ENTRIES, "gd_not_in_this_build", compiled.ENTRIES["gd_statistics"])
    assert compiled.entry("gd_not_in_this_build") is None
    X, y = correlated()
    first_chunk = full_batch.EIGENBASIS_AFTER
    monkeypatch.setattr(full_batch, "EIGENBASIS_AFTER", 10**9)
    plain = LinearRegressionGD().fit(X, y)
    monkeypatch.setattr(full_batch, "EIGENBASIS_AFTER", first_chunk)
    entry = compiled.entry
    monkeypatch.setattr(
        compiled, "entry", lambda name: None if name == "gd_eigen_statistics" else entry(name)
    )
    old_build = LinearRegressionGD().fit(X, y)
    assert old_build.n_iter_ == plain.n_iter_ > first_chunk
    assert old_build.loss_history_ == plain.loss_history_
    assert torch.equal(old_build.w_, plain.w_)


@needs_c
@pytest.mark.parametrize("standardize", [True, False])
def test_a_singular_gram_matrix_gives_the_same_fit_in_the_eigenbasis(
    standardize: bool, monkeypatch: pytest.MonkeyPatch, eigen_calls: list[int]
) -> None:
    """Duplicated columns: ΦᵀΦ is singular and eigh returns eigenvalues of either sign at the
    rounding's size; those directions do not move (βᵢ ≈ 0) in either loop."""
    X, y = correlated()
    X = np.c_[X, X[:, :3]]
    first_chunk = full_batch.EIGENBASIS_AFTER
    fits = []
    for after in (first_chunk, 10**9):
        monkeypatch.setattr(full_batch, "EIGENBASIS_AFTER", after)
        fits.append(LinearRegressionGD(standardize=standardize).fit(X, y))
    eigen, plain = fits
    assert eigen_calls
    assert eigen.n_iter_ == plain.n_iter_ > first_chunk
    assert eigen.converged_
    assert plain.converged_
    np.testing.assert_allclose(eigen.loss_history_, plain.loss_history_, rtol=1e-10)
    np.testing.assert_allclose(eigen.weights_, plain.weights_, rtol=1e-10, atol=1e-10)
