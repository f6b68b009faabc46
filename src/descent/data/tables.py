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
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from descent import validate
from descent.errors import InputError

#: Column separators tried when none is given: the one the header line uses most wins.
DELIMITERS = (",", ";", "\t", "|")
#: Compressed CSV by the last suffix, as pyarrow names the codec.
CODECS = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd", ".lz4": "lz4"}
DTYPES = ("float64", "float32")
#: Reading holds pyarrow's columns and the numpy arrays built from them at once.
READ_OVERHEAD = 2.0
_SAMPLE_BYTES = 1 << 20
#: Bytes of CSV each of pyarrow's parsing tasks takes: 4 MiB rather than its 1 MiB default, so a
#: 200 MB file makes 50 column chunks instead of 200 (each chunk is one copy call per column into
#: the result) and the threads still share the work.
_BLOCK_BYTES = 4 << 20


@dataclass(frozen=True)
class Table:
    """Features X (n, p), target y (n,), and the feature names."""

    X: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...]
    target_name: str
    source: str


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
        return _load_parquet(path, target, np.dtype(dtype), memory_limit)
    return _load_csv(path, target, delimiter, np.dtype(dtype), memory_limit)


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


# -- the header and the checks every format shares ---------------------------------------------


def _check_header(path: Path, header: Sequence[str], target: str) -> None:
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


