"""The initialization report: the lecture's 10-layer experiment, dead units, symmetry, and a
report that leaves the model as it found it."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from descent.diagnose import init_report, lsuv
from descent.diagnose.init import GRADIENT_VANISHING, VERDICTS
from descent.models import MLP, initialize


@pytest.fixture(scope="module")
def gaussian_batch() -> torch.Tensor:
    """CS231n's experiment: standard-normal inputs of 500 features."""
    return torch.randn(200, 500, generator=torch.Generator().manual_seed(12345))


def deep_mlp(activation: str, init: str, seed: int = 0) -> MLP:
    model = MLP(500, 10, depth=10, width=500, activation=activation)
    return initialize(model, init, generator=torch.Generator().manual_seed(seed))


def activation_stds(report) -> list[float]:
    layers = [entry for entry in report.layers if entry.role == "activation"]
    assert len(layers) == 10
    return [entry.std for entry in layers]


def test_tanh_with_tiny_weights_vanishes(gaussian_batch: torch.Tensor) -> None:
    report = init_report(deep_mlp("tanh", "normal:0.01"), gaussian_batch)
    stds = activation_stds(report)
    assert stds[-1] < 1e-5 * stds[0]
    assert report.verdict.name == "vanishing activations"
    assert "use xavier_normal" in report.verdict.suggestion
    assert "weight std 0.01" in report.verdict.suggestion
    # Each layer multiplies the std by about 0.01·√500 ≈ 0.22 (tanh is linear near 0).
    gains = [e.gain for e in report.layers if e.role == "activation"][1:]
    assert all(abs(gain - 0.01 * math.sqrt(500)) < 0.03 for gain in gains)


def test_tanh_with_unit_weights_saturates(gaussian_batch: torch.Tensor) -> None:
    model = deep_mlp("tanh", "normal:1")
    report = init_report(model, gaussian_batch)
    tanh_layers = [entry for entry in report.layers if entry.module == "Tanh"]
    assert all(entry.saturated > 0.8 for entry in tanh_layers)
    assert report.verdict.name == "saturated"
    # The fraction is what it says: |tanh| > 0.99 counted by hand on the first layer.
    with torch.no_grad():
        first = torch.tanh(model.layers[0](gaussian_batch))
    assert tanh_layers[0].saturated == pytest.approx(float((first.abs() > 0.99).float().mean()))


def test_tanh_with_xavier_is_healthy(gaussian_batch: torch.Tensor) -> None:
    report = init_report(deep_mlp("tanh", "xavier_normal"), gaussian_batch)
    stds = activation_stds(report)
    assert all(stds[0] / 10 < std < stds[0] * 10 for std in stds)
    assert report.healthy, report.verdict


def test_relu_with_xavier_halves_the_variance_per_layer(gaussian_batch: torch.Tensor) -> None:
    report = init_report(deep_mlp("relu", "xavier_normal"), gaussian_batch)
    gains = [e.gain for e in report.layers if e.role == "activation"][1:]
    assert all(abs(gain / (1 / math.sqrt(2)) - 1) < 0.1 for gain in gains), gains


def test_relu_with_kaiming_is_healthy(gaussian_batch: torch.Tensor) -> None:
    report = init_report(deep_mlp("relu", "kaiming_normal"), gaussian_batch)
    assert report.healthy, report.verdict
    stds = activation_stds(report)
    assert max(stds) / min(stds) < 2


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_zeros_are_symmetric(gaussian_batch: torch.Tensor, activation: str) -> None:
    report = init_report(deep_mlp(activation, "zeros"), gaussian_batch)
    assert report.verdict.name == "symmetric"
    hidden = [e for e in report.layers if e.module == "Linear" and not e.is_output]
    assert all(entry.symmetric == 1.0 for entry in hidden)
    # The output layer's units get different gradients (one per class): not symmetric.
    assert report.layers[-1].is_output
    assert report.layers[-1].symmetric == 0.0


def test_a_large_negative_bias_kills_relus() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 40), nn.ReLU(), nn.Linear(40, 3))
    with torch.no_grad():
        model[0].bias[:10] = -100.0
    report = init_report(model, torch.randn(200, 20), torch.randint(0, 3, (200,)))
    relu = report.layer("1")
    assert relu.dead == pytest.approx(10 / 40)
    assert relu.verdict.name == "dead units"
    assert "25% of 40 units" in relu.verdict.reason
    assert report.verdict.name == "dead units"


