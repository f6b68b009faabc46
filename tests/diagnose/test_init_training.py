"""The diagnosis is true, not only printed: symmetric units stay identical through training,
LSUV repairs a vanishing network, and the Trainer logs the report and the monitoring."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from descent.data.images import ImageData, digits
from descent.diagnose import init_report, lsuv
from descent.diagnose.monitor import InitDiagnosis
from descent.models import MLP, initialize
from descent.train import Trainer


@pytest.fixture(scope="module")
def data() -> ImageData:
    return digits()


def train(model: torch.nn.Module, data: ImageData, epochs: int, **options) -> float:
    trainer = Trainer(model, epochs=epochs, batch_size=50, seed=0, **options)
    trainer.fit(data.train)
    return trainer.evaluate(data.test)["accuracy"]


def test_zero_initialized_units_stay_identical_while_xavier_learns(data: ImageData) -> None:
    torch.manual_seed(0)
    zeros = initialize(MLP(64, 10, hidden=(32, 32), activation="sigmoid"), "zeros")
    assert init_report(zeros, data.train.images[:200], data.train.labels[:200]).verdict.name == (
        "symmetric"
    )
    zero_accuracy = train(zeros, data, epochs=3, lr=1e-2)
    for layer in (zeros.layers[0], zeros.layers[2]):
        weight, bias = layer.weight.detach(), layer.bias.detach()
        assert torch.equal(weight, weight[:1].expand_as(weight))  # every unit the same
        assert torch.equal(bias, bias[:1].expand_as(bias))
    # The sigmoid's 0.5 reaches the output layer, so it did move: training ran.
    assert zeros.layers[4].weight.detach().abs().sum() > 0
    xavier = initialize(
        MLP(64, 10, hidden=(32, 32), activation="sigmoid"),
        "xavier_normal",
        generator=torch.Generator().manual_seed(0),
    )
    xavier_accuracy = train(xavier, data, epochs=3, lr=1e-2)
    assert xavier_accuracy > 0.75
    # One distinct unit per layer learns little: far behind the same network with Xavier.
    assert zero_accuracy < xavier_accuracy - 0.3


def test_lsuv_repairs_a_vanishing_network_and_it_trains_like_xavier(data: ImageData) -> None:
    batch = data.train.images[:256]

    def deep(init: str) -> MLP:
        model = MLP(64, 10, depth=10, width=64, activation="tanh")
        return initialize(model, init, generator=torch.Generator().manual_seed(0))

    broken = deep("normal:0.01")
    assert init_report(broken, batch).verdict.name == "vanishing activations"
    report = lsuv(broken, batch, generator=torch.Generator().manual_seed(0))
    assert report.healthy, report.verdict
    # Every Linear's output variance is 1 within LSUV's tolerance on that batch.
    hidden = batch.flatten(1)
    with torch.no_grad():
        for layer in broken.layers:
            hidden = layer(hidden)
            if isinstance(layer, torch.nn.Linear):
                assert abs(float(hidden.var()) - 1) < 0.1
    lsuv_accuracy = train(broken, data, epochs=4, lr=1e-3)
    xavier_accuracy = train(deep("xavier_normal"), data, epochs=4, lr=1e-3)
    assert xavier_accuracy > 0.9
    # "Trains to the accuracy Xavier reaches": at least that, less 2% (here it does better).
    assert lsuv_accuracy >= xavier_accuracy - 0.02


def test_the_trainer_logs_the_report_and_the_monitoring(data: ImageData, tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    torch.manual_seed(0)
    model = MLP(64, 10, hidden=(32,))
    monitor = InitDiagnosis(model, data.train.images[:128], data.train.labels[:128], every=5)
    Trainer(model, epochs=1, batch_size=100, seed=0, logdir=tmp_path, callbacks=[monitor]).fit(
        data.train, data.validation
    )
    steps = [step for step, _ in monitor.history]
    assert steps == [0, 5, 10]  # 13 steps of 100
    assert monitor.history[0][1]["std/layers.0"] > 0
    events = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    scalars = events.Tags()["scalars"]
    assert "diagnose/healthy" in scalars
    assert [e.step for e in events.Scalars("diagnose/std/layers.1")] == [0]
    assert events.Scalars("diagnose/std/layers.1")[0].value == pytest.approx(
        monitor.report.layer("layers.1").std
    )
    dead = events.Scalars("diagnose/train/dead/layers.1")
    assert [e.step for e in dead] == [0, 5, 10]
    assert "diagnose/initialization/text_summary" in events.Tags()["tensors"]
    # No hook is left on the model after a monitored step.
    assert not any(m._forward_hooks for m in model.modules())


def test_monitoring_does_not_change_training(data: ImageData) -> None:
    def weights(every: int | None) -> list[torch.Tensor]:
        torch.manual_seed(0)
        model = MLP(64, 10, hidden=(32,), dropout=0.2)
        callbacks = [InitDiagnosis(model, data.train.images[:64], every=every)] if every else []
        Trainer(model, epochs=1, batch_size=100, seed=0, callbacks=callbacks).fit(data.train)
        return [p.detach() for p in model.parameters()]

    assert all(torch.equal(a, b) for a, b in zip(weights(None), weights(3), strict=True))


def test_steps_between_monitored_ones_run_without_hooks(data: ImageData) -> None:
    """With every = 5, hooks are installed only for the forward of steps 0, 5, 10, …: after the
    callback of step s the model carries hooks exactly when step s + 1 is monitored."""
    torch.manual_seed(0)
    model = MLP(64, 10, hidden=(32,))
    hooked: list[bool] = []

    def observe(_trainer, event: str, _info) -> None:
        if event == "step":
            hooked.append(any(m._forward_hooks or m._forward_pre_hooks for m in model.modules()))

    monitor = InitDiagnosis(model, data.train.images[:64], every=5)
    Trainer(model, epochs=1, batch_size=50, seed=0, callbacks=[monitor, observe]).fit(data.train)
    assert len(hooked) > 10
    assert hooked == [(step + 1) % 5 == 0 for step in range(len(hooked))]
    assert [step for step, _ in monitor.history] == list(range(0, len(hooked), 5))


def test_dying_relus_show_up_as_they_happen(data: ImageData) -> None:
    """A learning rate far too large kills ReLUs during training; the monitor sees it."""
    torch.manual_seed(0)
    model = initialize(MLP(64, 10, hidden=(64,)), "kaiming_normal", generator=None)
    monitor = InitDiagnosis(model, data.train.images[:64], every=2)
    trainer = Trainer(
        model, optimizer="sgd", lr=20.0, epochs=1, batch_size=50, seed=0, callbacks=[monitor]
    )
    trainer.fit(data.train)
    dead = [figures["dead/layers.1"] for _, figures in monitor.history]
    assert dead[0] < 0.3  # a batch of 50 digits: a few units are off for all of them
    assert max(dead) > 0.9


def test_a_run_with_lsuv_writes_the_initial_report(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from descent.train.config import load_config
    from descent.train.run import run

    config = load_config(
        model="mlp",
        hidden=[32, 32],
        activation="tanh",
        init="lsuv",
        epochs=1,
        diagnose_every=10,
        logdir=str(tmp_path),
    )
    outcome = run(config)
    assert outcome.result.steps == 26  # 1,258 training digits in batches of 50
    events = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0})
    events.Reload()
    # LSUV scaled every Linear to unit output variance on the run's first 256 examples.
    assert events.Scalars("diagnose/healthy")[0].value == 1.0
    assert [e.step for e in events.Scalars("diagnose/train/std/layers.1")] == [0, 10, 20]
