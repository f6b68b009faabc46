"""CSV tables: pyarrow's multithreaded reader first, Python's ``csv`` module for the messages.

pyarrow parses the bytes (on every core, ``.csv.gz``, ``.csv.bz2`` and ``.csv.zst`` without
another package); descent then validates the arrays in one vectorized pass. When they hold a
problem, :func:`_scan` reads the file once more with Python's reader up to that row, so the
message names the line as a person counts it and the cell's text exactly.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from descent.data.table_common import Table, check_header, check_memory, split_columns
from descent.errors import InputError

#: Column separators tried when none is given: the one the header line uses most wins.
DELIMITERS = (",", ";", "\t", "|")
#: Compressed CSV by the last suffix, as pyarrow names the codec.
CODECS = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd", ".lz4": "lz4"}
_SAMPLE_BYTES = 1 << 20
#: Bytes of CSV each of pyarrow's parsing tasks takes: 4 MiB rather than its 1 MiB default, so a
#: 200 MB file makes 50 column chunks instead of 200 (each chunk is one copy call per column into
#: the result) and the threads still share the work.
_BLOCK_BYTES = 4 << 20


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


def read_csv_table(
    path: Path, target: str, delimiter: str | None, dtype: np.dtype, memory_limit: int | None
) -> Table:
    """The CSV file's table (see :func:`descent.data.tables.load_table` for what is refused)."""
    header, delimiter, sample = _read_head(path, delimiter)
    if not any(header):
        raise InputError(f"{path}: the file is empty (expected a header row and data rows)")
    check_header(path, header, target)
    lines = sample.count("\n")
    if lines:
        line_bytes = len(sample.encode("utf-8")) / lines
        rows = max(1, round(_uncompressed_size(path) / line_bytes) - 1)  # less the header
        check_memory(path, rows, len(header), dtype, memory_limit, about=True)

    target_index = header.index(target)
    parsed = _parse_with_arrow(path, header, delimiter, dtype)
    if parsed is None:  # pyarrow refused a row: Python's reader finds it and says why
        X, y = split_columns(
            _scan(path, header, delimiter, dtype, check_from=0), target_index, dtype
        )
    else:
        X, y, empty = _arrays(parsed, target_index, dtype)
        first_bad = _first_bad_row(X, y, empty)
        if first_bad is not None:
            _scan(path, header, delimiter, dtype, check_from=first_bad)
            # Python's reader found nothing wrong where pyarrow did (a row only of separators and
            # spaces, say): its reading of the whole file is the reference.
            columns = _scan(path, header, delimiter, dtype, check_from=0)
            X, y = split_columns(columns, target_index, dtype)
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
