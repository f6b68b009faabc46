"""`descent diagnose init`: exit statuses, the figure, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli_support import refusal, run_cli

SMALL = ["diagnose", "init", "--depth", "3", "--width", "64", "--batch", "100"]


def test_a_healthy_initialization_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli([*SMALL, "--init", "xavier_normal"], capsys)
    assert code == 0, out
    assert "xavier_normal: healthy" in out


def test_an_unhealthy_one_exits_1_and_the_figure_has_every_panel(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    figure = tmp_path / "init.png"
    code, out, _ = run_cli(
        [*SMALL, "--init", "normal:0.01", "--init", "xavier_normal", "--plot", str(figure)],
        capsys,
    )
    assert code == 1
    assert "normal:0.01: vanishing activations" in out
    assert "use xavier_normal" in out
    # 3 tanh layers × 2 initializations, activations and gradients: 12 histograms.
    assert "(12 histograms)" in out
    from PIL import Image

    with Image.open(figure) as image:
        assert image.size[0] > 400
        assert image.size[1] > 400


def test_the_figure_has_one_panel_per_layer_and_initialization(tmp_path: Path) -> None:
    import torch

    from descent.diagnose import init_report
    from descent.diagnose.figures import plot_init_reports
    from descent.models import MLP, initialize

    batch = torch.randn(50, 16)
    reports = {
        scheme: init_report(initialize(MLP(16, 3, depth=4, width=16), scheme), batch)
        for scheme in ("zeros", "kaiming_normal", "orthogonal")
    }
    assert plot_init_reports(reports, tmp_path / "f.png") == 2 * 3 * 4
    assert (tmp_path / "f.png").stat().st_size > 10_000


def test_digits_and_a_user_module(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run_cli(
        [*SMALL, "--activation", "relu", "--init", "kaiming_normal", "--data", "digits"], capsys
    )
    assert code == 0, out
    assert "digits" in out
    assert "kaiming_normal: healthy" in out
    source = tmp_path / "net.py"
    source.write_text(
        "import torch\n"
        "class Net(torch.nn.Sequential):\n"
        "    def __init__(self):\n"
        "        super().__init__(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))\n"
        "        with torch.no_grad():\n"
        "            self[0].bias.fill_(-50.0)\n"
    )
    code, out, _ = run_cli(
        ["diagnose", "init", "--module", f"{source}:Net", "--batch", "64"], capsys
    )
    assert code == 1
    assert "dead units" in out
    assert "100% of 8 units" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--init", "he"], "unknown initialization 'he'"),
        (["--depth", "0"], "--depth must be a positive integer, got 0"),
        (["--init", "normal:-1"], "standard deviation of initialization normal must be"),
        (["--init", "normal:abc"], "standard deviation of initialization normal must be"),
        (["--init", "uniform"], "needs its bound"),
        (["--activation", "swish2"], "activation must be one of"),
        (["--model", "resnet"], "--model must be one of"),
        (["--batch", "1"], "--batch must be at least 2"),
        (["--input-shape", "8,x"], "--input-shape must be positive integers"),
        (["--data", "mnist:/nonexistent"], "nonexistent"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    err = refusal([*SMALL, *args], capsys)
    assert message in err
    assert err.startswith("descent: error:")


def test_the_demo_chapter_shows_four_verdicts_and_the_repair() -> None:
    import io

    from rich.console import Console

    from descent.demo import CHAPTERS, DemoOptions
    from descent.demo.initialization import chapter

    assert ("Initialization", "descent.demo.initialization:chapter") in CHAPTERS
    buffer = io.StringIO()
    chapter(Console(file=buffer, width=150), DemoOptions(), 3)
    rows = {
        line.split("│")[1].strip(): line for line in buffer.getvalue().splitlines() if "│" in line
    }
    assert "vanishing activations" in rows["normal:0.01"]
    assert "saturated" in rows["normal:1"]
    assert "healthy" in rows["xavier_normal"]
    assert "symmetric" in rows["zeros"]
    assert "healthy" in rows["normal:0.01 → lsuv"]
