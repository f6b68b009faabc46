"""The curvature monitor in training: the plateau rule and the "plateau" stop reason with its
verdict, and the background analysis (the same figures as in the training thread, training
unchanged)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.nn import functional as F

from descent.diagnose.curvature_monitor import CurvatureMonitor
from descent.diagnose.stall import VERDICTS
from descent.errors import InputError
from descent.train import Trainer
from descent.train.config import load_config
from descent.train.run import run as run_config


def toy() -> tuple[torch.nn.Module, tuple[torch.Tensor, torch.Tensor]]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    inputs = torch.randn(120, 6, generator=torch.Generator().manual_seed(1))
    targets = torch.randint(0, 3, (120,), generator=torch.Generator().manual_seed(2))
    return model, (inputs, targets)


def records(losses: list[float]) -> list[dict[str, float]]:
    return [{"epoch": i + 1, "train_loss": loss} for i, loss in enumerate(losses)]


def test_the_plateau_rule_is_no_relative_improvement_over_patience_epochs() -> None:
    monitor = CurvatureMonitor(0, toy()[1], stop_on_plateau=2, plateau_rtol=1e-2)
    assert not monitor.plateau(records([2.0, 1.0]))  # not more epochs than the patience yet
    assert not monitor.plateau(records([2.0, 1.0, 0.98]))  # 2% better than the best before
    assert monitor.plateau(records([2.0, 1.0, 0.995, 0.999]))  # 0.5% in two epochs: flat
    assert monitor.plateau(records([2.0, 1.0, 1.3, 1.2]))  # rising is no progress either
    assert not monitor.plateau(records([2.0, 1.0, 1.3, 0.5]))
    # Scale-free: the same losses times 1000 (or shifted negative) decide the same.
    assert monitor.plateau(records([2000.0, 1000.0, 995.0, 999.0]))
    assert not monitor.plateau(records([-1.0, -2.0, -2.1]))
    assert monitor.plateau(records([-1.0, -2.0, -2.01, -2.0]))
    assert not CurvatureMonitor(0, toy()[1]).plateau(records([1.0] * 10))  # off by default


def test_the_verdict_takes_at_least_64_examples_the_analyses_first() -> None:
    _, data = toy()
    small = CurvatureMonitor(1, data)
    assert len(small.sample[0]) == 32
    assert len(small.verdict_sample[0]) == 64
    assert torch.equal(small.verdict_sample[0][:32], small.sample[0])
    large = CurvatureMonitor(1, data, examples=100)
    assert torch.equal(large.verdict_sample[1], large.sample[1])


def test_bad_options_are_one_line() -> None:
    for options in ({"stop_on_plateau": 0}, {"plateau_rtol": 2.0}, {"background": 1}):
        with pytest.raises(InputError):
            CurvatureMonitor(5, toy()[1], **options)
    with pytest.raises(InputError):
        CurvatureMonitor(-1, toy()[1])


def test_a_plateau_ends_the_run_with_its_reason_and_the_verdict(tmp_path: Path) -> None:
    """lr 0: the training loss never moves, so two flat epochs after the first end the run."""
    folder = tmp_path / "flat"
    config = load_config(
        model="mlp",
        hidden=[16],
        lr=0.0,
        schedule=None,
        epochs=10,
        stop_on_plateau=2,
        logdir=str(folder),
    )
    outcome = run_config(config)
    assert outcome.result.stopped == "plateau"
    assert len(outcome.result.history) == 3
    assert outcome.stall is not None
    assert outcome.stall.verdict in VERDICTS
    events = EventAccumulator(str(folder), size_guidance={"tensors": 0})
    events.Reload()
    assert "stall/verdict/text_summary" in events.Tags()["tensors"]
    # A run that keeps learning is not stopped by the same rule.
    learning = load_config(model="mlp", hidden=[16], epochs=3, stop_on_plateau=2)
    assert run_config(learning).result.stopped == "budget"


def test_the_background_analysis_is_the_foreground_one_and_leaves_training_alone() -> None:
    def train(monitor: CurvatureMonitor | None) -> list[torch.Tensor]:
        model, (inputs, targets) = toy()
        callbacks = [monitor] if monitor is not None else []
        trainer = Trainer(
            model,
            lr=0.05,
            epochs=2,
            batch_size=20,
            seed=0,
            callbacks=callbacks,
            loss=F.cross_entropy,
        )
        trainer.fit((inputs, targets))
        return [p.detach().clone() for p in model.parameters()]

    data = toy()[1]
    background = CurvatureMonitor(4, data, examples=50, background=True)
    foreground = CurvatureMonitor(4, data, examples=50, background=False)
    plain = train(None)
    assert all(torch.equal(a, b) for a, b in zip(plain, train(background), strict=True))
    assert all(torch.equal(a, b) for a, b in zip(plain, train(foreground), strict=True))
    assert [h["step"] for h in background.history] == [0, 4, 8]
    assert background.history == foreground.history  # bit for bit: a snapshot per step
    assert background.history[0] != background.history[-1]  # the weights did move


def test_the_cli_ends_a_flat_run_on_a_plateau_and_prints_the_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from descent.cli.main import main

    args = ["train", "--model", "mlp", "--lr", "0", "--schedule", "none", "--epochs", "6"]
    args += ["--stop-on-plateau", "1", "--logdir", str(tmp_path / "flat"), "--quiet"]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    out = capsys.readouterr().out
    assert int(exit_info.value.code or 0) == 0
    assert "stopped: plateau" in out
    assert "verdict:" in out
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--model", "mlp", "--stop-on-plateau", "0"])
    assert exit_info.value.code == 2
    assert "stop_on_plateau" in capsys.readouterr().err


def test_a_model_that_cannot_be_copied_is_analysed_in_the_training_thread() -> None:
    import threading

    model, data = toy()
    model.guard = threading.Lock()  # deepcopy refuses locks

    class FakeTrainer:
        loss = staticmethod(F.cross_entropy)
        logdir = None

    FakeTrainer.model = model
    monitor = CurvatureMonitor(5, data, examples=40, background=True)
    monitor(FakeTrainer(), "step", {"step": 0, "loss": 1.0})
    assert not monitor.background
    assert [entry["step"] for entry in monitor.history] == [0]


def test_a_resumed_run_stops_on_the_plateau_where_an_uninterrupted_one_does(
    tmp_path: Path,
) -> None:
    """The rule reads the Trainer's epoch history, which a checkpoint restores."""

    def trainer(epochs: int, folder: Path) -> Trainer:
        model, _ = toy()
        monitor = CurvatureMonitor(0, toy()[1], stop_on_plateau=2)
        return Trainer(
            model, lr=0.0, epochs=epochs, batch_size=40, seed=0, logdir=folder, callbacks=[monitor]
        )

    data = toy()[1]
    whole = trainer(10, tmp_path / "whole").fit(data)
    assert whole.stopped == "plateau"
    assert len(whole.history) == 3
    trainer(2, tmp_path / "split").fit(data)  # interrupted by its budget after two epochs
    resumed = trainer(10, tmp_path / "split").fit(data, resume=True)
    assert resumed.stopped == "plateau"
    assert [e.train_loss for e in resumed.history] == [e.train_loss for e in whole.history]


