"""The `descent` command: version, help everywhere, one-line errors with exit status 2."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

import descent
from descent.cli.main import app, main
from tests.cli_support import refusal, run_cli
from tests.processes import run_python, start_board


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["--version"], capsys)
    assert code == 0
    assert out.strip() == f"descent {descent.__version__}"


def subcommands() -> list[str]:
    import typer.main

    return sorted(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


def test_every_subcommand_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    names = subcommands()
    assert {"demo", "optimizers"} <= set(names)
    for name in names:
        code, out, _ = run_cli([name, "--help"], capsys)
        assert code == 0
        assert f"descent {name}" in out


def test_bad_option_value_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    err = refusal(["demo", "--steps", "lots"], capsys)
    assert err.startswith("descent: error:")
    assert "--steps" in err
    assert "Traceback" not in err


def test_unknown_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert "fly" in refusal(["fly"], capsys)


def test_library_errors_are_one_line_and_debug_shows_the_traceback(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(steps: int) -> None:
        raise ValueError("lr must be a finite float ≥ 0, got -1\nsecond line")

    monkeypatch.setattr("descent.demo.problems.compare_rules", broken)
    err = refusal(["demo"], capsys)
    assert err == "descent: error: lr must be a finite float ≥ 0, got -1\n"
    with pytest.raises(ValueError, match="second line"):
        main(["--debug", "demo"])


def test_demo_prints_every_chapter(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, _ = run_cli(["demo", "--steps", "50", "--tune-trials", "2"], capsys)
    assert code == 0
    assert "Batch modes" in out
    assert "test accuracy" in out
    assert (tmp_path / "runs" / "demo-cnn" / "metrics.json").is_file()
    assert "Hyperparameter tuning" in out
    assert (tmp_path / "runs" / "demo-tune" / "study.db").is_file()
    from descent.optim import OPTIMIZERS

    for name in OPTIMIZERS:
        assert f"│ {name} " in out


def test_console_script_is_installed() -> None:
    result = run_python("-m", "descent.cli.main", "--version")
    assert result.returncode == 0
    assert result.stdout.strip().startswith("descent ")


def test_schedule_prints_values_and_plots(
    capsys: pytest.CaptureFixture[str], tmp_path: pytest.TempPathFactory
) -> None:
    from descent import schedules

    figure = tmp_path / "curves" / "lr.png"  # type: ignore[operator]
    code, out, _ = run_cli(
        [
            "schedule",
            "exponential_decay",
            "--initial_learning_rate",
            "0.1",
            "--decay-steps=10",
            "--decay_rate",
            "0.5",
            "piecewise_constant",
            "--boundaries",
            "[10, 20]",
            "--values",
            "[1.0, 0.5, 1e-1]",
            "--steps",
            "30",
            "--every",
            "5",
            "--plot",
            str(figure),
        ],
        capsys,
    )
    assert code == 0
    expected = schedules.ExponentialDecay(0.1, 10, 0.5)
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") == 4}
    assert set(rows) == {"0", "5", "10", "15", "20", "25", "29"}
    assert f"{expected(15):.6g}" in rows["15"]
    assert rows["25"].split("│")[3].strip() == "0.1"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["schedule", "cosine", "--decay_steps", "3"], "unknown schedule 'cosine'"),
        (["schedule", "--decay_steps", "3"], "name the schedule first"),
        (["schedule", "constant"], "learning_rate"),
        (["schedule", "step", "--initial_learning_rate", "0.1", "--step_size"], "needs a value"),
        (
            [
                "schedule",
                "exponential_decay",
                "--initial_learning_rate",
                "0.1",
                "--decay_steps",
                "0",
                "--decay_rate",
                "0.5",
            ],
            "decay_steps must be > 0",
        ),
    ],
)
def test_schedule_bad_input_is_one_line(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert message in refusal(args, capsys)


def test_regress_on_bundled_diabetes(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["regress", "--epochs", "20000"], capsys)
    assert code == 0
    assert "diabetes (442 × 10)" in out
    gap = next(line for line in out.splitlines() if "relative gap" in line)
    assert abs(float(gap.split("│")[2])) < 1e-8


def test_regress_csv_with_plot(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, 60)
    noise = rng.normal(size=60)
    rows = "\n".join(f"{a},{1 + a - 0.5 * a * a + 0.1 * e}" for a, e in zip(x, noise, strict=True))
    data = tmp_path / "curve.csv"
    data.write_text("x,y\n" + rows + "\n")
    figure = tmp_path / "fit.png"
    code, out, _ = run_cli(
        [
            "regress",
            str(data),
            "--target",
            "y",
            "--basis",
            "poly:2",
            "--mode",
            "minibatch",
            "--batch-size",
            "10",
            "--epochs",
            "50",
            "--plot",
            str(figure),
        ],
        capsys,
    )
    assert code == 0
    assert "poly:2" in out
    assert "minibatch" in out
    assert figure.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "y"], "give the CSV file too"),
        (["--target", "q"], "no column named 'q'"),
        (["--target", "y", "--basis", "cubic"], "unknown basis 'cubic'"),
        (["--target", "y", "--optimizer", "adamm"], "unknown optimizer 'adamm'"),
        (["--target", "y", "--standardize", "yes"], "--standardize must be one of"),
    ],
)
def test_regress_bad_input(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = tmp_path / "d.csv"
    data.write_text("x,y\n1,2\n2,3\n3,5\n")
    if args[:2] == ["--target", "y"] and len(args) == 2:
        argv = ["regress", "--target", "y"]  # a target without a file
    else:
        argv = ["regress", str(data), *args]
    assert message in refusal(argv, capsys)


USER_MODULES = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(5, 3)
        self.b = nn.Linear(3, 2)

    def forward(self, x):
        return self.b(torch.tanh(self.a(x)))


class Triple(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return 3 * x

    @staticmethod
    def backward(ctx, grad):
        return 2 * grad  # wrong on purpose


class Broken(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 2)

    def forward(self, x):
        return Triple.apply(self.a(x))
"""


