"""Curvature against dense oracles: Lanczos vs eigvalsh, the linear-regression Hessian 2ΦᵀΦ,
Hutchinson within its error bar, SLQ's normalization and support, the gradient noise against a
loop over examples, modes and seeds."""

from __future__ import annotations

import math
import statistics

import pytest
import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F

from descent.diagnose import curvature
from descent.errors import InputError


@pytest.fixture(scope="module")
def problem() -> tuple[nn.Module, tuple[torch.Tensor, torch.Tensor]]:
    """A ~2,000-parameter tanh MLP (float64) on 64 random examples of 20 features, 10 classes."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 60), nn.Tanh(), nn.Linear(60, 10)).double()
    inputs = torch.randn(64, 20, dtype=torch.float64)
    targets = torch.randint(0, 10, (64,))
    return model, (inputs, targets)


@pytest.fixture(scope="module")
def dense(problem: tuple) -> torch.Tensor:
    """The oracle: torch.autograd.functional.hessian of the loss over the flat parameters."""
    model, (inputs, targets) = problem
    names = [name for name, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    sizes = [p.numel() for _, p in model.named_parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def loss_of(vector: torch.Tensor) -> torch.Tensor:
        params = {n: v.view(s) for n, v, s in zip(names, vector.split(sizes), shapes, strict=True)}
        return F.cross_entropy(functional_call(model, params, (inputs,)), targets)

    return torch.autograd.functional.hessian(loss_of, flat, vectorize=True)


def test_the_mlp_has_about_two_thousand_parameters(problem: tuple) -> None:
    assert sum(p.numel() for p in problem[0].parameters()) == 1870


def test_hessian_vector_product_is_the_dense_hessian_times_v(problem: tuple, dense) -> None:
    model, data = problem
    vector = torch.randn(
        len(dense), dtype=torch.float64, generator=torch.Generator().manual_seed(1)
    )
    product = curvature.hessian_vector_product(model, F.cross_entropy, data, vector)
    torch.testing.assert_close(product, dense @ vector, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("batched", [True, False])
def test_many_products_batched_or_looped_are_the_dense_hessian_times_v(
    problem: tuple, dense, batched: bool
) -> None:
    model, data = problem
    vectors = torch.randn(3, len(dense), dtype=torch.float64, generator=torch.Generator())
    with curvature.evaluation_mode(model):
        objective = curvature.Objective(model, F.cross_entropy, data)
        products = objective.hvp_many(vectors, batched=batched)
    torch.testing.assert_close(products, vectors @ dense, rtol=1e-10, atol=1e-12)
    assert objective.hvp_count == 3


def test_top_k_alone_stops_sooner_and_is_as_accurate(problem: tuple, dense) -> None:
    """smallest=False waits only for the top k: fewer products, the same tolerance met."""
    model, data = problem
    exact = torch.linalg.eigvalsh(dense).flip(0)[:3].tolist()
    both = curvature.eigenvalues(model, F.cross_entropy, data, k=3, tol=1e-4)
    top = curvature.eigenvalues(model, F.cross_entropy, data, k=3, tol=1e-4, smallest=False)
    assert top.converged
    assert top.iterations < both.iterations
    for found, true in zip(top.top, exact, strict=True):
        assert abs(found - true) <= 1e-4 * exact[0]
    assert top.lambda_min >= both.lambda_min - 1e-12  # a Ritz value: an upper bound of λ_min


def test_lanczos_finds_both_ends_and_the_top_five_to_1e_6(problem: tuple, dense) -> None:
    model, data = problem
    exact = torch.linalg.eigvalsh(dense)
    spectrum = curvature.eigenvalues(
        model, F.cross_entropy, data, k=5, tol=1e-10, max_iterations=400
    )
    assert spectrum.converged
    assert exact[0] < 0  # the test would be weak on a convex problem
    for found, true in zip(spectrum.top, exact.flip(0)[:5].tolist(), strict=True):
        assert abs(found - true) <= 1e-6 * abs(true)
    assert abs(spectrum.lambda_max - float(exact[-1])) <= 1e-6 * abs(float(exact[-1]))
    assert abs(spectrum.lambda_min - float(exact[0])) <= 1e-6 * abs(float(exact[0]))
    # the eigenvectors are eigenvectors: ‖H u − λ u‖ small against ‖H‖
    for vector, value in (
        (spectrum.vector_max, spectrum.lambda_max),
        (spectrum.vector_min, spectrum.lambda_min),
    ):
        assert float((dense @ vector - value * vector).norm()) <= 1e-6 * float(exact.abs().max())
    assert spectrum.iterations < len(dense)  # it stopped early, on its residual bound


def test_linear_regression_hessian_is_two_phi_transpose_phi() -> None:
    generator = torch.Generator().manual_seed(3)
    phi = torch.randn(40, 6, dtype=torch.float64, generator=generator)
    y = torch.randn(40, dtype=torch.float64, generator=generator)
    model = nn.Linear(6, 1, bias=False).double()

    def squared_error(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return ((output.squeeze(1) - target) ** 2).sum()

    hessian = curvature.dense_hessian(model, squared_error, (phi, y))
    torch.testing.assert_close(hessian, 2 * phi.T @ phi, rtol=1e-13, atol=1e-12)
    spectrum = curvature.eigenvalues(model, squared_error, (phi, y), k=3, tol=1e-12)
    exact = torch.linalg.eigvalsh(2 * phi.T @ phi)
    assert spectrum.top == pytest.approx(exact.flip(0)[:3].tolist(), rel=1e-10)


def test_hutchinson_is_within_its_own_error_bar(problem: tuple, dense) -> None:
    model, data = problem
    estimate = curvature.trace(model, F.cross_entropy, data, rtol=1e-2, max_probes=300, seed=0)
    exact = float(torch.trace(dense))
    assert estimate.stderr > 0
    assert abs(estimate.value - exact) <= 3 * estimate.stderr
    # the stopping rule: the error bar met the tolerance, or the cap was reached
    assert estimate.stderr <= 1e-2 * abs(estimate.value) or estimate.probes == 300
    assert len(estimate.samples) == estimate.probes
    samples = torch.tensor(estimate.samples)
    assert estimate.stderr == pytest.approx(float(samples.std() / math.sqrt(len(samples))))


def test_density_integrates_to_one_and_spans_the_extreme_eigenvalues(problem, dense) -> None:
    model, data = problem
    exact = torch.linalg.eigvalsh(dense)
    spectral = curvature.density(model, F.cross_entropy, data, probes=3, iterations=80)
    assert float(spectral.weights.sum()) == pytest.approx(1.0, abs=1e-12)
    grid, values = spectral.curve(points=4000)
    assert float(torch.trapezoid(values, grid)) == pytest.approx(1.0, abs=1e-3)
    low, high = spectral.support
    radius = float(exact.abs().max())
    assert abs(high - float(exact[-1])) <= 1e-6 * radius
    assert abs(low - float(exact[0])) <= 1e-3 * radius
    assert float(grid[0]) < float(exact[0])
    assert float(grid[-1]) > float(exact[-1])


def test_the_same_seed_gives_the_same_numbers(problem: tuple) -> None:
    model, data = problem
    first = curvature.trace(model, F.cross_entropy, data, min_probes=4, max_probes=4, seed=5)
    again = curvature.trace(model, F.cross_entropy, data, min_probes=4, max_probes=4, seed=5)
    other = curvature.trace(model, F.cross_entropy, data, min_probes=4, max_probes=4, seed=6)
    assert first.samples == again.samples
    assert first.samples != other.samples


def test_float64_analyses_a_float32_model_without_touching_it(problem: tuple) -> None:
    model64, (inputs, targets) = problem
    model32 = nn.Sequential(nn.Linear(20, 60), nn.Tanh(), nn.Linear(60, 10))
    model32.load_state_dict({k: v.float() for k, v in model64.state_dict().items()})
    before = {k: v.clone() for k, v in model32.state_dict().items()}
    in64 = curvature.eigenvalues(
        model32,
        F.cross_entropy,
        (inputs.float(), targets),
        dtype="float64",
        tol=1e-10,
        max_iterations=300,
    )
    reference = curvature.eigenvalues(
        model64, F.cross_entropy, (inputs.float().double(), targets), tol=1e-10, max_iterations=300
    )
    assert in64.vector_max.dtype == torch.float64
    assert in64.lambda_max == pytest.approx(reference.lambda_max, rel=1e-9)
    for key, value in model32.state_dict().items():
        assert value.dtype == torch.float32
        assert torch.equal(value, before[key])


class Recorder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(self.training)
        return x


def test_batchnorm_and_dropout_are_in_eval_mode_and_restored() -> None:
    torch.manual_seed(0)
    recorder = Recorder()
    model = nn.Sequential(
        nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.5), recorder, nn.Linear(8, 3)
    )
    model.train()
    model[1].eval()  # a mixed state must come back exactly as it was
    x, y = torch.randn(30, 5), torch.randint(0, 3, (30,))
    stats = model[1].running_mean.clone()
    first = curvature.hessian_vector_product(model, F.cross_entropy, (x, y), torch.ones(91))
    second = curvature.hessian_vector_product(model, F.cross_entropy, (x, y), torch.ones(91))
    assert torch.equal(first, second)  # no dropout noise, no batch statistics
    assert recorder.seen
    assert not any(recorder.seen)
    assert model.training
    assert not model[1].training
    assert model[3].training
    assert torch.equal(model[1].running_mean, stats)


def test_several_batches_average_like_one(problem: tuple) -> None:
    model, (inputs, targets) = problem
    whole = curvature.Objective(model, F.cross_entropy, (inputs, targets))
    parts = curvature.Objective(
        model, F.cross_entropy, [(inputs[:40], targets[:40]), (inputs[40:], targets[40:])]
    )
    vector = torch.randn(whole.dimension, dtype=torch.float64)
    torch.testing.assert_close(parts.hvp(vector), whole.hvp(vector), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(
        parts.loss_and_gradient()[1], whole.loss_and_gradient()[1], rtol=1e-10, atol=1e-12
    )


def test_gradient_noise_matches_a_loop_over_examples(problem: tuple) -> None:
    model, (inputs, targets) = problem
    grads = []
    for x, y in zip(inputs, targets, strict=True):
        model.zero_grad()
        F.cross_entropy(model(x[None]), y[None]).backward()
        grads.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]))
    model.zero_grad()
    stacked = torch.stack(grads)
    mean = stacked.mean(0)
    variance = float(((stacked - mean) ** 2).sum(1).sum() / (len(stacked) - 1))
    noise = curvature.gradient_noise(
        model, F.cross_entropy, (inputs, targets), batch_size=8, chunk=10
    )
    assert noise.method == "per-example"
    assert noise.gradient_norm == pytest.approx(float(mean.norm()), rel=1e-10)
    assert noise.per_example_variance == pytest.approx(variance, rel=1e-10)
    expected = math.sqrt(variance / 8 * (64 - 8) / 64)
    assert noise.noise == pytest.approx(expected, rel=1e-10)
    assert noise.snr == pytest.approx(float(mean.norm()) / expected, rel=1e-10)
    # batch-to-batch: the mean squared distance of 8 batch gradients from their mean
    batches = [(inputs[i : i + 8], targets[i : i + 8]) for i in range(0, 64, 8)]
    spread = curvature.gradient_noise(model, F.cross_entropy, batches, method="batches")
    batch_grads = torch.stack([stacked[i : i + 8].mean(0) for i in range(0, 64, 8)])
    expected_spread = math.sqrt(float(((batch_grads - mean) ** 2).sum(1).mean()))
    assert spread.noise == pytest.approx(expected_spread, rel=1e-10)


def test_the_group_estimate_is_per_example_at_size_one_and_unbiased(problem: tuple) -> None:
    """Groups of one are the per-example figures exactly; over random partitions into 8 groups
    the estimate of tr Σ averages to the per-example value (the ANOVA identity), and the noise
    at B from P examples is tr Σ / B · (P − B)/P."""
    model, data = problem
    exact = curvature.gradient_noise(model, F.cross_entropy, data, batch_size=8)
    single = curvature.gradient_noise(
        model, F.cross_entropy, data, batch_size=8, method="groups", groups=64
    )
    assert single.method == "groups"
    assert single.per_example_variance == pytest.approx(exact.per_example_variance, rel=1e-10)
    assert single.gradient_norm == pytest.approx(exact.gradient_norm, rel=1e-10)
    assert single.noise == pytest.approx(exact.noise, rel=1e-10)
    estimates = [
        curvature.gradient_noise(
            model, F.cross_entropy, data, method="groups", groups=8, seed=seed
        ).per_example_variance
        for seed in range(100)
    ]
    # Here one estimate's relative spread is about 4%, so the mean of 100 is within 2% (> 5
    # standard errors); a biased formula (e.g. b/G instead of b/(G − 1)) is off by 12.5%.
    assert sum(estimates) / len(estimates) == pytest.approx(exact.per_example_variance, rel=0.02)
    sampled = curvature.gradient_noise(model, F.cross_entropy, data, batch_size=8, population=1000)
    expected = math.sqrt(exact.per_example_variance / 8 * (1000 - 8) / 1000)
    assert sampled.noise == pytest.approx(expected, rel=1e-10)
    with pytest.raises(InputError, match="groups"):
        curvature.gradient_noise(model, F.cross_entropy, data, method="groups", groups=65)


def test_a_samples_signal_is_debiased_to_the_populations() -> None:
    """A sample's ‖ḡ_n‖² overstates the population's ‖ḡ‖² by tr Σ/n · (P − n)/P on average;
    the reported gradient norm removes that excess: over 200 random samples of 32 from 256
    its square averages to the population's (the raw sample norm is 88 standard errors off)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 60), nn.Tanh(), nn.Linear(60, 10)).double()
    inputs = torch.randn(256, 20, dtype=torch.float64)
    targets = (inputs[:, :10] * 3).argmax(1)  # a learnable rule: a clear signal
    exact = curvature.gradient_noise(model, F.cross_entropy, (inputs, targets))
    generator = torch.Generator().manual_seed(1)
    debiased, raw = [], []
    for _ in range(200):
        chosen = torch.randperm(256, generator=generator)[:32]
        sampled = curvature.gradient_noise(
            model, F.cross_entropy, (inputs[chosen], targets[chosen]), population=256
        )
        assert sampled.per_example_variance is not None
        excess = sampled.per_example_variance / 32 * (256 - 32) / 256
        debiased.append(sampled.gradient_norm**2)
        raw.append(sampled.gradient_norm**2 + excess)
    target = exact.gradient_norm**2
    for values, unbiased in ((debiased, True), (raw, False)):
        error = statistics.mean(values) - target
        stderr = statistics.stdev(values) / math.sqrt(len(values))
        assert (abs(error) <= 4 * stderr) is unbiased
    whole = curvature.gradient_noise(model, F.cross_entropy, (inputs, targets), population=256)
    assert whole.gradient_norm == pytest.approx(exact.gradient_norm, rel=1e-12)  # no excess


