"""`descent lr-find` and `descent train --lr find`."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.cli_support import refusal, run_cli


def test_lr_find_prints_the_sweep_and_plots_it(capsys, tmp_path: Path) -> None:
    picture = tmp_path / "lr.png"
    code, out, err = run_cli(
        [
            "lr-find",
            "--model",
            "mlp",
            "--optimizer",
            "adam",
            "--min",
            "1e-5",
            "--max",
            "10",
            "--steps",
            "40",
            "--plot",
            str(picture),
        ],
        capsys,
    )
    assert code == 0, err
    assert "suggested lr" in out
    assert "longest descending stretch" in out
    assert picture.stat().st_size > 5000


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--min", "1", "--max", "0.1"], "min_lr must be below max_lr"),
        (["--steps", "5"], "steps must be at least 10"),
    ],
)
def test_lr_find_bad_input_is_one_line(capsys, args: list[str], words: str) -> None:
    err = refusal(["lr-find", "--model", "softmax", *args], capsys)
    assert words in err


def test_train_lr_find_trains_at_the_suggested_rate(capsys, tmp_path: Path) -> None:
    code, out, err = run_cli(
        [
            "train",
            "--model",
            "softmax",
            "--lr",
            "find",
            "--epochs",
            "1",
            "--quiet",
            "--logdir",
            str(tmp_path / "run"),
        ],
        capsys,
    )
    assert code == 0, err
    assert "range test: suggested lr" in out
    suggested = float(out.split("suggested lr ")[1].split()[0])
    import yaml

    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["lr"] == pytest.approx(suggested, rel=1e-2)


def test_train_lr_must_be_a_number_or_find(capsys, tmp_path: Path) -> None:
    err = refusal(["train", "--lr", "fast", "--logdir", str(tmp_path / "x")], capsys)
    assert "--lr must be a number or 'find'" in err


def test_lr_find_reads_a_table_with_its_target_as_train_does(capsys, tmp_path: Path) -> None:
    """`--data` and `--target` are the same options in `lr-find` as in `train`."""
    rows = torch.Generator().manual_seed(0)
    features = torch.rand(120, 2, generator=rows)
    target = 3 * features[:, 0] - 2 * features[:, 1]
    table = tmp_path / "t.csv"
    lines = (f"{a:.5f},{b:.5f},{y:.5f}\n" for (a, b), y in zip(features, target, strict=True))
    table.write_text("a,b,y\n" + "".join(lines))
    code, out, err = run_cli(
        ["lr-find", "--data", f"table:{table}", "--target", "y", "--steps", "30"],
        capsys,
        words=True,
    )
    assert code == 0, err
    assert "range test: mlp on table:" in out
    assert "suggested lr" in out