def test_the_noise_comes_every_noise_every_analyses_by_the_step() -> None:
    """noise_every=2: the SNR at the analyses of steps 0, 2·every, 4·every, … and at a cold
    start; the analyses between log the eigenvalues alone, the same bit for bit as with the
    noise at every analysis (the noise draws from its own generator and only reads the
    gradient's graph); a monitor resumed from the warm state decides by the step alike."""
    model, data = toy()

    class FakeTrainer:
        loss = staticmethod(F.cross_entropy)
        logdir = None

    FakeTrainer.model = model
    every_other = CurvatureMonitor(3, data, examples=40, background=False)
    each = CurvatureMonitor(3, data, examples=40, background=False, noise_every=1)
    for monitor in (every_other, each):
        for step in range(1, 13):
            monitor(FakeTrainer(), "step", {"step": step, "loss": 1.0})
    noisy = {r["step"]: "curvature/gradient_snr" in r for r in every_other.history}
    assert noisy == {3: True, 6: True, 9: False, 12: True}  # 3: the cold start
    assert all("curvature/gradient_snr_stderr" in record for record in each.history)
    for sparse, full in zip(every_other.history, each.history, strict=True):
        assert {tag: full[tag] for tag in sparse} == sparse
    resumed = CurvatureMonitor(3, data, examples=40, background=False)
    resumed.load_state_dict(every_other.state_dict())  # warm: step 9 is no cold start
    resumed(FakeTrainer(), "step", {"step": 9, "loss": 1.0})
    assert "curvature/gradient_snr" not in resumed.history[0]
    with pytest.raises(InputError, match="noise_every"):
        CurvatureMonitor(1, data, noise_every=0)


def test_lambda_min_comes_every_lambda_min_every_analyses_with_one_product_less(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """lambda_min_every=2: λ_min (and its residual) at the analyses of steps 0, 2·every, … and
    at a cold start; the analyses between leave its warm vector out (one product less), log
    λ_max alone and keep λ_min's vector for the next one, which starts from it."""
    from descent.diagnose import curvature_monitor

    model, data = toy()
    calls: list[tuple[int, int]] = []
    real = curvature_monitor.subspace_curvature

    def watched(objective, *, warm, max_products, **options):
        calls.append((len(warm), max_products))
        return real(objective, warm=warm, max_products=max_products, **options)

    monkeypatch.setattr(curvature_monitor, "subspace_curvature", watched)

    class FakeTrainer:
        loss = staticmethod(F.cross_entropy)
        logdir = None

    FakeTrainer.model = model
    monitor = CurvatureMonitor(3, data, examples=40, background=False)
    warm_after: dict[int, list[torch.Tensor]] = {}
    for step in range(1, 13):
        monitor(FakeTrainer(), "step", {"step": step, "loss": 1.0})
        warm_after[step] = monitor.state_dict()["warm"]
    # Step 9 left λ_min's vector as step 6 made it and moved λ_max's.
    assert torch.equal(warm_after[9][1], warm_after[6][1])
    assert not torch.equal(warm_after[9][0], warm_after[6][0])
    minimum = {r["step"]: "curvature/lambda_min_residual" in r for r in monitor.history}
    assert minimum == {3: True, 6: True, 9: False, 12: True}  # 3: the cold start
    assert all("curvature/lambda_max_residual" in r for r in monitor.history)
    assert calls == [(0, 3), (2, 3), (1, 2), (2, 3)]
    every = CurvatureMonitor(3, data, examples=40, background=False, lambda_min_every=1)
    for step in range(1, 13):
        every(FakeTrainer(), "step", {"step": step, "loss": 1.0})
    assert all("curvature/lambda_min" in r for r in every.history)
    assert calls[4:] == [(0, 3), (2, 3), (2, 3), (2, 3)]
    with pytest.raises(InputError, match="lambda_min_every"):
        CurvatureMonitor(1, data, lambda_min_every=0)
