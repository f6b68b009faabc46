"""`descent regress`: tables of every kind through the one reader, batch-mode names, and the
faults a user can cause answered in one line."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from tests.cli_support import refusal, run_cli


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    # the table's title wraps at the console's width: compare words, not line breaks
    return run_cli(["regress", *args], capsys, words=True)


def line_data(rows: int = 40) -> str:
    x = np.linspace(-1, 1, rows)
    return "".join(f"{a:.6f};{2 * a + 1 + 0.01 * np.sin(7 * a):.6f}\n" for a in x)


def test_semicolons_bom_and_float32(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "semi.csv"
    path.write_bytes(b"\xef\xbb\xbfx;y\n" + line_data().encode())
    code, out, _ = run([str(path), "--target", "y", "--dtype", "float32"], capsys)
    assert code == 0
    assert "(40 × 1)" in out


def test_parquet_and_an_explicit_delimiter(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    x = np.linspace(0, 1, 30)
    pq.write_table(pa.table({"x": x, "y": 3 * x}), tmp_path / "t.parquet")
    code, out, _ = run([str(tmp_path / "t.parquet"), "--target", "y"], capsys)
    assert code == 0
    assert "t.parquet (30 × 1)" in out
    (tmp_path / "pipes.txt").write_text("x|y\n" + line_data().replace(";", "|"))
    code, out, _ = run([str(tmp_path / "pipes.txt"), "--target", "y", "--delimiter", "|"], capsys)
    assert code == 0


@pytest.mark.parametrize(("given", "shown"), [("sgd", "single"), ("single", "single")])
def test_mode_names(
    given: str, shown: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "d.csv"
    path.write_text("x;y\n" + line_data())
    code, out, _ = run([str(path), "--target", "y", "--mode", given, "--epochs", "3"], capsys)
    assert code == 0
    assert f"mode {shown}" in out


def test_one_row_prints_no_r2_warning(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "one.csv"
    path.write_text("x,y\n1,2\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # sklearn's "R^2 score is not well-defined" would raise
        code, out, err = run([str(path), "--target", "y"], capsys)
    assert code == 0
    assert "undefined (one row)" in out
    assert "not well-defined" not in out + err


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        (b"x,y,y\n1,2,3\n", [], "names column 'y' twice (columns 2 and 3)"),
        (b"x,y\n1,2\ncaf\xe9,3\n", [], "the file is not UTF-8 text"),
        (b"x,y\n1,2\n2,3\n3,5\n", ["--lr", "100"], "diverged in epoch"),
        (b"x,y\n1,2\n2,3\n3,5\n", ["--basis", "poly:200000000"], "functions, more than"),
        (b"x,y\n1,2\n2,3\n3,5\n", ["--mode", "online"], "--mode must be one of"),
        (b"x,y\n1,2\n2,3\n3,5\n", ["--dtype", "int8"], "dtype must be one of"),
    ],
)
def test_faults_are_one_line_exit_2(
    content: bytes,
    args: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    assert message in refusal(["regress", str(path), "--target", "y", *args], capsys)


@pytest.mark.parametrize(
    ("lr", "shown"), [("auto", "/ (1 + t/"), ("constant", "(constant)"), ("0.001", "lr 0.001")]
)
def test_the_stochastic_rate_is_shown(
    lr: str, shown: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(["--mode", "single", "--epochs", "2", "--lr", lr], capsys)
    assert code == 0
    assert shown in out
