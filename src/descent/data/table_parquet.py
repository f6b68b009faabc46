"""Parquet tables: pyarrow reads the columns; descent checks their types and values, naming
the row and column of a missing or non-finite value."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from descent.data.table_common import Table, check_header, check_memory, split_columns
from descent.errors import InputError


def read_parquet_table(path: Path, target: str, dtype: np.dtype, memory_limit: int | None) -> Table:
    """The Parquet file's table: integer and float columns only, no missing values."""
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
    check_header(path, header, target)
    for field in schema:
        kind = field.type
        if not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
            raise InputError(
                f"{path}: column {field.name.strip()!r} holds {kind} values, not numbers"
            )
    rows = file.metadata.num_rows
    check_memory(path, rows, len(header), dtype, memory_limit, about=False)
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
    X, y = split_columns(values, header.index(target), dtype)
    features = tuple(name for name in header if name != target)
    return Table(X, y, features, target, str(path))
