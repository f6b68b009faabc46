"""The losses a config names, each against its formula, and which task each fits."""

from __future__ import annotations

import pytest
import torch

from descent.errors import InputError
from descent.train.tasks import LOSSES, defaults, loss_name


def test_each_named_loss_is_its_formula() -> None:
    generator = torch.Generator().manual_seed(0)
    outputs = torch.randn(50, 1, generator=generator, dtype=torch.float64) * 3
    targets = torch.randn(50, generator=generator, dtype=torch.float64)
    residual = outputs.squeeze(1) - targets
    expected = {
        "mse": (residual**2).mean(),
        "mae": residual.abs().mean(),
        # Huber with δ = 1: ½ r² inside |r| ≤ 1, |r| − ½ outside
        "huber": torch.where(residual.abs() <= 1, 0.5 * residual**2, residual.abs() - 0.5).mean(),
    }
    assert 0 < int((residual.abs() > 1).sum()) < 50  # both branches of Huber are exercised
    for name, value in expected.items():
        assert torch.allclose(LOSSES[name][0](outputs, targets), value, rtol=1e-12), name
    logits = torch.randn(20, 4, generator=generator, dtype=torch.float64)
    classes = torch.randint(0, 4, (20,), generator=generator)
    log_softmax = logits - logits.logsumexp(dim=1, keepdim=True)
    assert torch.allclose(
        LOSSES["cross_entropy"][0](logits, classes),
        -log_softmax[torch.arange(20), classes].mean(),
        rtol=1e-12,
    )


def test_a_loss_by_name_in_any_spelling_fits_its_task_or_is_refused() -> None:
    assert loss_name("Cross-Entropy", "classification") == "cross_entropy"
    assert loss_name("MAE", "regression") == "mae"
    with pytest.raises(InputError, match="loss 'mse' is for regression, not classification"):
        loss_name("mse", "classification")
    with pytest.raises(InputError, match="loss must be one of cross_entropy, mse, mae, huber"):
        loss_name("hinge", "regression")
    _task, loss, metrics = defaults("regression", "huber", None)
    assert loss is LOSSES["huber"][0]
    assert set(metrics) == {"mse", "mae"}
    with pytest.raises(InputError, match="loss must be a loss's name"):
        defaults("regression", 3, None)
