"""Image classification data: scikit-learn's bundled 8×8 digits (no download), and MNIST,
Fashion-MNIST (IDX files), CIFAR-10 (python batches) and a folder of image files (one subfolder
per class, :mod:`descent.data.folder`) read from a folder the user points to.

Every loader returns an :class:`ImageData` of float32 images scaled to [0, 1] in (N, C, H, W)
and int64 labels, split into train / validation / test.

Every file is checked as it is read, before any training: a truncated, corrupt or foreign file,
images and labels of different counts, labels outside the classes, test images of another size than
the training images each raise :class:`DataFileError`, one line naming the file and the problem.
CIFAR-10's batches are pickles; they are read by an unpickler that builds only what the format
holds (dicts, lists, strings, numbers and numpy arrays through numpy's own reconstructors) and
refuses any other Python object by name, so a crafted batch cannot run code.
"""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from descent.errors import InputError


class MissingDataError(FileNotFoundError):
    """A data set's files are not where the user said they are."""


class DataFileError(InputError):
    """A data file that is not what its format says: one line naming the file and the problem."""


@dataclass(frozen=True)
class Split:
    images: Tensor  # (N, C, H, W) float32 in [0, 1]
    labels: Tensor  # (N,) int64

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class ImageData:
    name: str
    train: Split
    validation: Split
    test: Split
    classes: tuple[str, ...]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.images.shape[1:])  # type: ignore[return-value]