def _check_memory(
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


def _split(
    values: list[np.ndarray], target_index: int, dtype: np.dtype
) -> tuple[np.ndarray, np.ndarray]:
    """X (the other columns in header order, column-major) and y from per-column arrays."""
    features = [array for index, array in enumerate(values) if index != target_index]
    X = np.empty((len(values[0]), len(features)), dtype=dtype, order="F")
    for column, array in enumerate(features):
        X[:, column] = array
    return X, np.ascontiguousarray(values[target_index], dtype=dtype)


# -- CSV ----------------------------------------------------------------------------------------


def _open_text(path: Path) -> io.TextIOWrapper:
    """The file as text: decompressed by its suffix, UTF-8 with an optional byte-order mark."""
    import pyarrow as pa

    codec = CODECS.get(path.suffix.lower())
    raw: Any = pa.input_stream(str(path), compression=codec) if codec else open(path, "rb")  # noqa: SIM115
    return io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")


def _not_utf8(path: Path, error: UnicodeDecodeError) -> InputError:
    return InputError(
        f"{path}: the file is not UTF-8 text (byte 0x{error.object[error.start]:02x} cannot be "
        f"decoded); save it as UTF-8"
    )


def _read_head(path: Path, delimiter: str | None) -> tuple[list[str], str, str]:
    """The header cells, the delimiter, and a sample of the text after the header (for the size
    estimate): at most about a MiB is read."""
    try:
        with _open_text(path) as text:
            first = text.readline()
            sample = text.read(_SAMPLE_BYTES)
    except UnicodeDecodeError as error:
        raise _not_utf8(path, error) from None
    except OSError as error:  # a damaged compressed file
        raise InputError(f"{path}: cannot be read as {_format(path)}: {error}") from None
    if delimiter is None:
        counts = {candidate: first.count(candidate) for candidate in DELIMITERS}
        delimiter = max(DELIMITERS, key=lambda candidate: counts[candidate])  # ties: ","
        if counts[delimiter] == 0:
            delimiter = ","
    cells = next(csv.reader([first], delimiter=delimiter), [])
    return [cell.strip() for cell in cells], delimiter, sample


def _format(path: Path) -> str:
    codec = CODECS.get(path.suffix.lower())
    return f"{codec}-compressed CSV" if codec else "CSV"


def _uncompressed_size(path: Path) -> int:
    """Bytes of text in the file: its size, or for a compressed file its size times the ratio
    measured on the first MiB."""
    size = path.stat().st_size
    codec = CODECS.get(path.suffix.lower())
    if codec is None:
        return size
    import pyarrow as pa

    with pa.OSFile(str(path)) as raw, pa.CompressedInputStream(raw, codec) as stream:
        produced = len(stream.read(_SAMPLE_BYTES))
        consumed = max(raw.tell(), 1)
    return size if produced < _SAMPLE_BYTES else int(size * produced / consumed)


def _load_csv(
    path: Path, target: str, delimiter: str | None, dtype: np.dtype, memory_limit: int | None
) -> Table:
    header, delimiter, sample = _read_head(path, delimiter)
    if not any(header):
        raise InputError(f"{path}: the file is empty (expected a header row and data rows)")
    _check_header(path, header, target)
    lines = sample.count("\n")
    if lines:
        line_bytes = len(sample.encode("utf-8")) / lines
        rows = max(1, round(_uncompressed_size(path) / line_bytes) - 1)  # less the header
        _check_memory(path, rows, len(header), dtype, memory_limit, about=True)

    target_index = header.index(target)
    parsed = _parse_with_arrow(path, header, delimiter, dtype)
    if parsed is None:  # pyarrow refused a row: Python's reader finds it and says why
        X, y = _split(_scan(path, header, delimiter, dtype, check_from=0), target_index, dtype)
    else:
        X, y, empty = _arrays(parsed, target_index, dtype)
        first_bad = _first_bad_row(X, y, empty)
        if first_bad is not None:
            _scan(path, header, delimiter, dtype, check_from=first_bad)
            # Python's reader found nothing wrong where pyarrow did (a row only of separators and
            # spaces, say): its reading of the whole file is the reference.
            columns = _scan(path, header, delimiter, dtype, check_from=0)
            X, y = _split(columns, target_index, dtype)
    if not len(y):
        raise InputError(f"{path}: the header is there but no data rows follow")
    features = tuple(name for name in header if name != target)
    return Table(X, y, features, target, str(path))


def _parse_with_arrow(path: Path, header: Sequence[str], delimiter: str, dtype: np.dtype) -> Any:
    """The pyarrow table of the data rows (an empty cell is null), or None when pyarrow cannot
    parse a row or convert a cell to a number."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    names = [f"c{index}" for index in range(len(header))]  # unique whatever the header says
    arrow_type = pa.float32() if dtype == np.float32 else pa.float64()
    try:
        return pa_csv.read_csv(
            str(path),
            read_options=pa_csv.ReadOptions(
                skip_rows=1, column_names=names, block_size=_BLOCK_BYTES
            ),
            parse_options=pa_csv.ParseOptions(delimiter=delimiter),
            convert_options=pa_csv.ConvertOptions(
                column_types=dict.fromkeys(names, arrow_type),
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None


def _arrays(
    table: Any, target_index: int, dtype: np.dtype
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """X and y copied chunk by chunk from pyarrow's columns (one copy of the data), and the rows
    with an empty cell (None: there are none). Rows whose every cell is empty (",,") are dropped,
    as blank lines are."""
    rows, columns = table.num_rows, table.num_columns
    X = np.empty((rows, columns - 1), dtype=dtype, order="F")
    y = np.empty(rows, dtype=dtype)
    empty_cells = (
        np.zeros(rows, dtype=np.intp) if any(c.null_count for c in table.columns) else None
    )
    feature = 0
    for index, column in enumerate(table.columns):
        out = y if index == target_index else X[:, feature]
        feature += index != target_index
        start = 0
        for chunk in column.chunks:
            out[start : start + len(chunk)] = chunk.to_numpy(zero_copy_only=False)
            start += len(chunk)
        if empty_cells is not None and column.null_count:
            empty_cells += column.is_null().to_numpy(zero_copy_only=False)
    if empty_cells is None:
        return X, y, None
    blank = empty_cells == columns
    if blank.any():
        keep = ~blank
        X, y, empty_cells = np.asfortranarray(X[keep]), y[keep], empty_cells[keep]
    return X, y, empty_cells > 0


def _first_bad_row(X: np.ndarray, y: np.ndarray, empty: np.ndarray | None) -> int | None:
    """Index (among data rows) of the first row with an empty or non-finite cell, else None."""
    bad = ~np.isfinite(y)
    if not np.isfinite(X).all():
        bad |= ~np.isfinite(X).all(axis=1)
    if empty is not None:
        bad |= empty
    hits = np.flatnonzero(bad)
    return int(hits[0]) if len(hits) else None


def _scan(
    path: Path, header: Sequence[str], delimiter: str, dtype: np.dtype, check_from: int
) -> list[np.ndarray]:
    """Python's csv reader, row by row: the reference for what a valid file is and the source of
    the exact messages. Rows before data row ``check_from`` are only counted and their lengths
    checked (pyarrow has parsed them); from it on each cell is checked. With ``check_from=0``
    it returns the columns of a valid file; otherwise an empty list."""
    limit = float(np.finfo(dtype).max)
    collected: list[list[float]] | None = [] if check_from == 0 else None
    data_row = 0
    try:
        with _open_text(path) as text:
            reader = csv.reader(text, delimiter=delimiter)
            next(reader, None)  # the header
            for row in _numbered(reader):
                line, cells = row
                if not any(cell.strip() for cell in cells):
                    continue
                if len(cells) != len(header):
                    raise InputError(
                        f"{path}, line {line}: {len(cells)} cells, the header has {len(header)}"
                    )
                if data_row >= check_from:
                    numbers = [
                        _number(path, line, name, cell, limit)
                        for name, cell in zip(header, cells, strict=True)
                    ]
                    if collected is not None:
                        collected.append(numbers)
                data_row += 1
    except UnicodeDecodeError as error:
        raise _not_utf8(path, error) from None
    if collected is None:
        return []
    if not collected:
        return [np.empty(0, dtype=dtype) for _ in header]
    return list(np.asarray(collected, dtype=dtype).T)


def _numbered(reader: Any) -> Iterator[tuple[int, list[str]]]:
    """(line number as a person counts it, cells): the line where each record starts."""
    start = reader.line_num + 1
    for cells in reader:
        yield start, cells
        start = reader.line_num + 1


def _number(path: Path, line: int, name: str, cell: str, limit: float) -> float:
    text = cell.strip()
    if not text:
        raise InputError(f"{path}, line {line}, column {name!r}: empty cell")
    try:
        number = float(text)
    except ValueError:
        raise InputError(
            f"{path}, line {line}, column {name!r}: {text!r} is not a number"
        ) from None
    if not math.isfinite(number):
        raise InputError(f"{path}, line {line}, column {name!r}: {text!r} is not a finite number")
    if abs(number) > limit:
        raise InputError(
            f"{path}, line {line}, column {name!r}: {text!r} is beyond float32's range; "
            "read the table as float64"
        )
    return number


# -- Parquet --------------------------------------------------------------------------------------


def _load_parquet(path: Path, target: str, dtype: np.dtype, memory_limit: int | None) -> Table:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        file = pq.ParquetFile(str(path))
    except (pa.ArrowInvalid, OSError) as error:
        raise InputError(f"{path}: not a readable Parquet file ({error})") from None
    schema = file.schema_arrow
    header = [name.strip() for name in schema.names]
    if not header:
        raise InputError(f"{path}: the file is empty (expected a table with columns)")
    _check_header(path, header, target)
    for field in schema:
        kind = field.type
        if not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
            raise InputError(
                f"{path}: column {field.name.strip()!r} holds {kind} values, not numbers"
            )
    rows = file.metadata.num_rows
    _check_memory(path, rows, len(header), dtype, memory_limit, about=False)
    if rows == 0:
        raise InputError(f"{path}: the header is there but no data rows follow")
    table = file.read()
    values = []
    for name, column in zip(header, table.columns, strict=True):
        if column.null_count:
            row = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0]) + 1
            raise InputError(f"{path}, row {row}, column {name!r}: missing value")
        array = column.to_numpy().astype(dtype, copy=False)
        finite = np.isfinite(array)
        if not finite.all():
            row = int(np.flatnonzero(~finite)[0])
            original = column[row].as_py()
            reason = (
                "is beyond float32's range; read the table as float64"
                if math.isfinite(original)
                else "is not a finite number"
            )
            raise InputError(f"{path}, row {row + 1}, column {name!r}: {original!r} {reason}")
        values.append(array)
    X, y = _split(values, header.index(target), dtype)
    features = tuple(name for name in header if name != target)
    return Table(X, y, features, target, str(path))


__all__ = [
    "DELIMITERS",
    "DTYPES",
    "MIN_TRAINING_ROWS",
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