def test_the_group_gradients_without_vmap_are_the_same(
    problem: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model vmap cannot run falls back to one backward per group, with the same figures."""
    from descent.diagnose import noise

    model, data = problem
    vmapped = curvature.gradient_noise(model, F.cross_entropy, data, method="groups", seed=3)

    def refuse(*_args: object) -> None:
        raise RuntimeError("no batching rule")

    monkeypatch.setattr(noise, "_group_gradients_vmapped", refuse)
    looped = curvature.gradient_noise(model, F.cross_entropy, data, method="groups", seed=3)
    assert looped.per_example_variance == pytest.approx(vmapped.per_example_variance, rel=1e-9)
    assert looped.gradient_norm == pytest.approx(vmapped.gradient_norm, rel=1e-9)


def test_bad_input_gets_one_clear_line(problem: tuple) -> None:
    model, data = problem
    frozen = nn.Linear(3, 1)
    frozen.requires_grad_(False)
    cases = [
        (
            lambda: curvature.eigenvalues(frozen, F.mse_loss, (torch.ones(2, 3), torch.ones(2, 1))),
            "no parameters that require grad",
        ),
        (
            lambda: curvature.eigenvalues(model, F.cross_entropy, (data[0][:0], data[1][:0])),
            "is empty",
        ),
        (lambda: curvature.eigenvalues(model, F.cross_entropy, []), "at least one batch"),
        (
            lambda: curvature.eigenvalues(
                model, lambda o, t: F.cross_entropy(o, t, reduction="none"), data
            ),
            "must return a scalar",
        ),
        (lambda: curvature.eigenvalues(model, F.cross_entropy, data, k=0), "k must be"),
        (lambda: curvature.trace(model, F.cross_entropy, data, dtype="float16"), "dtype must"),
    ]
    for call, words in cases:
        with pytest.raises(InputError, match=words) as caught:
            call()
        assert "\n" not in str(caught.value)


def test_analyze_gives_the_tensorboard_scalars(problem: tuple) -> None:
    model, data = problem
    report = curvature.analyze(
        model, F.cross_entropy, data, trace_rtol=0.1, max_probes=20, noise_batch_size=16
    )
    assert set(report.scalars()) == {
        "curvature/lambda_max",
        "curvature/lambda_min",
        "curvature/trace",
        "curvature/gradient_snr",
    }
    assert report.spectrum.lambda_min < 0 < report.spectrum.lambda_max
    assert report.noise is not None
    assert report.noise.batch_size == 16


def test_the_graph_gradient_is_the_loss_gradient(problem: tuple) -> None:
    model, data = problem
    objective = curvature.Objective(model, F.cross_entropy, data)
    _, gradient = objective.loss_and_gradient()
    torch.testing.assert_close(objective.graph_gradient(), gradient, rtol=1e-12, atol=1e-14)
    several = curvature.Objective(model, F.cross_entropy, [data, data])
    assert several.graph_gradient() is None  # no graph is kept for several batches
