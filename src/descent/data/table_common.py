"""What every table format shares: the :class:`Table` a reader returns, the header's checks,
the memory check made before a table is read, and the assembly of X and y from columns.

The readers themselves are :mod:`descent.data.table_csv` and :mod:`descent.data.table_parquet`;
:func:`descent.data.tables.load_table` picks one by the file's name.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from descent.errors import InputError

DTYPES = ("float64", "float32")
#: Reading holds pyarrow's columns and the numpy arrays built from them at once.
READ_OVERHEAD = 2.0


@dataclass(frozen=True)
class Table:
    """Features X (n, p), target y (n,), and the feature names."""

    X: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...]
    target_name: str
    source: str


def check_header(path: Path, header: Sequence[str], target: str) -> None:
    """Names present, unique, the target among them and at least one feature beside it."""
    seen: dict[str, int] = {}
    for number, name in enumerate(header, start=1):
        if not name:
            raise InputError(
                f"{path}: column {number} of the header has no name; every column needs one"
            )
        if name in seen:
            raise InputError(
                f"{path}: the header names column {name!r} twice (columns {seen[name]} and "
                f"{number}); column names must be unique"
            )
        seen[name] = number
    if target not in seen:
        raise InputError(
            f"{path}: no column named {target!r} for the target; columns: {', '.join(header)}"
        )
    if len(header) < 2:
        raise InputError(f"{path}: the target {target!r} is the only column; no features")


def available_memory() -> int:
    """Bytes the operating system says a new allocation can take (MemAvailable on Linux)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not a POSIX system: no limit known
        return 2**63


def check_memory(
    path: Path, rows: int, columns: int, dtype: np.dtype, limit: int | None, about: bool
) -> None:
    table_bytes = rows * columns * dtype.itemsize
    needed = int(READ_OVERHEAD * table_bytes)
    limit = available_memory() if limit is None else limit
    if needed > limit:
        hint = "; --dtype float32 halves it" if dtype == np.float64 else ""
        approx = "about " if about else ""
        raise InputError(
            f"{path}: the table is {approx}{rows:,} rows × {columns} columns, "
            f"{format_bytes(table_bytes)} as {dtype.name} and {format_bytes(needed)} to read, "
            f"more than the {format_bytes(limit)} of memory available{hint}"
        )


def format_bytes(count: float) -> str:
    """1536 → "1.5 KiB": a size as a person reads it."""
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


def split_columns(
    values: list[np.ndarray], target_index: int, dtype: np.dtype
) -> tuple[np.ndarray, np.ndarray]:
    """X (the other columns in header order, column-major) and y from per-column arrays."""
    features = [array for index, array in enumerate(values) if index != target_index]
    X = np.empty((len(values[0]), len(features)), dtype=dtype, order="F")
    for column, array in enumerate(features):
        X[:, column] = array
    return X, np.ascontiguousarray(values[target_index], dtype=dtype)
