"""The learning-rate range test: the sweep's formulas, exact restoration, a robust suggestion
(spikes, NaNs, noise), and the suggestion on the digits CNN against a grid trained for real."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import descent
from descent.diagnose.lr_find import lags, lr_find, smooth, suggest
from descent.errors import InputError


def blobs(n: int = 200, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    targets = torch.randint(0, 3, (n,), generator=generator)
    inputs = torch.randn(n, 4, generator=generator) + targets[:, None].float()
    return inputs, targets


def test_sweep_is_exponential_and_smoothing_is_bias_corrected() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    test = lr_find(
        model, F.cross_entropy, blobs(), "sgd", min_lr=1e-4, max_lr=1e-1, steps=30, batch_size=20
    )
    assert test.stopped == "end of sweep"
    assert len(test.lrs) == 30
    expected = [1e-4 * 1e3 ** (i / 29) for i in range(30)]
    assert test.lrs == pytest.approx(expected, rel=1e-12)
    beta, average = 0.95, 0.0
    for i, loss in enumerate(test.losses):
        average = beta * average + (1 - beta) * loss
        assert test.smoothed[i] == pytest.approx(average / (1 - beta ** (i + 1)), rel=1e-12)


def test_lag_is_the_centre_of_mass_of_the_average_weights() -> None:
    beta = 0.9
    for i in (0, 1, 5, 40):
        weights = np.array([(1 - beta) * beta ** (i - j) for j in range(i + 1)])
        weights /= weights.sum()
        centre = float((weights * (i - np.arange(i + 1))).sum())
        assert lags(i + 1, beta)[i] == pytest.approx(centre, abs=1e-12)
    assert smooth(np.array([3.0, 3.0, 3.0]), 0.9) == pytest.approx([3.0, 3.0, 3.0])


def test_everything_is_restored_bit_for_bit() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3)
    )
    inputs, targets = blobs()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(3):  # an optimizer with state, and gradients left in .grad
        optimizer.zero_grad()
        F.cross_entropy(model(inputs), targets).backward()
        optimizer.step()
    model[1].eval()  # a mixed mode must come back as it was
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    grads = [p.grad.clone() for p in model.parameters()]
    state = optimizer.state_dict()
    saved_state = {
        k: {n: t.clone() if torch.is_tensor(t) else t for n, t in v.items()}
        for k, v in state["state"].items()
    }
    saved_groups = [dict(g) for g in state["param_groups"]]
    torch.manual_seed(123)
    random.seed(5)
    np.random.seed(7)
    rng = (torch.random.get_rng_state(), random.getstate(), np.random.get_state())

    test = lr_find(model, F.cross_entropy, (inputs, targets), optimizer, steps=25, batch_size=32)
    assert len(set(test.losses)) > 5  # the sweep did train

    for key, value in model.state_dict().items():
        assert torch.equal(value, weights[key]), key
    for parameter, grad in zip(model.parameters(), grads, strict=True):
        assert torch.equal(parameter.grad, grad)
    after = optimizer.state_dict()
    assert after["param_groups"] == saved_groups
    for key, entry in saved_state.items():
        for name, tensor in entry.items():
            assert torch.equal(torch.as_tensor(after["state"][key][name]), torch.as_tensor(tensor))
    assert model.training
    assert not model[1].training
    assert model[3].training
    assert torch.equal(torch.random.get_rng_state(), rng[0])
    assert random.getstate() == rng[1]
    assert np.array_equal(np.random.get_state()[1], rng[2][1])


def curve(log_lr: np.ndarray, centre: float = math.log(1e-2)) -> np.ndarray:
    """A textbook range-test curve: flat, a steep fall centred on lr = 1e-2, then a blow-up."""
    return 2.0 - np.tanh(log_lr - centre) + 0.02 * np.exp(1.5 * (log_lr - centre - 3))


LRS = 1e-6 * 1e7 ** (np.arange(120) / 119)


def test_the_suggestion_is_the_steepest_fall_on_a_clean_curve() -> None:
    suggestion, _steepest, stretch, slopes, _ = suggest(LRS, curve(np.log(LRS)))
    assert stretch is not None
    assert suggestion == pytest.approx(1e-2, rel=0.15)
    # the slope is per unit of ln lr: d/dx (2 − tanh x) = −1 at the centre
    assert float(slopes.min()) == pytest.approx(-1.0, rel=0.02)


def test_an_early_spike_does_not_fool_it() -> None:
    losses = curve(np.log(LRS))
    losses[:6] = [5.0, 4.0, 3.0, 2.6, 2.2, 2.05]  # a start-up spike falling fast
    suggestion, *_ = suggest(LRS, losses)
    assert suggestion == pytest.approx(1e-2, rel=0.2)
    # the per-index argmin of np.gradient, the common rule, is fooled by it
    assert LRS[int(np.argmin(np.gradient(losses)))] < 1e-5


def test_noise_does_not_fool_it() -> None:
    rng = np.random.default_rng(0)
    losses = curve(np.log(LRS)) + rng.normal(0, 0.08, len(LRS))
    suggestion, *_ = suggest(LRS, smooth(losses, 0.9), beta=0.9)
    assert 1e-2 / 2 <= suggestion <= 1e-2 * 2


class Exploding(nn.Module):
    """A quadratic bowl whose loss turns NaN once the weight leaves [−100, 100]."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor([1.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w * x


