"""TensorBoard helpers: image grids of first-layer weights (and, later, HParams done right)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor


def image_grid(
    weight: Tensor, image_shape: Sequence[int] | None = None, padding: int = 1
) -> Tensor | None:
    """A (3, H, W) grid in [0, 1] with one tile per unit of a first layer, or None when the weights
    are not images.

    Conv2d weights (out, in, kh, kw) give one tile per filter (RGB when in = 3, else the mean over
    input channels). Linear weights (out, in) give one tile per unit when ``in`` is an image
    (``image_shape`` (C, H, W), or a square number of pixels). Each tile is scaled to its own
    [min, max], so structure shows whatever the weights' scale: smooth, clean, diverse features
    versus noise, as the lecture asks a person to look for.
    """
    if weight.dim() == 4:
        tiles = weight if weight.shape[1] == 3 else weight.mean(dim=1, keepdim=True)
    elif weight.dim() == 2:
        features = weight.shape[1]
        if image_shape is not None and math.prod(image_shape) == features:
            tiles = weight.reshape(weight.shape[0], *image_shape)
            if tiles.shape[1] not in (1, 3):
                tiles = tiles.mean(dim=1, keepdim=True)
        elif math.isqrt(features) ** 2 == features:
            side = math.isqrt(features)
            tiles = weight.reshape(weight.shape[0], 1, side, side)
        else:
            return None
    else:
        return None
    count, channels, height, width = tiles.shape
    low = tiles.amin(dim=(1, 2, 3), keepdim=True)
    high = tiles.amax(dim=(1, 2, 3), keepdim=True)
    tiles = (tiles - low) / (high - low).clamp_min(1e-12)
    if channels == 1:
        tiles = tiles.expand(count, 3, height, width)
    columns = math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    grid = torch.zeros(
        3, rows * (height + padding) + padding, columns * (width + padding) + padding
    )
    for index in range(count):
        row, column = divmod(index, columns)
        top = padding + row * (height + padding)
        left = padding + column * (width + padding)
        grid[:, top : top + height, left : left + width] = tiles[index]
    return grid
