"""The real readers on tiny files written in the exact formats (IDX, CIFAR-10 python batches)."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from descent.data.images import MissingDataError, cifar10, digits, idx_dataset, load, read_idx
from descent.errors import InputError


def write_idx(path: Path, array: np.ndarray, compress: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(">" + "I" * array.ndim, *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if compress:
        with gzip.open(str(path) + ".gz", "wb") as handle:
            handle.write(payload)
    else:
        path.write_bytes(payload)


def fake_mnist(folder: Path, compress: bool, n_train: int = 40, n_test: int = 10) -> dict:
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": np.arange(n_train) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": np.arange(n_test) % 10,
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        write_idx(folder / name, array, compress)
    return arrays


@pytest.mark.parametrize("compress", [False, True])
def test_idx_reader_round_trip(tmp_path: Path, compress: bool) -> None:
    arrays = fake_mnist(tmp_path, compress)
    data = idx_dataset(tmp_path, "fashion-mnist", validation=0.25)
    assert data.image_shape == (1, 28, 28)
    assert len(data.train) + len(data.validation) == 40
    assert len(data.validation) == 10  # stratified: one per class
    assert len(data.test) == 10
    expected = torch.from_numpy(arrays["t10k-images-idx3-ubyte"][3].astype(np.float32) / 255)
    torch.testing.assert_close(data.test.images[3, 0], expected)
    assert data.test.labels.tolist() == list(range(10))
    assert data.classes[9] == "Ankle boot"
    assert float(data.train.images.min()) >= 0.0
    assert float(data.train.images.max()) <= 1.0


def test_idx_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x01\x02\x08\x01")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(bad)
    truncated = tmp_path / "short"
    truncated.write_bytes(bytes([0, 0, 8, 1]) + struct.pack(">I", 10) + b"\x00" * 3)
    with pytest.raises(ValueError, match="promises 10 bytes"):
        read_idx(truncated)
    with pytest.raises(MissingDataError, match="does not exist; create it and put the four IDX"):
        idx_dataset(tmp_path / "absent")
    (tmp_path / "partial").mkdir()
    with pytest.raises(MissingDataError, match=r"train-images-idx3-ubyte \(or .*gz\) is not in"):
        idx_dataset(tmp_path / "partial")


def fake_cifar(folder: Path, per_batch: int = 20) -> None:
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {
            b"data": rng.integers(0, 256, (per_batch, 3072)).astype(np.uint8),
            b"labels": [i % 10 for i in range(per_batch)],
        }
        with (folder / name).open("wb") as handle:
            pickle.dump(batch, handle)
    with (folder / "batches.meta").open("wb") as handle:
        pickle.dump(
            {
                b"label_names": [
                    "airplane",
                    "automobile",
                    "bird",
                    "cat",
                    "deer",
                    "dog",
                    "frog",
                    "horse",
                    "ship",
                    "truck",
                ]
            },
            handle,
        )


def test_cifar_reader(tmp_path: Path) -> None:
    fake_cifar(tmp_path / "cifar-10-batches-py")
    data = cifar10(tmp_path)
    assert data.image_shape == (3, 32, 32)
    assert len(data.train) + len(data.validation) == 100
    assert len(data.test) == 20
    assert data.classes[0] == "airplane"
    with (tmp_path / "cifar-10-batches-py" / "test_batch").open("rb") as handle:
        raw = pickle.load(handle, encoding="latin1")
    first = torch.from_numpy(raw[b"data"][0].reshape(3, 32, 32).astype(np.float32) / 255)
    torch.testing.assert_close(data.test.images[0], first)  # red, green, blue planes


def test_cifar_missing_files(tmp_path: Path) -> None:
    with pytest.raises(MissingDataError, match=r"data_batch_1.*not found"):
        cifar10(tmp_path)


def test_digits_split_is_stratified_and_seeded() -> None:
    data = digits(seed=3)
    assert len(data.train) + len(data.validation) + len(data.test) == 1797
    counts = torch.bincount(data.test.labels, minlength=10)
    assert int(counts.min()) >= 34  # every class keeps its share (about 36 each)
    again = digits(seed=3)
    assert torch.equal(again.train.labels, data.train.labels)


def test_the_digits_read_without_scikit_learn_equal_load_digits() -> None:
    from sklearn.datasets import load_digits

    from descent.data.images import digits_arrays

    pixels, labels = digits_arrays()
    bunch = load_digits()
    assert np.array_equal(pixels, bunch.data)
    assert np.array_equal(labels, bunch.target)
    assert labels.dtype == np.int64


def test_a_table_given_where_images_are_read_is_named() -> None:
    with pytest.raises(InputError, match=r"data 'table:t\.csv' is a table, and this reads images"):
        load("table:t.csv")
    with pytest.raises(InputError, match=r"train on a table with data table:t\.csv"):
        load("t.csv")
