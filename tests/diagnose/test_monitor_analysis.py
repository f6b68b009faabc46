"""The training monitor's cheap analysis against dense oracles: the warm-started subspace's Ritz
values (inside the spectrum, within their residuals of an eigenvalue, exact from exact warm
vectors), its deflated Hutchinson trace (unbiased, within its error bar), and the random-sign
gradient noise (unbiased for the per-example variance, one backward pass per probe)."""

from __future__ import annotations

import math
import statistics

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from descent.diagnose import curvature
from descent.diagnose.curvature_monitor import CurvatureMonitor
from descent.diagnose.lanczos import subspace_curvature
from descent.diagnose.noise import signed_noise
from descent.errors import InputError


@pytest.fixture(scope="module")
def problem() -> tuple[nn.Module, tuple[torch.Tensor, torch.Tensor]]:
    """A 243-parameter tanh MLP (float64) on 48 random examples, 3 classes."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 20), nn.Tanh(), nn.Linear(20, 3)).double()
    inputs = torch.randn(48, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    targets = torch.randint(0, 3, (48,), generator=torch.Generator().manual_seed(2))
    return model, (inputs, targets)


@pytest.fixture(scope="module")
def eigen(problem: tuple) -> tuple[torch.Tensor, torch.Tensor]:
    model, data = problem
    return torch.linalg.eigh(curvature.dense_hessian(model, F.cross_entropy, data))


def objective_of(problem: tuple) -> curvature.Objective:
    model, data = problem
    return curvature.Objective(model, F.cross_entropy, data)


def fake_trainer(model: nn.Module, loss=F.cross_entropy) -> object:
    """What the monitor reads of a Trainer: its model and loss, no log folder."""

    class FakeTrainer:
        logdir = None

    trainer = FakeTrainer()
    trainer.model, trainer.loss = model, loss
    return trainer


def feed(monitor: CurvatureMonitor, trainer: object, steps) -> None:
    for step in steps:
        monitor(trainer, "step", {"step": step, "loss": 1.0})


def test_ritz_values_lie_inside_the_spectrum_within_their_residuals(problem, eigen) -> None:
    values = eigen[0]
    for seed in range(5):
        for budget in (2, 5, 9):
            found = subspace_curvature(
                objective_of(problem),
                max_products=budget,
                generator=torch.Generator().manual_seed(seed),
            )
            assert found.products <= budget
            assert found.lambda_max <= float(values[-1]) + 1e-10
            assert found.lambda_min >= float(values[0]) - 1e-10
            for theta, residual in (
                (found.lambda_max, found.residual_max),
                (found.lambda_min, found.residual_min),
            ):
                assert float((values - theta).abs().min()) <= residual + 1e-10


def test_warm_vectors_that_are_eigenvectors_give_the_extremes_exactly(problem, eigen) -> None:
    values, vectors = eigen
    found = subspace_curvature(
        objective_of(problem),
        warm=(vectors[:, -1], vectors[:, 0]),
        max_products=3,
        generator=torch.Generator().manual_seed(0),
    )
    assert found.products == 3  # the two warm vectors and one probe: nothing left to expand
    assert found.lambda_max == pytest.approx(float(values[-1]), rel=1e-10)
    assert found.lambda_min == pytest.approx(float(values[0]), rel=1e-10)
    assert found.residual_max < 1e-10
    assert found.residual_min < 1e-10


def test_the_subspace_converges_to_the_extremes_with_budget(problem, eigen) -> None:
    values = eigen[0]
    found = subspace_curvature(
        objective_of(problem), max_products=200, tol=1e-9, generator=torch.Generator()
    )
    assert found.lambda_max == pytest.approx(float(values[-1]), rel=1e-8)
    assert found.lambda_min == pytest.approx(float(values[0]), rel=1e-6)


def test_without_probes_the_budget_goes_to_davidson_steps(problem, eigen) -> None:
    """probes=0 from warm vectors: no trace, the third product is the residual's (a Davidson
    step), which improves the worse pair more than a random probe does; a cold start still
    takes one probe."""
    values = eigen[0]
    rough = subspace_curvature(
        objective_of(problem), max_products=2, generator=torch.Generator().manual_seed(0)
    )
    warm = (rough.vector_max, rough.vector_min)
    steps, probed = (
        subspace_curvature(
            objective_of(problem),
            warm=warm,
            probes=probes,
            max_products=3,
            tol=1e-12,
            generator=torch.Generator().manual_seed(1),
        )
        for probes in (0, 1)
    )
    assert steps.trace is None
    assert steps.trace_stderr is None
    assert steps.probes == 0
    assert steps.products == probed.products == 3
    assert probed.trace is not None
    worse = max(probed.residual_max, probed.residual_min)
    assert max(steps.residual_max, steps.residual_min) < worse
    assert steps.lambda_max <= float(values[-1]) + 1e-10
    assert steps.lambda_min >= float(values[0]) - 1e-10
    cold = subspace_curvature(
        objective_of(problem), probes=0, max_products=3, generator=torch.Generator()
    )
    assert cold.probes == 1
    assert cold.trace is not None


def test_the_deflated_trace_is_unbiased_and_within_its_error_bar(problem, eigen) -> None:
    """Over 200 seeds the mean is the dense trace, and the error bar (an estimated upper bound
    of one standard error) covers the truth at 2 bars for at least 95% of the estimates; the
    deflation by exact eigenvectors shrinks the spread."""
    values, vectors = eigen
    exact = float(values.sum())
    objective = objective_of(problem)
    spreads = []
    for warm in ((), (vectors[:, -1], vectors[:, 0])):
        estimates = [
            subspace_curvature(
                objective, warm=warm, max_products=3, generator=torch.Generator().manual_seed(s)
            )
            for s in range(200)
        ]
        traces = [e.trace for e in estimates]
        spreads.append(statistics.stdev(traces))
        assert abs(statistics.mean(traces) - exact) <= 4 * spreads[-1] / math.sqrt(len(traces))
        covered = sum(abs(e.trace - exact) <= 2 * e.trace_stderr for e in estimates)
        assert covered >= 0.95 * len(estimates)
        assert statistics.mean(e.trace_stderr for e in estimates) >= 0.9 * spreads[-1]
    assert spreads[1] < spreads[0]


def test_signed_noise_is_unbiased_for_the_per_example_variance(problem) -> None:
    model, data = problem
    exact = curvature.gradient_noise(model, F.cross_entropy, data, batch_size=8)
    objective = objective_of(problem)
    prepared = objective.gradient_with_example_losses()
    assert prepared is not None
    gradient, losses = prepared
    torch.testing.assert_close(gradient.norm().item(), exact.gradient_norm, rtol=1e-10, atol=0)
    many = signed_noise(
        objective,
        gradient,
        losses,
        batch_size=8,
        probes=400,
        population=None,
        generator=torch.Generator().manual_seed(0),
    )
    assert many.method == "signs"
    variance_stderr = 2 * many.snr_stderr / many.snr * many.per_example_variance
    assert abs(many.per_example_variance - exact.per_example_variance) <= 4 * variance_stderr
    assert many.per_example_variance == pytest.approx(exact.per_example_variance, rel=0.1)
    with pytest.raises(InputError, match="at least 2 probes"):
        signed_noise(
            objective,
            gradient,
            losses,
            batch_size=8,
            probes=1,
            population=None,
            generator=torch.Generator(),
        )


def test_a_loss_that_is_not_a_mean_falls_back_to_groups(problem) -> None:
    model, data = problem

    def summed(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(outputs, targets, reduction="sum")

    assert curvature.Objective(model, summed, data).gradient_with_example_losses() is None

    monitor = CurvatureMonitor(1, data, examples=48)
    feed(monitor, fake_trainer(model, summed), [1])
    (figures,) = monitor.history
    assert "curvature/gradient_snr_stderr" not in figures  # the group estimate has none
    assert math.isfinite(figures["curvature/gradient_snr"])


def test_the_monitor_logs_every_figure_with_its_accuracy_and_warm_starts(problem, eigen) -> None:
    model, data = problem

    trainer = fake_trainer(model)
    monitor = CurvatureMonitor(1, data, examples=48, products=6)
    feed(monitor, trainer, (1, 2, 3))
    first, _, third = monitor.history
    assert set(first) == {
        "step",
        "curvature/lambda_max",
        "curvature/lambda_max_residual",
        "curvature/lambda_min",
        "curvature/lambda_min_residual",
        "curvature/trace",
        "curvature/trace_stderr",
        "curvature/gradient_snr",
        "curvature/gradient_snr_stderr",
    }
    # The same weights analysed again from the previous Ritz vectors: the residuals shrink.
    assert third["curvature/lambda_max_residual"] < first["curvature/lambda_max_residual"]
    assert (
        abs(third["curvature/lambda_max"] - float(eigen[0][-1]))
        <= (third["curvature/lambda_max_residual"])
    )
    # The warm start travels in state_dict: a fresh monitor loaded with it logs the same.
    resumed = CurvatureMonitor(1, data, examples=48, products=6)
    twin = CurvatureMonitor(1, data, examples=48, products=6)
    feed(twin, trainer, (1, 2))
    resumed.load_state_dict(twin.state_dict())
    feed(resumed, trainer, [3])
    assert resumed.history[0] == third
    with pytest.raises(InputError, match="signs"):
        CurvatureMonitor(1, data, signs=1)


def test_the_trace_comes_every_trace_every_analyses_by_the_step(problem) -> None:
    """trace_every=2: the trace at the analyses of steps 0, 2·every, 4·every, … (and at a cold
    start); between them its product is a Davidson step. Decided by the step, so a resumed
    run logs the same figures."""
    model, data = problem
    trainer = fake_trainer(model)
    monitor = CurvatureMonitor(3, data, examples=48, trace_every=2)
    feed(monitor, trainer, range(1, 13))
    traced = {record["step"]: "curvature/trace" in record for record in monitor.history}
    assert traced == {3: True, 6: True, 9: False, 12: True}  # 3: the cold start
    every = CurvatureMonitor(3, data, examples=48, trace_every=1)
    feed(every, trainer, range(1, 13))
    assert all("curvature/trace_stderr" in record for record in every.history)
    with pytest.raises(InputError, match="trace_every"):
        CurvatureMonitor(1, data, trace_every=0)


def test_the_background_is_the_default_when_the_cpus_hold_the_threads_and_one_more(
    problem, monkeypatch
) -> None:
    import os

    from descent.diagnose.curvature_monitor import spare_core

    _, data = problem
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(3)), raising=False)
    assert spare_core()
    assert CurvatureMonitor(1, data).background
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(2)), raising=False)
    assert not spare_core()
    assert not CurvatureMonitor(1, data).background
    assert CurvatureMonitor(1, data, background=True).background  # forced


def test_the_analysis_runs_on_the_training_threads_and_in_the_background_on_one(
    problem, monkeypatch
) -> None:
    """In the training thread the analysis runs on torch's threads as they are (the training
    waits for it: no switch, the same figures run after run); in a background thread on one
    (its figures a one-thread process's), and the training keeps its two."""
    from descent.diagnose import curvature_monitor

    model, data = problem
    seen: list[int] = []
    real = curvature_monitor.subspace_curvature

    def watched(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(curvature_monitor, "subspace_curvature", watched)
    torch.set_num_threads(1)  # the fixture restores the count
    alone = CurvatureMonitor(1, data, examples=48, background=False)
    feed(alone, fake_trainer(model), (1, 2))
    torch.set_num_threads(2)
    shared = [CurvatureMonitor(1, data, examples=48, background=False) for _ in range(2)]
    for monitor in shared:
        feed(monitor, fake_trainer(model), (1, 2))
    behind = CurvatureMonitor(1, data, examples=48, background=True)
    feed(behind, fake_trainer(model), (1, 2))
    behind.finish(fake_trainer(model), "budget")
    assert torch.get_num_threads() == 2
    assert seen == [1, 1, 2, 2, 2, 2, 1, 1]
    assert shared[0].history == shared[1].history
    assert behind.history == alone.history


def test_the_noise_draws_from_its_own_generator(problem) -> None:
    """The curvature's probe (drawn at a trace analysis only) does not move the noise's signs:
    with the trace at every analysis or every other one, the SNR figures are the same bit for
    bit; a resumed run draws the same as an uninterrupted one (seeded by the seed and the
    step)."""
    model, data = problem
    histories = []
    for trace_every in (1, 2):
        monitor = CurvatureMonitor(1, data, examples=48, trace_every=trace_every, noise_every=1)
        feed(monitor, fake_trainer(model), (1, 2, 3, 4))
        histories.append(monitor.history)
    snr = [[record["curvature/gradient_snr"] for record in history] for history in histories]
    assert snr[0] == snr[1]
    assert len(set(snr[0])) > 1  # each step draws its own signs
    assert "curvature/trace" not in histories[1][2]  # step 3 of every 2: no probe drawn


def test_a_cnn_analysed_on_two_threads_gives_the_same_figures_run_after_run() -> None:
    """On torch's two threads (the training thread's analysis) the convolutions' products run
    on both: the figures are two threads' and the same at every run."""
    from descent.models import SmallCNN

    torch.set_num_threads(2)  # the fixture restores the count
    images = torch.randn(64, 64, generator=torch.Generator().manual_seed(3))
    labels = torch.randint(0, 10, (64,), generator=torch.Generator().manual_seed(4))
    histories = []
    for _ in range(2):
        torch.manual_seed(0)
        model = SmallCNN((1, 8, 8), 10, channels=(8, 16))
        monitor = CurvatureMonitor(1, (images, labels), examples=32, background=False)
        feed(monitor, fake_trainer(model), (1, 2, 3))
        histories.append(monitor.history)
    assert histories[0] == histories[1]
    assert all(math.isfinite(value) for record in histories[0] for value in record.values())


def test_a_negative_seed_analyses_as_its_64_bit_pattern(problem) -> None:
    """The constructor takes any integer seed (torch.manual_seed does); the analyses' generators
    come from numpy's SeedSequence, which takes non-negative entries only."""
    model, data = problem
    trainer = fake_trainer(model)
    negative = CurvatureMonitor(3, data, examples=48, seed=-1)
    pattern = CurvatureMonitor(3, data, examples=48, seed=2**64 - 1)
    feed(negative, trainer, range(1, 7))
    feed(pattern, fake_trainer(model), range(1, 7))
    assert [r["step"] for r in negative.history] == [3, 6]
    assert negative.history == pattern.history
