"""Reading a table: descent's reader (pyarrow, then validation) beside pandas.read_csv, one run.

The same 200,000 × 51 numeric CSV (about 200 MB) is read by pandas.read_csv (C engine, the
peer) and by descent.data.tables.load_table (validation included: non-finite and empty cells,
the target split off); then the same table as Parquet. Target: ≤ 1.3× pandas.

    python benchmarks/tables.py [--rows 200000] [--columns 51]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np


def timed(function, repeats: int = 3) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from descent.data.tables import load_table

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--columns", type=int, default=51)
    args = parser.parse_args()
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"pandas {pd.__version__}, pyarrow {pa.__version__}"
    )
    rng = np.random.default_rng(0)
    values = rng.normal(size=(args.rows, args.columns))
    names = ["y"] + [f"x{j}" for j in range(args.columns - 1)]
    with tempfile.TemporaryDirectory() as folder:
        csv_path, parquet_path = Path(folder) / "t.csv", Path(folder) / "t.parquet"
        np.savetxt(
            csv_path, values, delimiter=",", header=",".join(names), comments="", fmt="%.17g"
        )
        pq.write_table(pa.table(dict(zip(names, values.T, strict=True))), parquet_path)
        size = csv_path.stat().st_size / 2**20
        pandas_s = timed(lambda: pd.read_csv(csv_path))
        ours_s = timed(lambda: load_table(csv_path, "y"))
        parquet_s = timed(lambda: load_table(parquet_path, "y"))
        peer_parquet_s = timed(lambda: pd.read_parquet(parquet_path))
    rows = args.rows
    print(f"\n{rows:,} × {args.columns} ({size:.0f} MB of CSV), best of 3")
    print(f"{'reader':40} {'s':>7} {'rows/s':>12} {'vs pandas':>10}")
    for label, seconds, peer in [
        ("pandas.read_csv (C engine)", pandas_s, pandas_s),
        ("descent load_table, CSV (validated)", ours_s, pandas_s),
        ("pandas.read_parquet", peer_parquet_s, peer_parquet_s),
        ("descent load_table, Parquet (validated)", parquet_s, peer_parquet_s),
    ]:
        print(f"{label:40} {seconds:7.3f} {rows / seconds:12,.0f} {seconds / peer:9.2f}×")
    print(f"target ≤ 1.3× pandas.read_csv: {ours_s <= 1.3 * pandas_s}")


if __name__ == "__main__":
    main()
