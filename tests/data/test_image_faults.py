"""Every image reader checks its files when it reads them: truncated, random, foreign and crafted
files, misaligned images and labels, labels outside the classes, test images of another size
(issue 10 rows 6, 7, 8, 26; issue 20's restricted CIFAR unpickler)."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from descent.data.images import DataFileError, cifar10, idx_dataset, load, read_idx
from descent.errors import InputError
from tests.cli_support import refusal
from tests.crafted import WritesMarker


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> Path:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(">" + "I" * array.ndim, *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if compress:
        path = Path(str(path) + ".gz")
        path.write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)
    return path


def mnist(folder: Path, **replace: np.ndarray) -> Path:
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (40, 28, 28)),
        "train-labels-idx1-ubyte": np.arange(40) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (10, 28, 28)),
        "t10k-labels-idx1-ubyte": np.arange(10) % 10,
    }
    arrays.update({key.replace("_", "-"): value for key, value in replace.items()})
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        write_idx(folder / name, array)
    return folder


def one_line_error(call: object, *args: object, match: str) -> str:
    with pytest.raises(InputError, match=match) as error:
        call(*args)  # type: ignore[operator]
    message = str(error.value)
    assert "\n" not in message
    return message


# -- IDX -----------------------------------------------------------------------------------------


def test_a_gz_file_that_is_not_gzip(tmp_path: Path) -> None:
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(b"\x00\x00\x08\x01" + struct.pack(">I", 2) + b"ab")
    one_line_error(read_idx, path, match=r"train-images-idx3-ubyte.gz: named .gz but not a gzip")


def test_a_truncated_gzip_file(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "x", np.zeros((50, 28, 28)), compress=True)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    one_line_error(read_idx, path, match=r"x.gz: a damaged or truncated gzip file")


def test_random_bytes_as_idx(tmp_path: Path) -> None:
    path = tmp_path / "random"
    path.write_bytes(os.urandom(3000))
    one_line_error(read_idx, path, match=r"random: ")


def test_a_one_dimensional_image_file(tmp_path: Path) -> None:
    folder = mnist(tmp_path / "m", train_images_idx3_ubyte=np.zeros(40))
    one_line_error(
        idx_dataset, folder, match=r"train-images-idx3-ubyte: images must be 3-dimensional"
    )


def test_idx_images_and_labels_of_different_counts(tmp_path: Path) -> None:
    folder = mnist(tmp_path / "m", t10k_labels_idx1_ubyte=np.arange(7) % 10)
    one_line_error(idx_dataset, folder, match=r"10 test images but t10k-labels-idx1-ubyte has 7")


def test_idx_labels_out_of_range_are_refused_at_load_time(tmp_path: Path) -> None:
    labels = np.arange(40) % 10
    labels[13] = 200
    folder = mnist(tmp_path / "m", train_labels_idx1_ubyte=labels)
    one_line_error(
        idx_dataset,
        folder,
        match=r"train-labels-idx1-ubyte: label 200 at position 13 is outside the 10 classes",
    )


def test_test_images_of_another_size_are_refused_before_training(tmp_path: Path) -> None:
    folder = mnist(tmp_path / "m", t10k_images_idx3_ubyte=np.zeros((10, 20, 20)))
    one_line_error(
        idx_dataset, folder, match=r"t10k-images-idx3-ubyte: test images are 20×20 but training"
    )


# -- CIFAR-10 ------------------------------------------------------------------------------------


def cifar(folder: Path, per_batch: int = 20) -> Path:
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True, exist_ok=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {
            b"data": rng.integers(0, 256, (per_batch, 3072)).astype(np.uint8),
            b"labels": [i % 10 for i in range(per_batch)],
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    return folder


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_the_restricted_unpickler_reads_real_batches(tmp_path: Path, protocol: int) -> None:
    folder = cifar(tmp_path / "c")
    batch = {b"data": np.arange(2 * 3072).reshape(2, 3072) % 256, b"labels": [np.int64(3), 4]}
    batch[b"data"] = batch[b"data"].astype(np.uint8)
    (folder / "data_batch_3").write_bytes(pickle.dumps(batch, protocol=protocol))
    data = cifar10(folder, validation=0.0)
    assert len(data.train) == 4 * 20 + 2


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "not a readable CIFAR-10 batch"),
        (os.urandom(5000), "not a readable CIFAR-10 batch"),
        ("truncated", "not a readable CIFAR-10 batch"),
        (pickle.dumps([1, 2, 3]), "the file holds a list"),
        (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8)}), "no 'labels'"),
        (pickle.dumps({b"data": np.zeros((100, 3072), np.uint8), b"labels": [0] * 50}),
         "100 images but 50 labels"),
        (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 99]}),
         "label 99 at position 1 is outside the 10 classes"),
        (pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}),
         "'data' must be N × 3072"),
    ],
)  # fmt: skip
def test_bad_cifar_batches_are_one_line_naming_the_file(
    tmp_path: Path, content: bytes | str, message: str
) -> None:
    folder = cifar(tmp_path / "c")
    target = folder / "data_batch_2"
    if content == "truncated":
        content = target.read_bytes()[:5000]
    target.write_bytes(content)  # type: ignore[arg-type]
    text = one_line_error(cifar10, folder, match=message)
    assert str(target) in text


def test_a_crafted_cifar_batch_is_refused_and_runs_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = cifar(tmp_path / "c")
    marker = tmp_path / "marker"
    crafted = folder / "data_batch_1"
    crafted.write_bytes(pickle.dumps({b"data": WritesMarker(marker), b"labels": [0]}))
    # refusal: exit status 2 and one line on stderr
    err = refusal(
        ["train", "--data", f"cifar10:{folder}", "--quiet", "--logdir", str(tmp_path / "r")], capsys
    )
    assert str(crafted) in err
    assert "builtins.exec" in err
    assert not marker.exists()
    with crafted.open("rb") as handle:  # the file really is hostile: pickle.load runs it
        pickle.load(handle)
    assert marker.exists()


def test_load_names_every_kind() -> None:
    with pytest.raises(InputError, match="unknown data 'imagenet'") as error:
        load("imagenet")
    assert "folder:DIR" in str(error.value)
    with pytest.raises(InputError, match="use folder:DIR"):
        load("folder")
    with pytest.raises(InputError, match="use mnist:DIR"):
        load("mnist")


def test_a_data_file_error_is_bad_input() -> None:
    assert issubclass(DataFileError, InputError)


def test_a_file_that_cannot_be_read_is_one_line_naming_it(tmp_path: Path) -> None:
    """IDX and CIFAR files are read by one helper: the path and the system's reason, one line."""
    unreadable = tmp_path / "train-images-idx3-ubyte"
    unreadable.mkdir()  # reading a folder fails as an unreadable file does, even for root
    one_line_error(read_idx, unreadable, match=r"train-images-idx3-ubyte: cannot read the file \(")
    # cifar10 checks its batches are files first, so its reader is called on a folder directly
    from descent.data.images import _unpickle

    one_line_error(_unpickle, unreadable, match=r"train-images-idx3-ubyte: cannot read the file")
