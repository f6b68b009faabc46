"""CSV reading: the real loader on small files the tests write; errors name row and column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from descent.data.tables import diabetes, load_csv


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "data.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_reads_features_and_target(tmp_path: Path) -> None:
    table = load_csv(write(tmp_path, "a, y ,b\n1,2,3\n\n4,5.5,-6e-1\n"), "y")
    np.testing.assert_array_equal(table.X, [[1.0, 3.0], [4.0, -0.6]])
    np.testing.assert_array_equal(table.y, [2.0, 5.5])
    assert table.feature_names == ("a", "b")


@pytest.mark.parametrize(
    ("text", "target", "message"),
    [
        ("", "y", "the file is empty"),
        ("x,y\n", "y", "no data rows"),
        ("x,y\n1,2\n", "z", "no column named 'z' for the target; columns: x, y"),
        ("y\n1\n", "y", "the only column"),
        ("x,y\n1,2\n3,abc\n", "y", "line 3, column 'y': 'abc' is not a number"),
        ("x,y\n1,2\n,4\n", "y", "line 3, column 'x': empty cell"),
        ("x,y\n1,2\nnan,4\n", "y", "line 3, column 'x': 'nan' is not a finite number"),
        ("x,y\n1,2\n3,inf\n", "y", "line 3, column 'y': 'inf' is not a finite number"),
        ("x,y\n1,2,3\n", "y", "line 2: 3 cells, the header has 2"),
    ],
)
def test_bad_files_name_the_line_and_column(
    tmp_path: Path, text: str, target: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        load_csv(write(tmp_path, text), target)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_csv(tmp_path / "absent.csv", "y")


def test_bundled_diabetes() -> None:
    table = diabetes()
    assert table.X.shape == (442, 10)
    assert len(table.feature_names) == 10