def test_the_moments_and_fractions_are_the_formulas_even_far_from_zero() -> None:
    """The fused statistics equal torch's own on the captured outputs: the mean, the unbiased
    std (also with |mean| ≫ std, where Σx² − n·mean² would lose the digits), the saturated
    fraction of a tanh and the dead fraction of a convolution's ReLU channels."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 20), nn.Tanh()
    )
    with torch.no_grad():
        model[0].bias[:3] = -50.0  # three channels never fire
        model[3].weight.mul_(30.0)  # a saturated tanh
        model[3].bias.fill_(1e3)  # a layer whose mean is far larger than its std
    outputs: dict[str, torch.Tensor] = {}
    for name, module in model.named_children():
        module.register_forward_hook(
            lambda _m, _i, out, name=name: outputs.__setitem__(name, out.detach().double())
        )
    inputs = torch.randn(64, 3, 8, 8)
    report = init_report(model, inputs)
    for name in ("0", "1", "3", "4"):
        assert report.layer(name).mean == pytest.approx(float(outputs[name].mean()), rel=1e-5)
        assert report.layer(name).std == pytest.approx(float(outputs[name].std()), rel=1e-4)
    assert float(outputs["3"].mean()) > 100 * float(outputs["3"].std())
    assert report.layer("4").saturated == float((outputs["4"].abs() >= 0.99).double().mean())
    assert report.layer("1").dead == pytest.approx(3 / 8)


def test_only_truly_identical_units_are_symmetric() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 6), nn.Tanh(), nn.Linear(6, 4))
    with torch.no_grad():
        model[0].weight[1] = model[0].weight[0]
        model[0].bias[1] = model[0].bias[0]
    inputs, targets = torch.randn(50, 8), torch.randint(0, 4, (50,))
    # Same incoming weights but different outgoing ones: the gradients differ, symmetry breaks.
    assert init_report(model, inputs, targets).layer("0").symmetric == 0.0
    with torch.no_grad():
        model[2].weight[:, 1] = model[2].weight[:, 0]
    report = init_report(model, inputs, targets)
    assert report.layer("0").symmetric == pytest.approx(2 / 6)
    assert report.verdict.name == "symmetric"
    # A zero last layer is a common choice, not a symmetry: each class gets its own gradient.
    with torch.no_grad():
        model[2].weight.zero_()
        model[0].weight.normal_()
    assert init_report(model, inputs, targets).layer("2").symmetric == 0.0


def test_gradients_match_autograd_and_the_model_is_left_untouched() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(10, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3)
    )
    inputs, targets = torch.randn(64, 10), torch.randint(0, 3, (64,))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model[0].weight.grad = torch.ones_like(model[0].weight)
    rng = torch.random.get_rng_state()
    report = init_report(model, inputs, targets)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.equal(model[0].weight.grad, torch.ones_like(model[0].weight))
    assert model[4].weight.grad is None
    assert torch.equal(torch.random.get_rng_state(), rng)
    # The gradient norms are autograd's for the same loss (dropout drawn from the same state).
    model[0].weight.grad = None
    with torch.random.fork_rng():
        F.cross_entropy(model(inputs), targets).backward()
    expected = {n: float(p.grad.norm()) for n, p in model.named_parameters()}
    for parameter in report.parameters:
        assert parameter.gradient_norm == pytest.approx(expected[parameter.name], rel=1e-5)
        weight = float(dict(model.named_parameters())[parameter.name].detach().norm())
        if weight == 0:  # batch norm's bias starts at 0: no ratio
            assert math.isnan(parameter.ratio)
        else:
            assert parameter.ratio == pytest.approx(parameter.gradient_norm / weight, rel=1e-6)


def test_the_gradient_scale_is_the_ratio_of_output_gradients() -> None:
    """∂L/∂(layer output) against ∂L/∂(model output), by hand through a linear chain."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(30, 30, bias=False), nn.Linear(30, 30, bias=False))
    with torch.no_grad():
        model[1].weight.copy_(torch.eye(30) * 1e-3)
    report = init_report(model, torch.randn(100, 30))
    # ∂L/∂h = Wᵀ ∂L/∂y = 1e-3 ∂L/∂y exactly.
    assert report.layer("0").gradient_scale == pytest.approx(1e-3, rel=1e-4)
    assert report.layer("0").verdict.name == "vanishing gradients"
    assert GRADIENT_VANISHING > 1e-3


def test_functional_activations_leave_only_the_weight_layers() -> None:
    class Functional(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.first, self.second = nn.Linear(12, 24), nn.Linear(24, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.second(F.relu(self.first(x)))

    report = init_report(Functional(), torch.randn(40, 12))
    assert [entry.name for entry in report.layers] == ["first", "second"]
    assert all(entry.dead is None and entry.saturated is None for entry in report.layers)
    assert report.main_layers() == report.layers


def test_a_module_called_twice_gets_a_row_per_call() -> None:
    class Shared(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b, self.act = nn.Linear(5, 5), nn.Linear(5, 2), nn.Tanh()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b(self.act(self.a(self.act(x))))

    names = [entry.name for entry in init_report(Shared(), torch.randn(10, 5)).layers]
    assert names == ["act", "a", "act#2", "b"]


def test_every_verdict_has_a_reason_and_a_text_form(gaussian_batch: torch.Tensor) -> None:
    report = init_report(deep_mlp("tanh", "normal:0.01"), gaussian_batch[:50])
    assert report.verdict.name in VERDICTS
    text = str(report)
    assert "vanishing activations" in text
    assert "layers.19" in text
    assert "| layers.1 | Tanh |" in report.to_markdown()
    scalars = report.scalars()
    assert scalars["diagnose/healthy"] == 0.0
    assert scalars["diagnose/std/layers.1"] == pytest.approx(report.layer("layers.1").std)


def test_bad_input_is_one_sentence() -> None:
    from descent.errors import InputError

    with pytest.raises(InputError, match="at least 2 examples"):
        init_report(nn.Linear(3, 2), torch.randn(1, 3))
    with pytest.raises(InputError, match=r"torch\.nn\.Module"):
        init_report("model", torch.randn(4, 3))  # type: ignore[arg-type]
    with pytest.raises(InputError, match="tol must be"):
        lsuv(nn.Linear(3, 2), torch.randn(4, 3), tol=0)
