"""Numeric tables from CSV and Parquet files, with errors that name the file, the line and the
column, and the bundled scikit-learn regression data.

The bytes are parsed by pyarrow (its multithreaded CSV reader, and its Parquet reader); descent
then validates the resulting arrays, which costs one vectorized pass. pyarrow rather than pandas'
C engine: it is faster on the same file (it parses blocks on every core), it reads ``.csv.gz``,
``.csv.bz2`` and ``.csv.zst`` without another package, and Parquet needs it anyway.

When the arrays hold a problem (a missing, non-numeric or non-finite cell, a ragged row), the file
is read once more with Python's ``csv`` module up to that row, so the message names the line as a
person counts it in the file (the header is line 1, blank lines count) and the cell's text exactly.
That slower pass runs only for a file that is about to be refused.

This module is the front: :func:`load_table` and the split of a table for training. The readers
are :mod:`descent.data.table_csv` and :mod:`descent.data.table_parquet`, and what they share
(:class:`Table`, the header and memory checks) is :mod:`descent.data.table_common`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from descent import validate
from descent.data.table_common import (
    DTYPES,
    READ_OVERHEAD,
    Table,
    available_memory,
    format_bytes,
)
from descent.data.table_csv import CODECS, DELIMITERS, read_csv_table
from descent.data.table_parquet import read_parquet_table
from descent.errors import InputError


def load_table(
    path: str | Path,
    target: str,
    *,
    delimiter: str | None = None,
    dtype: str = "float64",
    memory_limit: int | None = None,
) -> Table:
    """Read a table with a header row; every column but ``target`` is a numeric feature.

    The format follows the name: ``.parquet``, else CSV (``.csv``, ``.tsv``, ``.txt``, and the
    compressed ``.csv.gz``, ``.csv.bz2``, ``.csv.zst``). A UTF-8 byte-order mark is skipped; the
    delimiter is the one given, else the one of ``, ; TAB |`` the header line uses most; quoted
    numbers are numbers; blank lines are skipped.

    Args:
        path: the file.
        target: the column to predict.
        delimiter: the CSV column separator (default: found from the header line).
        dtype: "float64" (default) or "float32", which halves the memory the table takes.
        memory_limit: refuse a table that needs more bytes than this to read (default: the
            memory the operating system reports available).

    Raises:
        FileNotFoundError: no such file.
        InputError: one sentence naming the file (and the line and column of a bad cell) for an
            empty file, a header with an empty or repeated column name, a missing target, no
            feature column, no data rows, a row with the wrong number of cells, an empty,
            non-numeric or non-finite cell, text that is not UTF-8, or a table larger than the
            memory it may take.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    dtype = validate.choice(dtype, "dtype", DTYPES)
    if delimiter is not None and (not isinstance(delimiter, str) or len(delimiter) != 1):
        raise InputError(f"delimiter must be a single character, got {delimiter!r}")
    if path.suffix.lower() == ".parquet":
        return read_parquet_table(path, target, np.dtype(dtype), memory_limit)
    return read_csv_table(path, target, delimiter, np.dtype(dtype), memory_limit)


def load_csv(path: str | Path, target: str, **options: Any) -> Table:
    """:func:`load_table` under the name it had when only CSV was read."""
    return load_table(path, target, **options)


def diabetes() -> Table:
    """scikit-learn's bundled diabetes data (442 × 10; the columns centred and scaled)."""
    from sklearn.datasets import load_diabetes

    bunch = load_diabetes()
    return Table(bunch.data, bunch.target, tuple(bunch.feature_names), "target", "diabetes")


# -- a table to train on ---------------------------------------------------------------------

#: The data spec of a table to train on: ``table:FILE`` (CSV or Parquet, read by load_table).
TABLE_PREFIX = "table:"
#: Rows a table needs to be split into train (70%), validation (10%) and test (20%) parts.
MIN_TRAINING_ROWS = 10


#: The suffixes of the files load_table reads (a compressed CSV ends in a codec's suffix).
TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".parquet", *CODECS)


def looks_like_table(name: str) -> bool:
    """Whether ``name`` ends as a file load_table reads does (for a hint, not a check)."""
    return Path(name).suffix.lower() in TABLE_SUFFIXES


