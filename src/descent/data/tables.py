"""Numeric tables from CSV files, with errors that name the row and column, and the bundled
scikit-learn regression data."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Table:
    """Features X (n, p), target y (n,), and the feature names."""

    X: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...]
    target_name: str
    source: str


def load_csv(path: str | Path, target: str) -> Table:
    """Read a CSV with a header row; every other column is a numeric feature.

    Raises ValueError naming the file, the line and the column for: a missing or empty file, no
    header, a missing target column, a row with the wrong number of cells, an empty or
    non-numeric cell, and NaN or infinite values.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise ValueError(f"{path}: the file is empty (expected a header row and data rows)")
    header = [name.strip() for name in rows[0]]
    if target not in header:
        raise ValueError(
            f"{path}: no column named {target!r} for the target; columns: {', '.join(header)}"
        )
    if len(header) < 2:
        raise ValueError(f"{path}: the target {target!r} is the only column; no features")
    data = [row for row in rows[1:] if any(cell.strip() for cell in row)]
    if not data:
        raise ValueError(f"{path}: the header is there but no data rows follow")
    values = np.empty((len(data), len(header)), dtype=np.float64)
    filled = 0
    for line, row in enumerate(rows[1:], start=2):  # 1-based, the header is line 1
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise ValueError(f"{path}, line {line}: {len(row)} cells, the header has {len(header)}")
        for column, (name, cell) in enumerate(zip(header, row, strict=True)):
            text = cell.strip()
            if not text:
                raise ValueError(f"{path}, line {line}, column {name!r}: empty cell")
            try:
                number = float(text)
            except ValueError:
                raise ValueError(
                    f"{path}, line {line}, column {name!r}: {text!r} is not a number"
                ) from None
            if not math.isfinite(number):
                raise ValueError(
                    f"{path}, line {line}, column {name!r}: {text!r} is not a finite number"
                )
            values[filled, column] = number
        filled += 1
    target_index = header.index(target)
    features = [name for name in header if name != target]
    X = np.delete(values, target_index, axis=1)
    return Table(X, values[:, target_index], tuple(features), target, str(path))


def diabetes() -> Table:
    """scikit-learn's bundled diabetes data (442 × 10; the columns centred and scaled)."""
    from sklearn.datasets import load_diabetes

    bunch = load_diabetes()
    return Table(bunch.data, bunch.target, tuple(bunch.feature_names), "target", "diabetes")
