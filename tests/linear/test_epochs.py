"""The compiled epoch of the stochastic modes equals the Python reference path bit for bit."""

from __future__ import annotations

import copy
import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from descent import optim, schedules
from descent.linear import LinearRegressionGD, epochs, full_batch
from descent.linear.solve import Gram, ordered_gradient
from descent.optim import _native

needs_c = pytest.mark.skipif(
    not _native.available(), reason="C kernels not built (test_estimator.py fits without them)"
)

N, K = 37, 11  # 37 rows: batches of 5 leave a short last one; 11 = 8 lanes + 3 (lane_dot)

# (rule, options, learning rate): every rule with a C step, its variants, a schedule each
CASES: list[tuple[str, dict[str, Any], Any]] = [
    ("sgd", {}, 0.01),
    ("sgd", {}, schedules.InverseTimeDecay(0.02, 7.0, 1.0)),
    ("sgd", {}, schedules.ExponentialDecay(0.02, 10, 0.5)),
    ("nesterov", {"momentum": 0.8}, schedules.InverseTimeDecay(0.01, 5.0, 1.0)),
    ("rmsprop", {}, schedules.ExponentialDecay(0.01, 10, 0.5)),
    ("rmsprop", {"centered": True, "momentum": 0.5, "eps_inside_sqrt": True}, 0.003),
    ("adadelta", {}, 0.5),
    ("adamax", {}, schedules.InverseTimeDecay(0.05, 9.0, 1.0)),
    ("adamax", {"eps_in_max": True, "weight_decay": 0.01}, 0.05),
    ("nadam", {}, 0.05),
    ("nadam", {"momentum_decay": 0.004, "maximize": False}, schedules.CosineDecay(0.05, 100)),
]