def nan_outside(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    value = ((output - target) ** 2).mean()
    return value if float(output.detach().abs().max()) < 100 else value * float("nan")


def test_a_nan_stops_the_sweep_and_is_not_recorded() -> None:
    data = (torch.ones(8, 1), torch.zeros(8, 1))
    test = lr_find(
        Exploding(), nan_outside, data, "sgd", min_lr=1e-3, max_lr=100, steps=60, diverge=1e9
    )
    assert test.stopped == "not finite"
    assert all(math.isfinite(value) for value in test.losses)
    assert len(test.losses) < 60


def test_a_blow_up_stops_the_sweep_at_k_times_the_best() -> None:
    data = (torch.ones(8, 1), torch.zeros(8, 1))
    test = lr_find(
        Exploding(), F.mse_loss, data, "sgd", min_lr=1e-3, max_lr=100, steps=60, beta=0.5
    )
    assert test.stopped.startswith("diverged")
    assert test.smoothed[-1] > 4 * min(test.smoothed)
    assert all(s <= 4 * min(test.smoothed[: i + 1]) for i, s in enumerate(test.smoothed[:-1]))


def test_bad_input_gets_one_clear_line() -> None:
    model = nn.Linear(4, 3)
    data = blobs()
    frozen = nn.Linear(4, 3).requires_grad_(False)
    cases = [
        (lambda: lr_find(model, F.cross_entropy, data, min_lr=1.0, max_lr=1.0), "below max_lr"),
        (lambda: lr_find(model, F.cross_entropy, data, min_lr=2.0, max_lr=1.0), "below max_lr"),
        (lambda: lr_find(model, F.cross_entropy, data, steps=9), "at least 10"),
        (lambda: lr_find(frozen, F.cross_entropy, data), "no parameters that require grad"),
        (lambda: lr_find(model, F.cross_entropy, (data[0][:0], data[1][:0])), "is empty"),
        (
            lambda: lr_find(
                model, lambda o, t: F.cross_entropy(o, t, reduction="none"), data, steps=10
            ),
            "must return a scalar",
        ),
    ]
    for call, words in cases:
        with pytest.raises(InputError, match=words) as caught:
            call()
        assert "\n" not in str(caught.value)


def test_descent_lr_find_is_served_lazily() -> None:
    assert descent.lr_find is lr_find


@pytest.mark.slow
def test_the_suggestion_on_the_digits_cnn_is_near_the_best_rate_of_a_real_grid() -> None:
    from descent.data.images import digits
    from descent.models import SmallCNN
    from descent.train import Trainer

    data = digits()

    def build() -> nn.Module:
        torch.manual_seed(0)
        return SmallCNN((1, 8, 8), 10, channels=(8, 16))

    test = lr_find(
        build(),
        F.cross_entropy,
        (data.train.images, data.train.labels),
        "adam",
        min_lr=1e-5,
        max_lr=10,
        steps=100,
        batch_size=50,
    )
    grid = [1e-3, 3e-3, 1e-2, 3e-2, 1e-1]
    losses = []
    for lr in grid:  # 3 epochs ≈ 76 updates, the sweep's budget
        result = Trainer(build(), lr=lr, epochs=3, seed=0).fit(data.train, data.validation)
        losses.append(result.final.val_loss)
    best = grid[int(np.argmin(losses))]
    assert best not in (grid[0], grid[-1])  # the grid brackets the optimum
    assert best / 10 <= test.suggestion <= 3 * best


def test_importing_descent_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = "import sys, descent; assert 'torch' not in sys.modules; print(descent.__all__)"
    finished = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert finished.returncode == 0, finished.stderr
    assert "lr_find" in finished.stdout
