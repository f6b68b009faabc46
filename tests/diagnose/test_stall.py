"""Stall verdicts with known answers: 2-D functions, a saturated sigmoid, the SGD noise floor,
and the pure decision rule's scale-freeness."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import descent.diagnose
from descent.diagnose import Thresholds, stall
from descent.diagnose.stall import ADVICE, VERDICTS, decide
from descent.errors import InputError


class TwoD(nn.Module):
    """f(x, y) with (x, y) as the parameters; the "output" is the loss itself."""

    def __init__(self, f: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x: float, y: float):
        super().__init__()
        self.point = nn.Parameter(torch.tensor([x, y], dtype=torch.float64))
        self.f = f

    def forward(self, _inputs: torch.Tensor) -> torch.Tensor:
        return self.f(self.point[0], self.point[1]).reshape(())


def itself(output: torch.Tensor, _target: torch.Tensor) -> torch.Tensor:
    return output


NO_DATA = (torch.zeros(1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64))


def test_the_origin_of_x2_minus_y2_is_a_saddle() -> None:
    verdict = stall(TwoD(lambda x, y: x**2 - y**2, 0.0, 0.0), itself, NO_DATA)
    assert verdict.verdict == "saddle"
    assert verdict.lambda_max == pytest.approx(2.0)
    assert verdict.lambda_min == pytest.approx(-2.0)
    # the escape direction is ±y
    direction = verdict.escape_direction
    assert abs(float(direction[1])) == pytest.approx(1.0)
    assert float(direction[0]) == pytest.approx(0.0, abs=1e-12)
    assert "eigenvector" in verdict.advice
    assert "saddle" in str(verdict)


def test_one_zero_of_the_double_well_is_a_local_minimum() -> None:
    verdict = stall(TwoD(lambda x, y: (x**2 - 1) ** 2 + y**2, 1.0, 0.0), itself, NO_DATA)
    assert verdict.verdict == "local minimum"
    assert (verdict.lambda_max, verdict.lambda_min) == pytest.approx((8.0, 2.0))
    assert verdict.gradient_norm == 0.0


def test_a_saturated_sigmoid_is_a_plateau() -> None:
    model = nn.Sequential(nn.Linear(1, 1), nn.Sigmoid()).double()
    with torch.no_grad():
        model[0].weight.fill_(4.0)
        model[0].bias.fill_(0.0)
    inputs = torch.tensor([[5.0], [6.0], [7.0]], dtype=torch.float64)  # pre-activations 20 … 28
    targets = torch.zeros(3, 1, dtype=torch.float64)  # far on the wrong side: loss ≈ 1
    verdict = stall(model, F.mse_loss, (inputs, targets))
    assert verdict.verdict == "plateau"
    assert verdict.loss == pytest.approx(1.0, abs=1e-6)
    assert 0 < verdict.gradient_norm < 1e-6  # small but not zero: the rule is not a zero test
    assert verdict.slope < verdict.thresholds.flat
    assert verdict.bend < verdict.thresholds.flat


def test_halfway_down_a_quadratic_bowl_is_descending() -> None:
    # from (2, 2) to the minimum at the origin of x² + 3y², halfway: (1, 1)
    verdict = stall(TwoD(lambda x, y: x**2 + 3 * y**2, 1.0, 1.0), itself, NO_DATA)
    assert verdict.verdict == "descending"
    assert verdict.progress >= verdict.thresholds.stalled
    # one 1/λ_max step removes ‖g‖²/(2 λ_max L) of the loss: (4 + 36) / (2·6·4)
    assert verdict.progress == pytest.approx(40 / 48)


def test_pure_noise_targets_make_an_sgd_noise_floor_that_a_larger_batch_lifts() -> None:
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(2000, 2, dtype=torch.float64, generator=generator)
    targets = 10 * torch.randn(2000, 1, dtype=torch.float64, generator=generator)
    model = nn.Linear(2, 1, bias=False).double()
    with torch.no_grad():  # one unit away from the least-squares solution
        solution = torch.linalg.lstsq(inputs, targets).solution
        model.weight.copy_((solution + torch.tensor([[1.0], [0.0]])).T)
    noisy = stall(model, F.mse_loss, (inputs, targets), batch_size=1)
    assert noisy.verdict == "SGD noise floor"
    assert noisy.snr < noisy.thresholds.noise
    assert noisy.progress >= noisy.thresholds.stalled  # the full gradient is still useful
    calm = stall(model, F.mse_loss, (inputs, targets), batch_size=1000)
    assert calm.verdict == "descending"
    assert calm.snr > noisy.snr * 10


def test_the_rule_is_scale_free() -> None:
    """Multiplying the loss by c, or the parameters by a (the function rewritten to match:
    g → g/a, H → H/a²), leaves every figure and the verdict unchanged."""
    base = dict(
        loss=0.7, gradient_norm=0.03, parameter_norm=12.0, lambda_max=5.0, lambda_min=-0.4, snr=1.5
    )
    verdict, _, figures = decide(**base, thresholds=Thresholds())
    for c, a in ((1e3, 1.0), (1e-4, 1.0), (1.0, 7.0), (3.0, 0.01)):
        scaled = dict(
            loss=c * base["loss"],
            gradient_norm=c * base["gradient_norm"] / a,
            parameter_norm=a * base["parameter_norm"],
            lambda_max=c * base["lambda_max"] / a**2,
            lambda_min=c * base["lambda_min"] / a**2,
            snr=base["snr"],
        )
        again, _, scaled_figures = decide(**scaled, thresholds=Thresholds())
        assert again == verdict
        for name, value in figures.items():
            assert scaled_figures[name] == pytest.approx(value, rel=1e-12)


@pytest.mark.parametrize(
    ("figures", "expected"),
    [
        (dict(gradient_norm=0.0, lambda_max=1.0, lambda_min=-0.5), "saddle"),
        (dict(gradient_norm=0.0, lambda_max=1.0, lambda_min=-0.001), "local minimum"),
        (dict(gradient_norm=1.0, lambda_max=1.0, lambda_min=0.5), "descending"),
        (dict(gradient_norm=1.0, lambda_max=1.0, lambda_min=0.5, snr=0.01), "SGD noise floor"),
        (dict(gradient_norm=1e-9, lambda_max=1e-9, lambda_min=0.0), "plateau"),
        (dict(gradient_norm=0.0, lambda_max=-1.0, lambda_min=-2.0), "saddle"),  # a maximum
    ],
)
def test_each_verdict_is_reachable(figures: dict, expected: str) -> None:
    arguments = dict(loss=1.0, parameter_norm=1.0, snr=None) | figures
    verdict, reason, _ = decide(**arguments, thresholds=Thresholds())
    assert verdict == expected
    assert reason
    assert expected in VERDICTS
    assert expected in ADVICE


def test_thresholds_must_be_positive() -> None:
    with pytest.raises(InputError, match=r"thresholds\.noise must be"):
        Thresholds(noise=-1.0)


def test_stall_is_exported_and_restores_the_model() -> None:
    assert descent.diagnose.stall is stall
    model = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.3), nn.Linear(4, 2))
    before = [p.detach().clone() for p in model.parameters()]
    verdict = stall(model, F.cross_entropy, (torch.randn(20, 3), torch.randint(0, 2, (20,))))
    assert model.training
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert verdict.verdict in VERDICTS
    assert set(verdict.figures()) >= {"loss", "progress", "lambda_min"}
    assert not math.isnan(verdict.progress)
