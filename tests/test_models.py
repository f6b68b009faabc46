"""Small models and initialization schemes."""

from __future__ import annotations

import pytest
import torch

from descent.models import MLP, SmallCNN, SoftmaxRegression, initialize


@pytest.mark.parametrize(
    ("model", "batch"),
    [
        (SoftmaxRegression(64, 10), torch.randn(5, 8, 8)),
        (MLP(64, 10, hidden=(32, 16), dropout=0.1), torch.randn(5, 64)),
        (SmallCNN((1, 8, 8), 10), torch.randn(5, 1, 8, 8)),
        (SmallCNN((1, 8, 8), 10), torch.randn(5, 64)),  # flat rows are reshaped
        (SmallCNN((3, 32, 32), 10), torch.randn(2, 3, 32, 32)),
    ],
)
def test_output_shapes(model: torch.nn.Module, batch: torch.Tensor) -> None:
    assert model(batch).shape == (len(batch), 10)


def test_initialization_schemes() -> None:
    model = MLP(20, 3, hidden=(50,))
    initialize(model, "zeros")
    assert all(p.detach().abs().sum().item() == 0 for p in model.parameters())
    initialize(model, "normal", std=0.01, generator=torch.Generator().manual_seed(0))
    weight = model.layers[0].weight.detach()
    assert 0.008 < float(weight.std()) < 0.012
    assert model.layers[0].bias.detach().abs().sum().item() == 0
    initialize(model, "kaiming", generator=torch.Generator().manual_seed(0))
    assert float(weight.std()) == pytest.approx((2 / 20) ** 0.5, rel=0.15)
    initialize(model, "xavier", generator=torch.Generator().manual_seed(0))
    assert float(weight.std()) == pytest.approx((2 / 70) ** 0.5, rel=0.15)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown initialization 'he'"):
        initialize(MLP(4, 2), "he")
    with pytest.raises(ValueError, match="dropout"):
        MLP(4, 2, dropout=1.0)
    with pytest.raises(ValueError, match="too small"):
        SmallCNN((1, 2, 2), 10)
