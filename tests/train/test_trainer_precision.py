"""Mixed precision: bf16 autocast learns as well as float32; a float16 gradient scaler's skipped
steps leave the schedule where it was, without torch's scheduler-order warning."""

from __future__ import annotations

import warnings

import pytest
import torch

from descent import schedules as sch
from descent.data.images import digits
from descent.models import MLP
from descent.train import Trainer
from tests.train._helpers import blobs, small_mlp


def test_bf16_mixed_reaches_the_float32_accuracy_on_digits() -> None:
    data = digits()
    accuracies = {}
    for precision in ("32", "bf16-mixed"):
        torch.manual_seed(0)
        trainer = Trainer(
            MLP(64, 10, hidden=(64,)), lr=3e-3, epochs=8, precision=precision, device="cpu"
        )
        trainer.fit(data.train)
        accuracies[precision] = trainer.evaluate(data.test)["accuracy"]
    assert accuracies["32"] > 0.9
    assert accuracies["bf16-mixed"] >= accuracies["32"] - 0.01, accuracies


@pytest.mark.parametrize("optimizer", ["descent rule", "torch optimizer"])
def test_a_float16_skipped_step_leaves_the_schedule_where_it_was(optimizer: str) -> None:
    inputs, targets = blobs(40)
    model = small_mlp()
    schedule = sch.ExponentialDecay(0.1, 1, 0.5)  # halves at every update: a skip would show
    ready = torch.optim.SGD(model.parameters(), lr=1.0) if optimizer == "torch optimizer" else None
    trainer = Trainer(
        model,
        optimizer=ready or "sgd",
        lr=schedule,
        batch_size=10,
        epochs=4,
        precision="16-mixed",
        device="cpu",
    )
    # A scale far past float16's range: the first steps overflow and are skipped, the scale
    # halving each time, until the scaled gradients fit.
    trainer.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**24)
    taken = []
    trainer.optimizer.register_step_post_hook(lambda *_: taken.append(1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "lr_scheduler.step() before optimizer.step()"
        result = trainer.fit((inputs, targets))
    assert result.steps == 16
    assert 0 < len(taken) < 16  # some steps skipped, some taken
    if trainer.scheduler is not None:
        assert trainer.scheduler.last_epoch == len(taken)
        assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(schedule(len(taken)))
    else:
        assert trainer.optimizer.param_groups[0]["step"] == len(taken)
        assert trainer._current_lr() == pytest.approx(schedule(len(taken)))
