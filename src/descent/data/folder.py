"""A folder of image files, one subfolder per class (the common "ImageFolder" layout), read with
Pillow (no torchvision, which would pull another torch build)::

    DIR/cat/001.png  DIR/cat/002.jpg  …  DIR/dog/001.png  …

or, with a fixed test set, ``DIR/train/CLASS/…`` and ``DIR/test/CLASS/…`` (the same classes).
Class names are the subfolder names in sorted order (label 0 is the first). Every image is
resized to ``size`` (height, width; bilinear) and scaled to [0, 1]; grayscale images ("1", "L",
"LA") give one channel, colour images ("RGB", "RGBA", "P") three; a folder that mixes them is read
as colour. Alpha is dropped. Any other mode (CMYK, 16-bit or float pixels, …) is refused, like a
file that is not an image: one line naming the file.

Without ``train/`` and ``test/`` the images are split as the digits are: shuffled and stratified,
``validation`` and ``test`` shares of each class. Everything is read into memory.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from descent.data.images import (
    DataFileError,
    ImageData,
    MissingDataError,
    Split,
    _split,
    stratified_split,
)
from descent.errors import InputError

GRAY_MODES = ("1", "L", "LA")
COLOUR_MODES = ("RGB", "RGBA", "P")
DEFAULT_SIZE = (32, 32)


def parse_spec(text: str) -> tuple[Path, tuple[int, int]]:
    """``DIR``, ``DIR@64`` (64×64) or ``DIR@64x48`` (height 64, width 48)."""
    match = re.fullmatch(r"(.*)@(\d+)(?:x(\d+))?", text)
    if match is None:
        return Path(text), DEFAULT_SIZE
    height = int(match.group(2))
    width = int(match.group(3) or height)
    if height < 1 or width < 1:
        raise InputError(f"folder:{text}: the image size must be at least 1×1")
    return Path(match.group(1)), (height, width)


def _class_folders(folder: Path) -> list[Path]:
    classes = sorted(child for child in folder.iterdir() if child.is_dir())
    if not classes:
        raise MissingDataError(
            f"{folder}: no class subfolders; put the images of each class in a subfolder named "
            "after it (DIR/cat/1.png, DIR/dog/1.png, …)"
        )
    return classes


def _read_image(path: Path, size: tuple[int, int]) -> np.ndarray:
    """One image as (H, W, channels) float32 in [0, 1], channels 1 (gray) or 3 (colour)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            if mode in GRAY_MODES:
                converted = image.convert("L")
            elif mode in COLOUR_MODES:
                converted = image.convert("RGB")
            else:
                raise DataFileError(
                    f"{path}: image mode {mode!r} is not supported; accepted: "
                    f"{', '.join(GRAY_MODES + COLOUR_MODES)} (grayscale or colour, 8 bits)"
                )
            resized = converted.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    except UnidentifiedImageError:
        raise DataFileError(f"{path}: not an image Pillow can read") from None
    except Image.DecompressionBombError as error:
        raise DataFileError(f"{path}: refused: {' '.join(str(error).split())}") from None
    except (OSError, ValueError, SyntaxError) as error:  # truncated or damaged image data
        raise DataFileError(f"{path}: a damaged image ({' '.join(str(error).split())})") from None
    pixels = np.asarray(resized, dtype=np.float32) / 255.0
    return pixels[:, :, None] if pixels.ndim == 2 else pixels


def _read_part(
    folder: Path, classes: list[str], size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    images: list[np.ndarray] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        subfolder = folder / name
        if not subfolder.is_dir():
            raise MissingDataError(f"{subfolder}: no such class folder (the classes: {classes})")
        files = sorted(path for path in subfolder.iterdir() if path.is_file())
        files = [path for path in files if not path.name.startswith(".")]
        if not files:
            raise MissingDataError(f"{subfolder}: the class folder holds no image")
        for path in files:
            images.append(_read_image(path, size))
            labels.append(label)
    colour = any(image.shape[2] == 3 for image in images)
    if colour:
        images = [np.repeat(i, 3, axis=2) if i.shape[2] == 1 else i for i in images]
    stacked = np.stack(images).transpose(0, 3, 1, 2).copy()  # (N, C, H, W)
    return stacked, np.array(labels, dtype=np.int64)


def image_folder(
    folder: str | Path,
    *,
    size: tuple[int, int] = DEFAULT_SIZE,
    validation: float = 0.1,
    test: float = 0.2,
    seed: int = 0,
) -> ImageData:
    """Images in one subfolder per class (or ``train/`` and ``test/`` of those), resized to
    ``size`` (height, width) and scaled to [0, 1]."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MissingDataError(
            f"{folder}: no such folder; put the images there, one subfolder per class"
        )
    if (folder / "train").is_dir() and (folder / "test").is_dir():
        classes = [path.name for path in _class_folders(folder / "train")]
        test_classes = [path.name for path in _class_folders(folder / "test")]
        if test_classes != classes:
            raise DataFileError(
                f"{folder / 'test'}: the test classes {test_classes} differ from the training "
                f"classes {classes}"
            )
        images, labels = _read_part(folder / "train", classes, size)
        test_images, test_labels = _read_part(folder / "test", classes, size)
        if test_images.shape[1] != images.shape[1]:  # one part gray, the other colour
            if images.shape[1] == 1:
                images = np.repeat(images, 3, axis=1)
            else:
                test_images = np.repeat(test_images, 3, axis=1)
        keep, val, _ = stratified_split(labels, (validation, 0.0), seed)
        return ImageData(
            folder.name,
            _split(images, labels, keep),
            _split(images, labels, val),
            Split(torch.from_numpy(test_images), torch.from_numpy(test_labels)),
            tuple(classes),
        )
    classes = [path.name for path in _class_folders(folder)]
    images, labels = _read_part(folder, classes, size)
    train, val, held_out = stratified_split(labels, (validation, test), seed)
    return ImageData(
        folder.name,
        _split(images, labels, train),
        _split(images, labels, val),
        _split(images, labels, held_out),
        tuple(classes),
    )


__all__ = ["image_folder", "parse_spec"]
