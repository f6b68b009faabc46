"""Image classification data: scikit-learn's bundled 8×8 digits (no download), and MNIST,
Fashion-MNIST (IDX files) and CIFAR-10 (python batches) read from a folder the user points to.

Every loader returns an :class:`ImageData` of float32 images scaled to [0, 1] in (N, C, H, W)
and int64 labels, split into train / validation / test.
"""

from __future__ import annotations

import gzip
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor


class MissingDataError(FileNotFoundError):
    """A data set's files are not where the user said they are."""


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


def digits(validation: float = 0.1, test: float = 0.2, seed: int = 0) -> ImageData:
    """scikit-learn's 1,797 digits of 8×8 pixels (values 0–16, scaled to [0, 1]). Rows are grouped
    by writer, so the split is shuffled and stratified (datasets.md)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (bunch.images.astype(np.float32) / 16.0)[:, None, :, :]
    labels = bunch.target.astype(np.int64)
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


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (optionally .gz): two zero bytes, a type byte (0x08 unsigned byte), the number
    of dimensions, each dimension as a big-endian int32, then the data row-major."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:  # type: ignore[operator]
        data = handle.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path}: not an IDX file (it must start with two zero bytes)")
    if data[2] != 0x08:
        raise ValueError(f"{path}: IDX type 0x{data[2]:02x} is not supported (0x08, unsigned byte)")
    dims = data[3]
    header = 4 + 4 * dims
    if len(data) < header:
        raise ValueError(f"{path}: truncated IDX header")
    shape = struct.unpack(">" + "I" * dims, data[4:header])
    expected = int(np.prod(shape))
    if len(data) - header != expected:
        raise ValueError(
            f"{path}: the header promises {expected} bytes of data for shape {shape}, the file "
            f"has {len(data) - header}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


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
    arrays = {key: read_idx(_find(folder, stem, name)) for key, stem in IDX_FILES.items()}
    for part in ("train", "test"):
        if len(arrays[f"{part}_images"]) != len(arrays[f"{part}_labels"]):
            raise ValueError(
                f"{name}: {len(arrays[f'{part}_images'])} {part} images but "
                f"{len(arrays[f'{part}_labels'])} labels"
            )
    train_images = (arrays["train_images"].astype(np.float32) / 255.0)[:, None]
    train_labels = arrays["train_labels"].astype(np.int64)
    keep, val, _ = stratified_split(train_labels, (validation, 0.0), seed)
    test = Split(
        torch.from_numpy((arrays["test_images"].astype(np.float32) / 255.0)[:, None].copy()),
        torch.from_numpy(arrays["test_labels"].astype(np.int64)),
    )
    classes = FASHION_CLASSES if name == "fashion-mnist" else tuple(str(d) for d in range(10))
    return ImageData(
        name,
        _split(train_images, train_labels, keep),
        _split(train_images, train_labels, val),
        test,
        classes,
    )


# -- CIFAR-10 ----------------------------------------------------------------------------------


def _unpickle(path: Path) -> dict:
    with path.open("rb") as handle:
        raw = pickle.load(handle, encoding="latin1")
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
        batch = _unpickle(folder / name)
        data = np.asarray(batch["data"], dtype=np.uint8)
        if data.ndim != 2 or data.shape[1] != 3072:
            raise ValueError(f"{folder / name}: 'data' must be N × 3072, got {data.shape}")
        labels = np.asarray(batch["labels"], dtype=np.int64)
        # 3072 = the red, green, then blue planes of a 32×32 image
        return data.reshape(-1, 3, 32, 32).astype(np.float32) / 255.0, labels

    parts = [load(name) for name in names[:5]]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    keep, val, _ = stratified_split(labels, (validation, 0.0), seed)
    test_images, test_labels = load("test_batch")
    meta = folder / "batches.meta"
    classes = (
        tuple(_unpickle(meta)["label_names"])
        if meta.is_file()
        else tuple(str(i) for i in range(10))
    )
    return ImageData(
        "cifar10",
        _split(images, labels, keep),
        _split(images, labels, val),
        Split(torch.from_numpy(test_images), torch.from_numpy(test_labels)),
        classes,
    )


def load(spec: str, seed: int = 0) -> ImageData:
    """``digits``, ``mnist:DIR``, ``fashion-mnist:DIR`` or ``cifar10:DIR``."""
    name, _, folder = spec.partition(":")
    if name == "digits":
        return digits(seed=seed)
    if name in ("mnist", "fashion-mnist", "cifar10") and not folder:
        raise ValueError(f"{name} is read from a folder: use {name}:DIR")
    if name in ("mnist", "fashion-mnist"):
        return idx_dataset(folder, name, seed=seed)
    if name == "cifar10":
        return cifar10(folder, seed=seed)
    raise ValueError(
        f"unknown data {spec!r}; accepted: digits, mnist:DIR, fashion-mnist:DIR, cifar10:DIR"
    )
