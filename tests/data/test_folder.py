"""The image-folder reader (``--data folder:DIR``) on small folders of PNG files the test writes:
labels from the sorted subfolders, resizing, scaling to [0, 1], gray and colour, bad files
reported by path (issue 18)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from descent.data.folder import image_folder, parse_spec
from descent.data.images import DataFileError, MissingDataError, load


def write_png(path: Path, pixels: np.ndarray, mode: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.astype(np.uint8), mode=mode).save(path)


def two_classes(root: Path, per_class: int = 10, size: int = 12) -> Path:
    """Class 'bright' holds light gray squares, class 'dark' dark ones."""
    rng = np.random.default_rng(0)
    for index in range(per_class):
        write_png(root / "dark" / f"{index}.png", rng.integers(0, 60, (size, size)))
        write_png(root / "bright" / f"{index}.png", rng.integers(200, 256, (size, size)))
    return root


def test_reads_two_classes_resizes_and_scales(tmp_path: Path) -> None:
    root = two_classes(tmp_path / "set")
    data = image_folder(root, size=(8, 6), validation=0.2, test=0.2, seed=1)
    assert data.classes == ("bright", "dark")  # sorted subfolder names are the labels
    assert data.image_shape == (1, 8, 6)
    assert len(data.train) + len(data.validation) + len(data.test) == 20
    assert len(data.test) == 4  # stratified: two per class
    images = data.train.images
    assert float(images.min()) >= 0.0
    assert float(images.max()) <= 1.0
    bright = images[data.train.labels == 0].mean()
    dark = images[data.train.labels == 1].mean()
    assert float(bright) > 0.75
    assert float(dark) < 0.25


def test_the_pixels_are_pillows_resize_scaled_to_unit_interval(tmp_path: Path) -> None:
    pixels = np.arange(16 * 16 * 3).reshape(16, 16, 3) % 256
    write_png(tmp_path / "set" / "only" / "a.png", pixels)
    data = image_folder(tmp_path / "set", size=(4, 4), validation=0.0, test=0.0)
    expected = np.asarray(
        Image.fromarray(pixels.astype(np.uint8)).resize((4, 4), Image.Resampling.BILINEAR),
        dtype=np.float32,
    )
    np.testing.assert_allclose(data.train.images[0].numpy(), expected.transpose(2, 0, 1) / 255)


def test_gray_and_colour_mixed_read_as_colour_and_train_test_folders(tmp_path: Path) -> None:
    root = tmp_path / "set"
    write_png(root / "train" / "a" / "1.png", np.full((5, 5), 10))
    write_png(root / "train" / "b" / "1.png", np.full((5, 5, 3), 200))
    write_png(root / "test" / "a" / "1.png", np.full((5, 5), 10))
    write_png(root / "test" / "b" / "1.png", np.full((5, 5), 200))
    data = image_folder(root, size=(5, 5), validation=0.0)
    assert data.image_shape == (3, 5, 5)
    assert tuple(data.test.images.shape) == (2, 3, 5, 5)
    assert data.test.labels.tolist() == [0, 1]


def test_the_data_spec(tmp_path: Path) -> None:
    root = two_classes(tmp_path / "set")
    assert parse_spec(f"{root}@16x8") == (root, (16, 8))
    assert parse_spec(str(root)) == (root, (32, 32))
    data = load(f"folder:{root}@10")
    assert data.image_shape == (1, 10, 10)


def test_a_file_that_is_not_an_image_is_named(tmp_path: Path) -> None:
    root = two_classes(tmp_path / "set")
    bad = root / "dark" / "notes.png"
    bad.write_text("not an image at all")
    with pytest.raises(DataFileError, match=rf"{bad}: not an image Pillow can read"):
        image_folder(root)


def test_an_image_of_an_unsupported_mode_is_named(tmp_path: Path) -> None:
    root = two_classes(tmp_path / "set")
    bad = root / "bright" / "deep.png"
    Image.fromarray(np.full((6, 6), 40000, dtype=np.uint16)).save(bad)  # 16-bit gray
    with pytest.raises(DataFileError, match=rf"{bad}: image mode 'I;16' is not supported"):
        image_folder(root)


def test_a_truncated_image_is_named(tmp_path: Path) -> None:
    root = two_classes(tmp_path / "set", size=64)
    bad = root / "dark" / "0.png"
    bad.write_bytes(bad.read_bytes()[:200])
    with pytest.raises(DataFileError, match=rf"{bad}: "):
        image_folder(root)


def test_missing_folders(tmp_path: Path) -> None:
    with pytest.raises(MissingDataError, match="no such folder"):
        image_folder(tmp_path / "absent")
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "a.png").write_bytes(b"")
    with pytest.raises(MissingDataError, match="no class subfolders"):
        image_folder(tmp_path / "flat")