def test_gradcheck_built_in_models_pass(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["gradcheck", "--max-coords", "30"], capsys)
    assert code == 0
    assert "all 4 gradient checks passed" in out
    for name in ("basis", "softmax", "mlp", "cnn"):
        assert name in out


def test_gradcheck_user_module(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    source = tmp_path / "mine.py"
    source.write_text(USER_MODULES)
    code, out, _ = run_cli(["gradcheck", "--module", f"{source}:Net"], capsys)
    assert code == 0
    assert "PASSED" in out
    code, out, _ = run_cli(["gradcheck", "--module", f"{source}:Broken"], capsys)
    assert code == 1  # a failed check is not bad input
    assert "wrong" in out
    assert "failed:" in out
    err = refusal(["gradcheck", "--module", f"{source}:Missing"], capsys)
    assert "defines no 'Missing'" in err


def test_train_writes_the_run_folder_and_resumes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    logdir = tmp_path / "run"
    code, out, _ = run_cli(
        ["train", "--model", "softmax", "--epochs", "2", "--quiet", "--logdir", str(logdir)], capsys
    )
    assert code == 0
    assert "test accuracy" in out
    assert f"descent board {logdir}" in out
    config = (logdir / "config.yaml").read_text()
    assert "model: softmax" in config
    # Resuming a finished run with a larger budget continues from epoch 2.
    code, out, _ = run_cli(
        ["train", "--config", str(logdir / "config.yaml"), "--epochs", "3", "--resume", "--quiet"],
        capsys,
    )
    assert code == 0
    history = json.loads((logdir / "metrics.json").read_text())["history"]
    assert [entry["epoch"] for entry in history] == [1, 2, 3]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--lr", "-1"], "lr: Input should be greater than or equal to 0"),
        (["--model", "resnet"], "model: Input should be"),
        (["--data", "mnist:/nonexistent"], "put the four IDX files"),
        (["--schedule", "warp"], "unknown schedule 'warp'"),
        (["--config", "/nonexistent.yaml"], "no such config file"),
    ],
)
def test_train_bad_input_is_one_line(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert message in refusal(["train", "--quiet", "--logdir", str(tmp_path / "r"), *args], capsys)


def test_board_starts_tensorboard_and_prints_its_address(tmp_path: Path) -> None:
    process, line = start_board(tmp_path / "runs")
    try:
        assert "TensorBoard for" in line
        address = line.split(" at ")[1].split()[0]
        import urllib.request

        with urllib.request.urlopen(address + "data/runs", timeout=10) as response:
            assert response.status == 200
    finally:
        process.terminate()
        process.wait(timeout=30)
    server = address.rsplit(":", 1)[1].rstrip("/")
    running = subprocess.run(
        ["pgrep", "-f", f"--port {server}"], capture_output=True, text=True, check=False
    )
    assert running.stdout.strip() == ""  # stopping `descent board` stopped its server