def table_file(spec: str) -> Path | None:
    """The file of a ``table:FILE`` data spec, None for any other data."""
    if not spec.startswith(TABLE_PREFIX):
        return None
    path = spec[len(TABLE_PREFIX) :]
    if not path:
        raise InputError("table data is read from a file: use table:FILE (a CSV or Parquet file)")
    return Path(path)


@dataclass(frozen=True)
class TableData:
    """A table split for training: features (n, p) and targets, in train, validation and test
    parts (``.images`` of each part holds the rows: the Trainer reads every part alike).

    ``classes`` names the classes of a classification target (its distinct values, in order;
    the targets are their indices), None for regression. The training part's feature means and
    standard deviations (and the target's, for regression) are what a model standardizes by."""

    name: str
    train: Any
    validation: Any
    test: Any
    classes: tuple[str, ...] | None
    feature_names: tuple[str, ...]
    target_name: str
    feature_mean: np.ndarray
    feature_std: np.ndarray
    target_mean: float = 0.0
    target_std: float = 1.0
    image_shape: None = None  # rows are not images: no weight images are drawn


def table_data(
    path: str | Path,
    target: str,
    task: str,
    *,
    seed: int = 0,
    dtype: str = "float32",
    validation: float = 0.1,
    test: float = 0.2,
) -> TableData:
    """Read a table with :func:`load_table` and split its rows, shuffled from ``seed``, into
    train, validation and test parts (stratified by class for classification).

    For ``task="classification"`` the target holds class labels: whole numbers, each distinct
    value a class. Raises InputError for fewer than 10 rows or a label that is not a whole
    number, besides what load_table raises."""
    import torch

    from descent.data.images import Split, stratified_split

    table = load_table(path, target, dtype=dtype)
    rows = len(table.y)
    if rows < MIN_TRAINING_ROWS:
        raise InputError(
            f"{path}: {rows} data rows; training needs at least {MIN_TRAINING_ROWS} (split "
            "70% train, 10% validation, 20% test)"
        )
    classes: tuple[str, ...] | None = None
    if task == "classification":
        fractional = np.flatnonzero(table.y != np.round(table.y))
        if fractional.size:
            raise InputError(
                f"{path}, data row {fractional[0] + 1}, column {target!r}: "
                f"{table.y[fractional[0]]:g} is not a class label; classification needs whole "
                "numbers (regression takes any number: task regression)"
            )
        values, labels = np.unique(table.y, return_inverse=True)
        classes = tuple(f"{value:g}" for value in values)
        targets = torch.from_numpy(labels.astype(np.int64))
        train, val, held_out = stratified_split(labels, (validation, test), seed)
    else:
        targets = torch.from_numpy(table.y)
        order = np.random.default_rng(seed).permutation(rows)
        n_val, n_test = round(rows * validation), round(rows * test)
        val, held_out, train = order[:n_val], order[n_val : n_val + n_test], order[n_val + n_test :]
    features = torch.from_numpy(table.X)  # column-major as read; each part is gathered row-major

    def part(index: np.ndarray) -> Split:
        chosen = torch.from_numpy(np.sort(index))
        return Split(features[chosen], targets[chosen])

    train_rows = table.X[np.sort(train)]
    std = train_rows.std(axis=0, dtype=np.float64)
    train_targets = table.y[np.sort(train)]
    regression = classes is None
    return TableData(
        Path(path).name,
        part(train),
        part(val),
        part(held_out),
        classes,
        table.feature_names,
        table.target_name,
        train_rows.mean(axis=0, dtype=np.float64),
        np.where(std > 0, std, 1.0),  # a constant column is left as it is
        float(train_targets.mean(dtype=np.float64)) if regression else 0.0,
        float(train_targets.std(dtype=np.float64) or 1.0) if regression else 1.0,
    )


__all__ = [
    "CODECS",
    "DELIMITERS",
    "DTYPES",
    "MIN_TRAINING_ROWS",
    "READ_OVERHEAD",
    "TABLE_PREFIX",
    "Table",
    "TableData",
    "available_memory",
    "diabetes",
    "format_bytes",
    "load_csv",
    "load_table",
    "table_data",
    "table_file",
]
