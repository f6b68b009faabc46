"""CSV reading: the real loader on small files the tests write; errors name row and column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from descent.data.tables import diabetes, load_csv, load_table
from descent.errors import InputError


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


# -- the formats and spellings real files come in ------------------------------------------------


def test_byte_order_mark_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbfy,a\n1,2\n3,4\n")
    table = load_csv(path, "y")
    np.testing.assert_array_equal(table.y, [1.0, 3.0])
    assert table.feature_names == ("a",)


@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
def test_other_delimiters_are_found_from_the_header(tmp_path: Path, delimiter: str) -> None:
    table = load_csv(write(tmp_path, f"a{delimiter}y\n1{delimiter}2\n3{delimiter}4\n"), "y")
    np.testing.assert_array_equal(table.X, [[1.0], [3.0]])


def test_a_given_delimiter_wins(tmp_path: Path) -> None:
    # the header alone would suggest ","; the caller knows better
    table = load_table(write(tmp_path, "a,b;y\n1;2\n"), "y", delimiter=";")
    assert table.feature_names == ("a,b",)
    with pytest.raises(InputError, match="delimiter must be a single character"):
        load_table(write(tmp_path, "a;y\n1;2\n"), "y", delimiter=";;")


def test_quoted_numbers_and_a_trailing_blank_line(tmp_path: Path) -> None:
    table = load_csv(write(tmp_path, 'x,"y"\n"1.5", 2\n3,"-4e1"\n\n'), "y")
    np.testing.assert_array_equal(table.X, [[1.5], [3.0]])
    np.testing.assert_array_equal(table.y, [2.0, -40.0])


def test_a_row_of_empty_cells_is_a_blank_line(tmp_path: Path) -> None:
    table = load_csv(write(tmp_path, "x,y\n1,2\n,\n3,4\n"), "y")
    np.testing.assert_array_equal(table.y, [2.0, 4.0])
    # a line of spaces only: pyarrow refuses it, the reference reader skips it
    table = load_csv(write(tmp_path, "x,y\n1,2\n   \n3,4\n"), "y")
    np.testing.assert_array_equal(table.y, [2.0, 4.0])


def test_lines_are_counted_as_a_person_counts_them(tmp_path: Path) -> None:
    """Blank lines and a BOM shift nothing; the line of the bad cell is the one an editor shows."""
    path = tmp_path / "gaps.csv"
    path.write_bytes(b"\xef\xbb\xbfx,y\n1,2\n\n\n3,4\n5,oops\n")
    with pytest.raises(InputError, match=r"line 6, column 'y': 'oops' is not a number"):
        load_csv(path, "y")


def test_a_bad_cell_far_down_a_large_file(tmp_path: Path) -> None:
    rows = [f"{i},{2 * i}" for i in range(20_000)]
    rows[15_000] = "15000,inf"
    path = write(tmp_path, "x,y\n" + "\n".join(rows) + "\n")
    with pytest.raises(InputError, match=r"line 15002, column 'y': 'inf' is not a finite number"):
        load_csv(path, "y")


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("a,y,y", r"names column 'y' twice \(columns 2 and 3\)"),
        ("a,b,a,y", r"names column 'a' twice \(columns 1 and 3\)"),
        ("a,,y", "column 2 of the header has no name"),
    ],
)
def test_duplicate_or_empty_column_names_are_refused(
    tmp_path: Path, header: str, message: str
) -> None:
    cells = ",".join(["1"] * len(header.split(",")))
    with pytest.raises(InputError, match=message):
        load_csv(write(tmp_path, f"{header}\n{cells}\n"), "y")


@pytest.mark.parametrize("extension", [".csv.gz", ".csv.bz2", ".csv.zst"])
def test_compressed_csv_round_trip(tmp_path: Path, extension: str) -> None:
    import pyarrow as pa

    codec = {".csv.gz": "gzip", ".csv.bz2": "bz2", ".csv.zst": "zstd"}[extension]
    text = "a,y\n" + "".join(f"{i},{i / 4}\n" for i in range(300))
    path = tmp_path / f"data{extension}"
    with pa.output_stream(str(path), compression=codec) as stream:
        stream.write(text.encode())
    table = load_csv(path, "y")
    np.testing.assert_array_equal(table.y, np.arange(300) / 4)
    with pa.output_stream(str(path), compression=codec) as stream:
        stream.write(b"a,y\n1,2\n2,x\n")
    with pytest.raises(InputError, match=r"line 3, column 'y': 'x' is not a number"):
        load_csv(path, "y")


def test_parquet_round_trip_and_its_errors(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "data.parquet"
    pq.write_table(pa.table({"a": [1, 2, 3], "y": [0.5, 1.5, 2.5], "b": [4.0, 5.0, 6.0]}), path)
    table = load_table(path, "y")
    np.testing.assert_array_equal(table.X, [[1, 4], [2, 5], [3, 6]])
    np.testing.assert_array_equal(table.y, [0.5, 1.5, 2.5])
    assert table.feature_names == ("a", "b")

    pq.write_table(pa.table({"a": [1.0, None], "y": [1.0, 2.0]}), path)
    with pytest.raises(InputError, match=r"row 2, column 'a': missing value"):
        load_table(path, "y")
    pq.write_table(pa.table({"a": [1.0, float("nan")], "y": [1.0, 2.0]}), path)
    with pytest.raises(InputError, match=r"row 2, column 'a': nan is not a finite number"):
        load_table(path, "y")
    pq.write_table(pa.table({"a": ["p", "q"], "y": [1.0, 2.0]}), path)
    with pytest.raises(InputError, match="column 'a' holds string values, not numbers"):
        load_table(path, "y")
    pq.write_table(pa.table({"a": [1.0], "y": [1.0]}), path)
    with pytest.raises(InputError, match="no column named 'z'"):
        load_table(path, "z")
    path.write_bytes(b"not parquet at all")
    with pytest.raises(InputError, match="not a readable Parquet file"):
        load_table(path, "y")


def test_non_utf8_text_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes("x,y\n1,2\ncafé,3\n".encode("latin-1"))
    with pytest.raises(InputError, match=r"latin1.csv: the file is not UTF-8 text \(byte 0xe9"):
        load_csv(path, "y")
    path.write_bytes("é,y\n1,2\n".encode("latin-1"))
    with pytest.raises(InputError, match=r"latin1\.csv: the file is not UTF-8 text"):
        load_csv(path, "y")


def test_a_table_larger_than_the_memory_limit_is_refused_with_its_size(tmp_path: Path) -> None:
    path = write(tmp_path, "a,b,y\n" + "1,2,3\n" * 1000)
    message = r"about 1,000 rows × 3 columns, 23.4 KiB as float64 .* --dtype float32 halves it"
    with pytest.raises(InputError, match=message):
        load_table(path, "y", memory_limit=10_000)
    # float32 halves the table: 11.7 KiB, 23.4 KiB to read
    with pytest.raises(InputError, match=r"11.7 KiB as float32"):
        load_table(path, "y", dtype="float32", memory_limit=10_000)
    assert load_table(path, "y", dtype="float32", memory_limit=30_000).X.dtype == np.float32


def test_float32_tables(tmp_path: Path) -> None:
    table = load_table(write(tmp_path, "a,y\n0.1,2\n"), "y", dtype="float32")
    assert table.X.dtype == table.y.dtype == np.float32
    assert table.X[0, 0] == np.float32(0.1)
    with pytest.raises(InputError, match=r"'1e39' is beyond float32's range"):
        load_table(write(tmp_path, "a,y\n1e39,2\n"), "y", dtype="float32")
    with pytest.raises(InputError, match="dtype must be one of float64, float32"):
        load_table(write(tmp_path, "a,y\n1,2\n"), "y", dtype="int8")


def test_the_same_numbers_as_pandas(tmp_path: Path) -> None:
    pandas = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    values = rng.normal(size=(500, 4)) * 10.0 ** rng.integers(-5, 5, size=(500, 4))
    path = tmp_path / "random.csv"
    np.savetxt(path, values, delimiter=",", header="a,b,y,c", comments="", fmt="%.17g")
    table = load_csv(path, "y")
    frame = pandas.read_csv(path)
    np.testing.assert_array_equal(table.X, frame[["a", "b", "c"]].to_numpy())
    np.testing.assert_array_equal(table.y, frame["y"].to_numpy())


def test_a_table_split_for_training_is_seeded_disjoint_and_standardized_by_its_train_rows(
    tmp_path: Path,
) -> None:
    from descent.data.tables import table_data

    rng = np.random.default_rng(0)
    values = np.c_[rng.normal(5, 3, 50), rng.normal(-2, 0.5, 50), np.full(50, 7.0)]
    target = values @ np.array([1.0, 2.0, 0.0]) + 100
    path = tmp_path / "t.csv"
    np.savetxt(path, np.c_[values, target], delimiter=",", header="a,b,c,y", comments="")
    data = table_data(path, "y", "regression", seed=4, dtype="float64")
    parts = (data.train, data.validation, data.test)
    assert [len(part) for part in parts] == [35, 5, 10]  # 70 / 10 / 20 %
    rows = np.concatenate([part.images.numpy() for part in parts])
    assert sorted(map(tuple, rows)) == sorted(map(tuple, values))  # disjoint, all rows
    train = data.train.images.numpy()
    assert np.allclose(data.feature_mean, train.mean(axis=0))
    assert np.allclose(data.feature_std[:2], train.std(axis=0)[:2])
    assert data.feature_std[2] == 1.0  # a constant column is left as it is
    assert data.target_mean == pytest.approx(data.train.labels.numpy().mean())
    assert data.classes is None
    again = table_data(path, "y", "regression", seed=4, dtype="float64")
    assert np.array_equal(again.test.images.numpy(), data.test.images.numpy())
    other = table_data(path, "y", "regression", seed=5, dtype="float64")
    assert not np.array_equal(other.test.images.numpy(), data.test.images.numpy())


def test_a_classification_table_maps_labels_to_classes_and_stratifies(tmp_path: Path) -> None:
    from descent.data.tables import table_data

    labels = np.array([3, 7, 9] * 20, dtype=float)
    path = tmp_path / "c.csv"
    np.savetxt(path, np.c_[np.arange(60.0), labels], delimiter=",", header="x,k", comments="")
    data = table_data(path, "k", "classification", seed=0)
    assert data.classes == ("3", "7", "9")
    for part, share in ((data.train, 14), (data.validation, 2), (data.test, 4)):
        assert np.bincount(part.labels.numpy()).tolist() == [share] * 3  # every class its share
    assert data.train.labels.dtype.is_floating_point is False
