"""The training engine: accuracy on digits, TensorBoard events, divergence."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from descent.data.images import digits
from descent.models import MLP
from descent.train import DivergenceError, LogOptions, Trainer
from descent.train.config import load_config
from descent.train.run import run


def test_cnn_reaches_98_percent_on_digits_with_the_defaults(tmp_path: Path) -> None:
    outcome = run(load_config(model="cnn", logdir=str(tmp_path / "cnn")))
    assert outcome.test_accuracy >= 0.98
    assert (tmp_path / "cnn" / "metrics.json").is_file()


def test_mlp_reaches_96_percent_on_digits_with_the_defaults() -> None:
    outcome = run(load_config(model="mlp"))
    assert outcome.test_accuracy >= 0.96


def test_event_files_hold_the_documented_tags(tmp_path: Path) -> None:
    data = digits()
    torch.manual_seed(0)
    model = MLP(64, 10, hidden=(16,))
    log = LogOptions(scalars_every=5, ratios_every=10, histograms_every=20)
    trainer = Trainer(model, epochs=3, logdir=tmp_path, log=log, image_shape=(1, 8, 8))
    result = trainer.fit(data.train, data.validation)
    steps = result.steps  # 3 epochs of ceil(1259 / 50) = 26 steps
    assert steps == 78
    events = EventAccumulator(
        str(tmp_path), size_guidance={"scalars": 0, "histograms": 0, "images": 0, "tensors": 0}
    )
    events.Reload()
    tags = events.Tags()
    per_step = math.ceil(steps / 5)
    for tag in ("train/loss", "learning_rate", "gradient_norm"):
        assert len(events.Scalars(tag)) == per_step, tag
    for tag in ("train/epoch_loss", "train/accuracy", "val/loss", "val/accuracy"):
        assert len(events.Scalars(tag)) == 3, tag
    assert events.Scalars("val/accuracy")[-1].value == pytest.approx(result.final.val_accuracy)
    ratio_tags = [t for t in tags["scalars"] if t.startswith("update_to_weight/")]
    assert set(ratio_tags) == {f"update_to_weight/{n}" for n, _ in model.named_parameters()}
    assert len(events.Scalars(ratio_tags[0])) == math.ceil(steps / 10)
    histograms = set(tags["histograms"])
    assert {f"weights/{n}" for n, _ in model.named_parameters()} <= histograms
    assert {f"gradients/{n}" for n, _ in model.named_parameters()} <= histograms
    assert any(t.startswith("activations/") for t in histograms)
    assert len(events.Histograms("weights/layers.0.weight")) == math.ceil(steps / 20)
    assert tags["images"] == ["first_layer_weights"]
    assert len(events.Images("first_layer_weights")) == 3


def test_divergence_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path: Path) -> None:
    data = digits()
    torch.manual_seed(0)

    def explode(n: int) -> float:
        return 1e-3 if n < 30 else 1e30  # a learning rate that blows up in epoch 2

    trainer = Trainer(
        MLP(64, 10, hidden=(16,)), optimizer="sgd", lr=explode, epochs=5, logdir=tmp_path
    )
    with pytest.raises(DivergenceError, match=r"at step \d+ \(epoch 2\).*smaller learning rate"):
        trainer.fit(data.train, data.validation)
    saved = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=False)
    assert saved["state"]["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in saved["model"].values())


def test_missing_data_folder() -> None:
    with pytest.raises(FileNotFoundError, match="put the four IDX files"):
        run(load_config(data="mnist:/nonexistent/mnist"))


def test_a_torch_optimizer_with_a_schedule_and_float64(tmp_path: Path) -> None:
    from descent import schedules as sch

    data = digits()
    torch.manual_seed(0)
    model = MLP(64, 10, hidden=(16,))
    schedule = sch.StepDecay(0.05, 26, 0.5)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0, momentum=0.9)
    trainer = Trainer(
        model,
        optimizer=optimizer,
        lr=schedule,
        epochs=2,
        precision="64",
        logdir=tmp_path,
        log=LogOptions(scalars_every=1, ratios_every=0),
    )
    result = trainer.fit(data.train, data.validation)
    assert next(model.parameters()).dtype == torch.float64
    events = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0})
    events.Reload()
    seen = [(e.step, e.value) for e in events.Scalars("learning_rate")]
    assert len(seen) == result.steps == 52
    assert all(value == pytest.approx(schedule(step)) for step, value in seen)
    assert result.final.val_accuracy > 0.6  # two short epochs: it learns


def test_early_stopping_and_max_steps() -> None:
    data = digits()
    torch.manual_seed(0)
    trainer = Trainer(
        MLP(64, 10, hidden=(16,)), lr=0.5, optimizer="sgd", epochs=50, early_stopping=2
    )
    result = trainer.fit(data.train, data.validation)
    assert result.stopped == "early stopping"
    assert len(result.history) < 50
    result = Trainer(MLP(64, 10), epochs=50, max_steps=30).fit(data.train)
    assert (result.stopped, result.steps) == ("max steps", 30)