def problem(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    Phi = torch.randn(N, K, generator=generator, dtype=torch.float64)
    Phi[:, 0] = 1.0
    y = Phi @ torch.linspace(-2.0, 3.0, K, dtype=torch.float64)
    return Phi, y + 0.3 * torch.randn(N, generator=generator, dtype=torch.float64)


def start(rule: str, options: dict[str, Any], lr: Any) -> tuple[torch.Tensor, Any]:
    w = torch.zeros(K, dtype=torch.float64, requires_grad=True)
    return w, optim.create(rule, [w], lr=lr, **options)


def run(
    compiled: bool,
    rule: str,
    options: dict[str, Any],
    lr: Any,
    batch: int,
    reduction: str,
    average: bool,
    pieces: tuple[int, ...] = (),
) -> tuple[torch.Tensor, dict[str, Any], epochs.Average | None]:
    """Three epochs; with ``pieces``, each epoch stopped after those batch numbers and resumed
    from a copy of the state (weights, optimizer state dict, average), as a checkpoint would."""
    Phi, y = problem()
    w, optimizer = start(rule, options, lr)
    mean = epochs.Average(K) if average else None
    generator = torch.Generator().manual_seed(1)
    batches = -(-N // batch)
    epochs.COMPILED = compiled
    try:
        for _ in range(3):
            order = torch.randperm(N, generator=generator)
            bounds = [0, *pieces, batches]
            for first, last in itertools.pairwise(bounds):
                epochs.run_batches(
                    Phi, y, order, batch, range(first, last), w, optimizer, rule, reduction, mean
                )
                saved = copy.deepcopy((w.detach(), optimizer.state_dict(), mean))
                w, optimizer = start(rule, options, lr)
                with torch.no_grad():
                    w.copy_(saved[0])
                optimizer.load_state_dict(saved[1])
                mean = saved[2]
    finally:
        epochs.COMPILED = True
    return w.detach(), optimizer.state_dict(), mean


def assert_same(a: Any, b: Any) -> None:
    (wa, sa, ma), (wb, sb, mb) = a, b
    assert torch.equal(wa, wb), (wa - wb).abs().max()
    assert sa["param_groups"][0]["step"] == sb["param_groups"][0]["step"]
    for key, value in sa["state"].get(0, {}).items():
        other = sb["state"][0][key]
        assert torch.equal(value, other) if isinstance(value, torch.Tensor) else value == other
    if ma is not None:
        assert ma.count == mb.count
        assert torch.equal(ma.weights, mb.weights)


@needs_c
@pytest.mark.parametrize(("rule", "options", "lr"), CASES, ids=lambda c: str(c)[:30])
@pytest.mark.parametrize(("batch", "reduction"), [(1, "sum"), (5, "mean"), (5, "sum")])
def test_compiled_epochs_equal_the_reference(
    rule: str, options: dict[str, Any], lr: Any, batch: int, reduction: str
) -> None:
    reference = run(False, rule, options, lr, batch, reduction, average=True)
    compiled = run(True, rule, options, lr, batch, reduction, average=True)
    assert_same(compiled, reference)
    assert not torch.equal(reference[0], torch.zeros(K))  # it moved


@needs_c
@pytest.mark.parametrize(("rule", "options", "lr"), CASES[1::2], ids=lambda c: str(c)[:30])
def test_a_resume_in_the_middle_of_an_epoch_continues_exactly(
    rule: str, options: dict[str, Any], lr: Any
) -> None:
    reference = run(False, rule, options, lr, 5, "mean", average=True)
    resumed = run(True, rule, options, lr, 5, "mean", average=True, pieces=(3, 4))
    assert_same(resumed, reference)


@needs_c
def test_the_compiled_path_is_the_one_taken() -> None:
    w, optimizer = start("adamax", {}, 0.01)
    assert epochs.compiled_rule(optimizer, "adamax", w) == "adamax"
    assert epochs.compiled_rule(optimizer, "adam", w) is None
    _, reference = start("adamax", {"impl": "reference"}, 0.01)
    assert epochs.compiled_rule(reference, "adamax", w) is None
    _, torch_form = start("nesterov", {"lr_in_buffer": False}, 0.01)
    assert epochs.compiled_rule(torch_form, "nesterov", w) is None


def test_ordered_gradient_is_the_analytic_gradient() -> None:
    Phi, y = problem()
    w = torch.linspace(-1, 1, K, dtype=torch.float64)
    expected = -2.0 * Phi.T @ (y - Phi @ w) / N
    torch.testing.assert_close(ordered_gradient(Phi, y, w, "mean"), expected, rtol=1e-13, atol=0)


def test_the_epoch_table_matches_the_c_prototypes() -> None:
    """ctypes checks no argument: the one table against the C source's epoch entries."""
    source = (Path(_native.__file__).parent / "_kernels.c").read_text()
    common = source[source.index("#define EPOCH_ARGS") : source.index("#define EPOCH(")]
    head = [a.replace("\\", " ").split() for a in common.split("\n", 1)[1].split(",")]
    shared = [(words[-1].lstrip("*"), "tensor" if "*" in "".join(words) else words[0])
              for words in head]  # fmt: skip
    assert shared == list(_native.EPOCH_ARGUMENTS)
    for rule in _native.KERNELS:
        start_at = source.index(f"void {rule}_epoch(EPOCH_ARGS")
        rest = source[start_at : source.index(")", start_at)].split(",")[1:]
        extra = [(a.split()[-1].lstrip("*"), "tensor" if "*" in a else a.split()[0]) for a in rest]
        assert shared + extra == list(_native.epoch_signature(rule)), rule


@needs_c
@pytest.mark.parametrize(
    "params",
    [
        {"mode": "single", "max_epochs": 4},  # the decaying default: rates computed ahead
        {"mode": "minibatch", "batch_size": 7, "loss_reduction": "mean", "average": True},
        {"mode": "single", "learning_rate": "constant", "max_epochs": 3},
        {"mode": "minibatch", "batch_size": 9, "learning_rate": schedules.CosineDecay(0.01, 40)},
        {"mode": "minibatch", "optimizer": "adamax", "max_epochs": 5},
    ],
)
def test_estimator_fits_equal_with_and_without_the_compiled_epochs(params: dict[str, Any]) -> None:
    """A whole fit (its epochs bound once, plain SGD's rates computed epochs ahead) equals the
    Python reference path: weights, every loss of the history, epochs run."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3))
    y = X @ [1.0, -1.0, 2.0] + 0.1 * rng.normal(size=120)
    settings = {"max_epochs": 6, "tol": 0.0, "random_state": 0, **params}
    fits = []
    for compiled in (True, False):
        epochs.COMPILED = compiled
        try:
            fits.append(LinearRegressionGD(**settings).fit(X, y))
        finally:
            epochs.COMPILED = True
    np.testing.assert_array_equal(fits[0].weights_, fits[1].weights_)
    assert fits[0].loss_history_ == fits[1].loss_history_
    assert fits[0].n_iter_ == fits[1].n_iter_ == settings["max_epochs"]


@needs_c
@pytest.mark.parametrize("ahead", [epochs.RATES_AHEAD, 10])  # 10: the cap below an epoch
def test_rates_ahead_continue_across_calls_of_any_length(
    ahead: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bound once, the updates take batch ranges of any length (a resume, the split of a
    "mean" epoch) and read the rates of the right updates from the array computed ahead."""
    monkeypatch.setattr(epochs, "RATES_AHEAD", ahead)
    Phi, y = problem()
    lr = schedules.InverseTimeDecay(0.02, 7.0, 1.0)
    results = []
    for pieces in ((), (1, 2, 3, 20, 21)):
        w, optimizer = start("sgd", {}, lr)
        updates = epochs.BatchUpdates(Phi, y, w, optimizer, "sgd", "sum", 1)
        generator = torch.Generator().manual_seed(1)
        for _ in range(3):  # as run()
            order = torch.randperm(N, generator=generator)
            for first, last in itertools.pairwise([0, *pieces, N]):
                updates.run_batches(order, range(first, last))
        results.append((w.detach().clone(), optimizer.param_groups[0]["step"]))
    reference = run(False, "sgd", {}, lr, 1, "sum", average=False)[0]
    for weights, step in results:
        assert torch.equal(weights, reference)
        assert step == 3 * N


@needs_c
def test_the_bound_evaluation_is_the_statistics_form() -> None:
    Phi, y = problem()
    gram = Gram.of(Phi, y)
    w = torch.linspace(-1, 1, K, dtype=torch.float64)
    for reduction in ("sum", "mean"):
        evaluation = epochs.StatisticsEvaluation(gram, reduction)
        value, grad = gram.evaluate(w, reduction)
        assert evaluation(w)[0] == pytest.approx(float(value), rel=1e-12)
        assert evaluation(w)[1] == pytest.approx(float(grad.norm()), rel=1e-12)
    _, norm = evaluation(torch.full((K,), math.inf, dtype=torch.float64))
    assert math.isnan(norm)  # not finite: the stopping rules cannot hold, the fit reports it


def test_the_seed_of_an_int_random_state_is_scikit_learn_s_draw() -> None:
    from sklearn.utils import check_random_state

    from descent.linear.estimator import derived_seed

    for state in (0, 7, np.int64(7), 2**31):
        expected = int(check_random_state(int(state)).randint(0, 2**31 - 1))
        assert derived_seed(state) == derived_seed(state) == expected
    generator = np.random.RandomState(3)
    assert derived_seed(generator) != derived_seed(generator)  # it draws from the instance


def test_average_is_the_mean_of_the_iterates() -> None:
    iterates = torch.randn(50, K, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    average = epochs.Average(K)
    for w in iterates:
        average.update(w)
    assert average.count == 50
    torch.testing.assert_close(average.weights, iterates.mean(dim=0), rtol=1e-13, atol=1e-15)


def test_learning_rates_are_the_rule_s_own() -> None:
    """The rates handed to the C loop are lr_at's, bit for bit, for any schedule."""
    for lr in (0.1, schedules.InverseTimeDecay(0.3, 7.0, 1.0), schedules.CosineDecay(0.3, 50)):
        _, optimizer = start("sgd", {}, lr)
        optimizer.param_groups[0]["step"] = 11
        rates = np.atleast_1d(epochs.learning_rates(optimizer, 30))
        group = optimizer.param_groups[0]
        expected = [optimizer.lr_at(group, 11 + u) for u in range(30)]
        assert rates.tolist() == (expected if len(rates) == 30 else expected[:1])


def load_diabetes_xy() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_diabetes

    return load_diabetes(return_X_y=True)


def _full_batch_fits(monkeypatch: pytest.MonkeyPatch, **params: Any) -> list[LinearRegressionGD]:
    """The same full-batch fit by the C loop on the statistics and by the Python loop."""
    X, y = load_diabetes_xy()
    fits = []
    for compiled in (True, False):
        monkeypatch.setattr(epochs, "COMPILED", compiled)
        fits.append(LinearRegressionGD(**params).fit(X, y))
    return fits


@needs_c
@pytest.mark.parametrize(
    "params",
    [
        {},  # the default stopping rule: ‖∇J‖ ≤ tol·‖∇J₀‖ (thousands of epochs)
        {"tol": 0.0, "tol_loss": 1e-9, "loss_reduction": "mean"},  # the flat-loss rule
        {"tol": 0.0, "max_epochs": 300},  # neither: max_epochs
        {"tol": 0.0, "max_epochs": 1},
    ],
)
def test_the_compiled_full_batch_loop_equals_the_python_loop(
    params: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The C loop on the k × k statistics (gd_statistics) stands for the Python loop for the
    plain rule: the same epochs, losses and weights (to the rounding of Gw: BLAS sums in
    another order), and it is the one the estimator runs."""
    monkeypatch.setattr(full_batch, "STATISTICS_CHUNK", 1000)  # several calls: the seams count too
    compiled, python = _full_batch_fits(monkeypatch, **params)
    assert compiled.n_iter_ == python.n_iter_
    assert compiled.converged_ == python.converged_
    assert len(compiled.loss_history_) == len(python.loss_history_) == compiled.n_iter_ + 1
    np.testing.assert_allclose(compiled.loss_history_, python.loss_history_, rtol=1e-12)
    np.testing.assert_allclose(compiled.weights_, python.weights_, rtol=1e-10, atol=1e-12)
    calls = []
    monkeypatch.setattr(epochs, "COMPILED", True)
    original = full_batch.descend_on_statistics
    monkeypatch.setattr(
        full_batch, "descend_on_statistics", lambda *a, **k: calls.append(1) or original(*a, **k)
    )
    LinearRegressionGD(**params).fit(*load_diabetes_xy())
    assert calls == [1]


@needs_c
def test_the_compiled_full_batch_loop_reports_divergence(monkeypatch: pytest.MonkeyPatch) -> None:
    from descent.errors import InputError

    for compiled in (True, False):
        monkeypatch.setattr(epochs, "COMPILED", compiled)
        with pytest.raises(InputError, match="diverged in epoch") as raised:
            LinearRegressionGD(learning_rate=1.0, max_epochs=5000).fit(*load_diabetes_xy())
        if compiled:
            message = str(raised.value)
        else:
            assert str(raised.value) == message


@needs_c
def test_a_diverging_stochastic_fit_stops_in_the_same_epoch_on_both_paths(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from descent.errors import InputError

    messages = []
    for compiled in (True, False):
        monkeypatch.setattr(epochs, "COMPILED", compiled)
        with pytest.raises(InputError, match=r"diverged in epoch \d+ \(J is NaN") as raised:
            LinearRegressionGD(mode="single", learning_rate=1e3, max_epochs=50).fit(
                *load_diabetes_xy()
            )
        messages.append(str(raised.value))
    assert messages[0] == messages[1]


@needs_c
def test_the_compiled_path_refuses_an_order_it_cannot_walk() -> None:
    Phi, y = problem()
    w, optimizer = start("sgd", {}, 0.01)
    updates = epochs.BatchUpdates(Phi, y, w, optimizer, "sgd", "sum", 1)
    for order in (
        torch.arange(N, dtype=torch.int32),
        torch.arange(N + 1),
        torch.arange(2 * N)[::2],
    ):
        with pytest.raises(TypeError, match=r"order must be a contiguous CPU torch\.int64"):
            updates.run_batches(order, range(3))
    assert torch.equal(w.detach(), torch.zeros(K, dtype=torch.float64))  # nothing ran
