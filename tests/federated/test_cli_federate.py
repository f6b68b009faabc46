"""`descent federate`: a short run with a table and TensorBoard files, resume, the comparison
table, the Flower app folder, one-line errors with exit status 2."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from tests.cli_support import refusal, run_cli

SMALL = [
    "federate",
    "--clients",
    "8",
    "--fraction",
    "0.5",
    "--model",
    "softmax",
    "--local-epochs",
    "1",
    "--local-batch",
    "16",
    "--local-lr",
    "0.2",
]


def test_a_run_logs_resumes_and_prints_rounds(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    logdir = tmp_path / "run"
    code, out, err = run_cli(
        [*SMALL, "--rounds", "2", "--logdir", str(logdir), "--show-split"], capsys
    )
    assert code == 0, err
    assert "iid: 8 clients" in out
    assert "test acc" in out
    assert (logdir / "federated.pt").is_file()
    assert list(logdir.glob("events.out.tfevents.*"))
    code, out, err = run_cli([*SMALL, "--rounds", "3", "--logdir", str(logdir), "--resume"], capsys)
    assert code == 0, err
    assert "│     3 │" in out


def test_compare_prints_rounds_to_target(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(
        [*SMALL, "--compare", "--target", "0.5", "--rounds", "30", "--fedsgd-lr", "1.0"], capsys
    )
    assert code == 0, err
    for word in ("FedSGD", "FedAvg", "reduction", "iid", "shards", "626"):
        assert word in out


def test_flower_app_folder(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _out, err = run_cli(
        [*SMALL, "--local-batch", "inf", "--flower-app", str(tmp_path / "app")], capsys
    )
    assert code == 0, err
    config = tomllib.loads((tmp_path / "app" / "pyproject.toml").read_text())
    app = config["tool"]["flwr"]["app"]
    assert app["components"]["serverapp"] == "descent.federated.flower:server_app"
    assert app["config"]["clients"] == 8
    assert app["config"]["local-batch"] == 0  # B = ∞


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--clients", "0"], "the number of clients K must be a positive integer, got 0"),
        (["--fraction", "0"], "the client fraction C must be in (0, 1], got 0.0"),
        (["--fraction", "1.01"], "the client fraction C must be in (0, 1], got 1.01"),
        (["--clients", "100000"], "must be at most the number of examples"),
        (["--partition", "dirichlet:-1"], "α must be > 0, got -1.0"),
        (["--partition", "shards:20", "--clients", "100"], "2000 shards cannot be cut"),
        (["--local-batch", "zero"], "--local-batch must be a positive integer or 'inf'"),
        (["--server", "lbfgs"], "server optimizer must be one of fedavg"),
        (["--compare"], "--compare needs --target"),
    ],
)
def test_bad_input_is_one_line(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    err = refusal(["federate", "--model", "softmax", "--rounds", "1", *args], capsys)
    assert err.startswith("descent: error: ")
    assert message in err
