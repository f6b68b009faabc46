"""The Trainer's curvature monitor, the verdict at early stopping, and `descent diagnose stall /
curvature` on a saved run folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.nn import functional as F

from descent.diagnose.curvature_monitor import CurvatureMonitor
from descent.diagnose.stall import VERDICTS
from descent.train.config import load_config
from descent.train.run import run as run_config
from tests.cli_support import refusal, run_cli


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """A tiny MLP run that early stopping ends (lr 0: the validation loss never improves)."""
    folder = tmp_path_factory.mktemp("runs") / "still"
    config = load_config(
        model="mlp",
        hidden=[16],
        lr=0.0,
        schedule=None,
        epochs=4,
        early_stopping=1,
        curvature_every=10,
        logdir=str(folder),
    )
    return folder, run_config(config)


def test_the_monitor_logs_curvature_and_the_verdict_at_early_stopping(stopped_run) -> None:
    folder, outcome = stopped_run
    assert outcome.result.stopped == "early stopping"
    assert outcome.stall is not None
    assert outcome.stall.verdict in VERDICTS
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {
        "curvature/lambda_max",
        "curvature/lambda_min",
        "curvature/trace",
        "curvature/gradient_snr",
    } <= scalars
    steps = [event.step for event in events.Scalars("curvature/lambda_max")]
    assert steps == list(range(0, outcome.result.steps, 10))
    assert "stall/progress" in scalars
    assert "stall/verdict/text_summary" in events.Tags()["tensors"]  # text is a tensor


def test_the_monitor_figures_are_the_library_figures() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3))
    inputs, targets = torch.randn(40, 4), torch.randint(0, 3, (40,))

    class FakeTrainer:
        loss = staticmethod(F.cross_entropy)
        logdir = None

    FakeTrainer.model = model
    monitor = CurvatureMonitor(5, (inputs, targets), examples=40, products=200, tol=1e-9)
    monitor(FakeTrainer(), "step", {"step": 3, "loss": 1.0})
    assert monitor.history == []  # not a multiple of 5
    monitor(FakeTrainer(), "step", {"step": 5, "loss": 1.0})
    (figures,) = monitor.history
    from descent.diagnose import curvature

    exact = torch.linalg.eigvalsh(curvature.dense_hessian(model, F.cross_entropy, monitor.sample))
    assert figures["curvature/lambda_max"] == pytest.approx(float(exact[-1]), rel=1e-3)
    assert figures["curvature/lambda_min"] == pytest.approx(float(exact[0]), rel=1e-2)
    assert (
        abs(figures["curvature/trace"] - float(exact.sum()))
        <= 4 * figures["curvature/trace_stderr"]
    )
    assert monitor.finish(FakeTrainer(), "budget") is None  # only early stops get a verdict


def test_diagnose_stall_reads_the_run_folder(stopped_run, capsys) -> None:
    folder, outcome = stopped_run
    code, out, err = run_cli(["diagnose", "stall", str(folder)], capsys)
    assert code == 0, err
    assert f"verdict: {outcome.stall.verdict}" in out
    assert "next:" in out
    code, out, _ = run_cli(["diagnose", "stall", str(folder), "--checkpoint", "best"], capsys)
    assert code == 0
    assert "best checkpoint" in out


def test_diagnose_curvature_prints_top_k_and_draws_the_density(stopped_run, capsys) -> None:
    folder, _ = stopped_run
    picture = folder / "density.png"
    code, out, err = run_cli(
        [
            "diagnose",
            "curvature",
            str(folder),
            "--top-k",
            "3",
            "--examples",
            "300",
            "--density",
            str(picture),
        ],
        capsys,
    )
    assert code == 0, err
    for label in ("λ_1", "λ_3", "λ_min", "trace", "gradient SNR"):
        assert label in out
    assert "λ_4" not in out
    assert picture.stat().st_size > 5000


def test_diagnose_bad_input_is_one_line(stopped_run, capsys, tmp_path: Path) -> None:
    folder, _ = stopped_run
    err = refusal(["diagnose", "stall", str(tmp_path / "nowhere")], capsys)
    assert "no such run folder" in err
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    err = refusal(["diagnose", "curvature", str(folder), "--checkpoint", str(broken)], capsys)
    assert "not a usable descent checkpoint" in err