def stratified_split(
    labels: np.ndarray, fractions: tuple[float, float], seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shuffled, stratified indices for train / validation / test (fractions of validation and
    test), so every class keeps its share in each part."""
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[], [], []]
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_val = round(len(members) * fractions[0])
        n_test = round(len(members) * fractions[1])
        parts[1] += members[:n_val].tolist()
        parts[2] += members[n_val : n_val + n_test].tolist()
        parts[0] += members[n_val + n_test :].tolist()
    return tuple(rng.permutation(np.array(p, dtype=np.int64)) for p in parts)  # type: ignore[return-value]


def _split(images: np.ndarray, labels: np.ndarray, index: np.ndarray) -> Split:
    return Split(torch.from_numpy(images[index]).float(), torch.from_numpy(labels[index]).long())


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as (1797, 64) pixel values 0–16 and int64 labels, read from the
    file scikit-learn ships (``sklearn/datasets/data/digits.csv.gz``, 64 pixels then the label
    per row) without importing scikit-learn, whose import (scipy, pandas) takes longer than a
    short training run; through ``load_digits`` where that file is not found."""
    import importlib.util

    spec = importlib.util.find_spec("sklearn")  # finds the package without running it
    if spec is not None and spec.origin is not None:
        path = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            with gzip.open(path, "rt") as text:
                table = np.loadtxt(text, delimiter=",")
            return table[:, :-1], table[:, -1].astype(np.int64)
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.data, bunch.target.astype(np.int64)


def digits(validation: float = 0.1, test: float = 0.2, seed: int = 0) -> ImageData:
    """scikit-learn's 1,797 digits of 8×8 pixels (values 0–16, scaled to [0, 1]). Rows are grouped
    by writer, so the split is shuffled and stratified (datasets.md)."""
    pixels, labels = digits_arrays()
    images = (pixels.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
    train, val, held_out = stratified_split(labels, (validation, test), seed)
    return ImageData(
        "digits",
        _split(images, labels, train),
        _split(images, labels, val),
        _split(images, labels, held_out),
        tuple(str(d) for d in range(10)),
    )


# -- IDX (MNIST, Fashion-MNIST) ----------------------------------------------------------------

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, or a DataFileError naming it and the system's reason."""
    try:
        return path.read_bytes()
    except OSError as error:
        raise DataFileError(f"{path}: cannot read the file ({error.strerror})") from None


def _read_maybe_gzip(path: Path) -> bytes:
    """The file's bytes, decompressed when it is gzip (by its magic bytes, whatever its name)."""
    raw = _read_bytes(path)
    if raw[:2] != b"\x1f\x8b":
        if path.suffix == ".gz":
            raise DataFileError(f"{path}: named .gz but not a gzip file")
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as error:
        raise DataFileError(
            f"{path}: a damaged or truncated gzip file ({' '.join(str(error).split())})"
        ) from None


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (optionally .gz): two zero bytes, a type byte (0x08 unsigned byte), the number
    of dimensions, each dimension as a big-endian int32, then the data row-major."""
    data = _read_maybe_gzip(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DataFileError(f"{path}: not an IDX file (it must start with two zero bytes)")
    if data[2] != 0x08:
        raise DataFileError(
            f"{path}: IDX type 0x{data[2]:02x} is not supported (0x08, unsigned byte)"
        )
    dims = data[3]
    header = 4 + 4 * dims
    if len(data) < header:
        raise DataFileError(f"{path}: truncated IDX header")
    shape = struct.unpack(">" + "I" * dims, data[4:header])
    expected = int(np.prod(shape))
    if len(data) - header != expected:
        raise DataFileError(
            f"{path}: the header promises {expected} bytes of data for shape {shape}, the file "
            f"has {len(data) - header}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def check_labels(labels: np.ndarray, classes: int, where: Any) -> np.ndarray:
    """Labels as int64 in 0 … classes − 1, or one line naming the file and the first bad one."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise DataFileError(
            f"{where}: labels must be one number per image, got shape {labels.shape}"
        )
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise DataFileError(f"{where}: labels must be integers, got {labels.dtype}")
    labels = labels.astype(np.int64)
    bad = np.flatnonzero((labels < 0) | (labels >= classes))
    if bad.size:
        raise DataFileError(
            f"{where}: label {int(labels[bad[0]])} at position {int(bad[0])} is outside the "
            f"{classes} classes (0 … {classes - 1}); {bad.size} such label(s)"
        )
    return labels


def check_same_size(train: np.ndarray, test: np.ndarray, where: Any) -> None:
    """Test images must have the training images' size (a model trained on one cannot read the
    other): checked when the data is read, not after training."""
    if train.shape[1:] != test.shape[1:]:
        raise DataFileError(
            f"{where}: test images are {'×'.join(map(str, test.shape[1:]))} but training images "
            f"are {'×'.join(map(str, train.shape[1:]))}; both parts must have one size"
        )


def _find(folder: Path, stem: str, name: str) -> Path:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    raise MissingDataError(
        f"{name}: {stem} (or {stem}.gz) is not in {folder}; put the four IDX files "
        f"({', '.join(IDX_FILES.values())}) there, e.g. from the data set's home page"
    )


def idx_dataset(
    folder: str | Path, name: str = "mnist", validation: float = 0.1, seed: int = 0
) -> ImageData:
    """MNIST or Fashion-MNIST from its four IDX files in ``folder`` (.gz or not). The validation
    part is a stratified share of the training files; the test files stay the test set."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MissingDataError(
            f"{name}: the folder {folder} does not exist; create it and put the four IDX files "
            f"({', '.join(IDX_FILES.values())}) in it"
        )
    paths = {key: _find(folder, stem, name) for key, stem in IDX_FILES.items()}
    arrays = {key: read_idx(path) for key, path in paths.items()}
    classes = FASHION_CLASSES if name == "fashion-mnist" else tuple(str(d) for d in range(10))
    for part in ("train", "test"):
        images, labels = arrays[f"{part}_images"], arrays[f"{part}_labels"]
        if images.ndim != 3:
            raise DataFileError(
                f"{paths[f'{part}_images']}: images must be 3-dimensional (count × height × "
                f"width), the file has shape {images.shape}"
            )
        if labels.ndim != 1:
            raise DataFileError(
                f"{paths[f'{part}_labels']}: labels must be 1-dimensional (one per image), the "
                f"file has shape {labels.shape}"
            )
        if len(images) != len(labels):
            raise DataFileError(
                f"{paths[f'{part}_images']}: {len(images)} {part} images but "
                f"{paths[f'{part}_labels'].name} has {len(labels)} labels"
            )
        arrays[f"{part}_labels"] = check_labels(labels, len(classes), paths[f"{part}_labels"])
    check_same_size(arrays["train_images"], arrays["test_images"], paths["test_images"])
    train_images = (arrays["train_images"].astype(np.float32) / 255.0)[:, None]
    train_labels = arrays["train_labels"]
    keep, val, _ = stratified_split(train_labels, (validation, 0.0), seed)
    test = Split(
        torch.from_numpy((arrays["test_images"].astype(np.float32) / 255.0)[:, None].copy()),
        torch.from_numpy(arrays["test_labels"].astype(np.int64)),
    )
    return ImageData(
        name,
        _split(train_images, train_labels, keep),
        _split(train_images, train_labels, val),
        test,
        classes,
    )


# -- CIFAR-10 ----------------------------------------------------------------------------------


#: The globals a CIFAR-10 batch may name: numpy's array and scalar reconstructors and the codec
#: Python uses for bytes in protocol-2 pickles. Containers, strings and numbers need no global.
_CIFAR_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _RefusedGlobal(pickle.UnpicklingError):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class _CifarUnpickler(pickle.Unpickler):
    """Builds dicts, lists, strings, numbers and numpy arrays; any other global is refused before
    it is looked up (nothing it names is imported or called)."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _CIFAR_GLOBALS:
            raise _RefusedGlobal(f"{module}.{name}")
        if module.startswith("numpy.core.") and hasattr(np, "_core"):
            module = "numpy._core." + module.removeprefix("numpy.core.")  # numpy 2's name
        return super().find_class(module, name)

    def persistent_load(self, pid: Any) -> Any:
        raise _RefusedGlobal(f"persistent id {pid!r}")


def _unpickle(path: Path) -> dict:
    """A CIFAR-10 python batch through the restricted unpickler: a dict with str keys."""
    raw_bytes = _read_bytes(path)
    try:
        raw = _CifarUnpickler(io.BytesIO(raw_bytes), encoding="latin1").load()
    except _RefusedGlobal as refused:
        raise DataFileError(
            f"{path}: refused: the file asks for the Python object {refused.name}, and a CIFAR-10 "
            "batch holds only dicts, lists, strings, numbers and numpy arrays"
        ) from None
    except Exception as error:  # truncated or random bytes fail in many ways; all say "corrupt"
        raise DataFileError(
            f"{path}: not a readable CIFAR-10 batch (a truncated or corrupt pickle: "
            f"{type(error).__name__}: {' '.join(str(error).split())[:200]})"
        ) from None
    if not isinstance(raw, dict):
        raise DataFileError(
            f"{path}: a CIFAR-10 batch is a dict with 'data' and 'labels', the file holds a "
            f"{type(raw).__name__}"
        )
    return {key.decode() if isinstance(key, bytes) else key: value for key, value in raw.items()}


def cifar10(folder: str | Path, validation: float = 0.1, seed: int = 0) -> ImageData:
    """CIFAR-10's python batches: ``cifar-10-batches-py`` (or the folder itself) holding
    data_batch_1 … data_batch_5, test_batch and batches.meta."""
    folder = Path(folder)
    if (folder / "cifar-10-batches-py").is_dir():
        folder = folder / "cifar-10-batches-py"
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise MissingDataError(
            f"cifar10: {', '.join(missing)} not found in {folder}; extract the python version "
            "(cifar-10-batches-py with data_batch_1 … data_batch_5 and test_batch) there"
        )

    def load(name: str) -> tuple[np.ndarray, np.ndarray]:
        path = folder / name
        batch = _unpickle(path)
        absent = [key for key in ("data", "labels") if key not in batch]
        if absent:
            raise DataFileError(
                f"{path}: a CIFAR-10 batch needs 'data' and 'labels', no {absent[0]!r}"
            )
        try:
            data = np.asarray(batch["data"], dtype=np.uint8)
            labels = np.asarray(batch["labels"])
        except (TypeError, ValueError) as error:
            raise DataFileError(f"{path}: 'data' or 'labels' is not numeric ({error})") from None
        if data.ndim != 2 or data.shape[1] != 3072:
            raise DataFileError(f"{path}: 'data' must be N × 3072, got {data.shape}")
        labels = check_labels(labels, 10, path)
        if len(labels) != len(data):
            raise DataFileError(f"{path}: {len(data)} images but {len(labels)} labels")
        # 3072 = the red, green, then blue planes of a 32×32 image
        return data.reshape(-1, 3, 32, 32).astype(np.float32) / 255.0, labels

    parts = [load(name) for name in names[:5]]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    keep, val, _ = stratified_split(labels, (validation, 0.0), seed)
    test_images, test_labels = load("test_batch")
    meta = folder / "batches.meta"
    classes = tuple(str(i) for i in range(10))
    if meta.is_file():
        names_given = _unpickle(meta).get("label_names")
        if not isinstance(names_given, list) or len(names_given) != 10:
            raise DataFileError(f"{meta}: 'label_names' must be a list of the 10 class names")
        classes = tuple(str(label) for label in names_given)
    return ImageData(
        "cifar10",
        _split(images, labels, keep),
        _split(images, labels, val),
        Split(torch.from_numpy(test_images), torch.from_numpy(test_labels)),
        classes,
    )


def load(spec: str, seed: int = 0) -> ImageData:
    """``digits``, ``mnist:DIR``, ``fashion-mnist:DIR``, ``cifar10:DIR`` or ``folder:DIR`` (one
    subfolder per class; ``folder:DIR@64`` or ``@64x48`` sets the size images are resized to)."""
    name, _, folder = spec.partition(":")
    if name == "digits":
        return digits(seed=seed)
    if name in ("mnist", "fashion-mnist", "cifar10", "folder") and not folder:
        raise InputError(f"{name} is read from a folder: use {name}:DIR")
    if name in ("mnist", "fashion-mnist"):
        return idx_dataset(folder, name, seed=seed)
    if name == "cifar10":
        return cifar10(folder, seed=seed)
    if name == "folder":
        from descent.data.folder import image_folder, parse_spec

        path, size = parse_spec(folder)
        return image_folder(path, size=size, seed=seed)
    from descent.data.tables import TABLE_PREFIX, looks_like_table

    accepted = "digits, mnist:DIR, fashion-mnist:DIR, cifar10:DIR, folder:DIR"
    if spec.startswith(TABLE_PREFIX):  # descent train reads it; what called here reads images
        raise InputError(f"data {spec!r} is a table, and this reads images: {accepted}")
    if looks_like_table(spec):
        raise InputError(f"data {spec!r} is a file: train on a table with data table:{spec}")
    raise InputError(
        f"unknown data {spec!r}; accepted: {accepted}, or table:FILE (a CSV or Parquet file to "
        "train on)"
    )
