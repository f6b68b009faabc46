"""Schedule-Free in the Trainer: evaluation and checkpoints at the average x, training at y, and a
resumed run equal to the uninterrupted one."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from descent.train.trainer import Trainer
from tests.train._helpers import blobs, small_mlp


class CrashError(Exception):
    pass


def trainer(logdir: Path | None, rule: str = "schedule_free_adamw", **kwargs: object) -> Trainer:
    return Trainer(
        small_mlp(),
        optimizer=rule,
        lr=0.05 if rule == "schedule_free_sgd" else 1e-2,
        batch_size=16,
        epochs=3,
        seed=3,
        logdir=logdir,
        **kwargs,
    )


def loss_of(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    with torch.no_grad():
        return float(torch.nn.functional.cross_entropy(model(inputs), targets))


@pytest.mark.parametrize("rule", ["schedule_free_adamw", "schedule_free_sgd"])
def test_evaluation_uses_the_averaged_iterate(rule: str) -> None:
    inputs, targets = blobs(130)
    run = trainer(None, rule)
    result = run.fit((inputs, targets), (inputs, targets))
    optimizer = run.optimizer
    # fit leaves the average in the model, and evaluate measures it
    assert not optimizer.param_groups[0]["train_mode"]
    at_average = loss_of(run.model, inputs, targets)
    assert run.evaluate((inputs, targets))["loss"] == pytest.approx(at_average, rel=1e-6)
    # the last epoch's validation loss was measured there too, not at the training point y
    assert result.history[-1].val_loss == pytest.approx(at_average, rel=1e-5)
    optimizer.train()
    at_training_point = loss_of(run.model, inputs, targets)
    assert abs(at_training_point - at_average) > 1e-4
    # evaluating while in training mode still measures x, and leaves the optimizer training
    assert run.evaluate((inputs, targets))["loss"] == pytest.approx(at_average, rel=1e-6)
    assert optimizer.param_groups[0]["train_mode"]
    assert loss_of(run.model, inputs, targets) == pytest.approx(at_training_point, rel=1e-6)


def test_checkpoints_hold_the_average(tmp_path: Path) -> None:
    inputs, targets = blobs(130)
    run = trainer(tmp_path)
    run.fit((inputs, targets), (inputs, targets))
    saved = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=False)
    for name, value in run.model.state_dict().items():  # fit ended at the average
        assert torch.equal(saved["model"][name], value), name
    assert not saved["optimizer"]["param_groups"][0]["train_mode"]


def test_a_resumed_run_equals_the_uninterrupted_one(tmp_path: Path) -> None:
    inputs, targets = blobs(130)
    data = (inputs, targets)
    whole = trainer(tmp_path / "whole", checkpoint_every=4)
    whole_result = whole.fit(data, data)

    def crash(_: Trainer, event: str, info: dict) -> None:
        if event == "step" and info["step"] == 14:  # after the checkpoint at step 12
            raise CrashError

    with pytest.raises(CrashError):
        trainer(tmp_path / "cut", checkpoint_every=4, callbacks=[crash]).fit(data, data)
    resumed = trainer(tmp_path / "cut", checkpoint_every=4)
    resumed_result = resumed.fit(data, data, resume=True)
    for name, value in whole.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], value), name
    for (key, a), b in zip(
        whole.optimizer.state.items(), resumed.optimizer.state.values(), strict=True
    ):
        assert torch.equal(a["z"], b["z"]), key
    assert [e.val_loss for e in resumed_result.history] == [
        e.val_loss for e in whole_result.history
    ]
