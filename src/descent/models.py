"""Small models for the lecture's image classification, and the initialization schemes whose
effect on training it shows (a bad scale stalls learning)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


class SoftmaxRegression(nn.Module):
    """Multinomial logistic regression: logits = W x + b (softmax lives in the loss)."""

    def __init__(self, in_features: int, classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))


class MLP(nn.Module):
    """Fully connected layers with ReLU between them."""

    def __init__(
        self, in_features: int, classes: int, hidden: Sequence[int] = (100,), dropout: float = 0.0
    ) -> None:
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        layers: list[nn.Module] = []
        width = in_features
        for size in hidden:
            if size < 1:
                raise ValueError(f"hidden layer sizes must be ≥ 1, got {list(hidden)}")
            layers += [nn.Linear(width, size), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = size
        layers.append(nn.Linear(width, classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x.flatten(1))


class SmallCNN(nn.Module):
    """Two 3×3 convolutions with ReLU and 2×2 max-pooling, then a linear classifier.

    For (C, H, W) images: 8×8 digits, 28×28 MNIST, 3×32×32 CIFAR-10.
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        classes: int,
        channels: Sequence[int] = (32, 64),
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if len(image_shape) != 3:
            raise ValueError(f"image_shape must be (channels, height, width), got {image_shape!r}")
        in_channels, height, width = image_shape
        layers: list[nn.Module] = []
        for out_channels in channels:
            layers += [
                nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ]
            in_channels = out_channels
            height, width = height // 2, width // 2
        if height < 1 or width < 1:
            raise ValueError(
                f"images of shape {tuple(image_shape)} are too small for "
                f"{len(channels)} pooling layers"
            )
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.classifier = nn.Linear(in_channels * height * width, classes)
        self.image_shape = tuple(image_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(len(x), *self.image_shape)
        return self.classifier(self.dropout(self.features(x).flatten(1)))


INITIALIZATIONS = ("default", "zeros", "normal", "xavier", "kaiming")


def initialize(
    model: nn.Module,
    scheme: str = "default",
    std: float = 0.01,
    generator: torch.Generator | None = None,
) -> nn.Module:
    """Re-initialize every Linear and Conv2d layer in place.

    - "default": torch's own (Kaiming-uniform with a = √5).
    - "zeros": all weights and biases 0 (every unit of a layer stays identical: symmetry is
      never broken, the lecture's cautionary case).
    - "normal": N(0, std²) weights, zero biases (too small a std vanishes the signal).
    - "xavier": Glorot normal, for tanh/sigmoid layers.
    - "kaiming": He normal (fan_in, ReLU gain), for ReLU layers.
    """
    if scheme not in INITIALIZATIONS:
        raise ValueError(
            f"unknown initialization {scheme!r}; accepted: {', '.join(INITIALIZATIONS)}"
        )
    if scheme == "normal" and not (std > 0 and math.isfinite(std)):
        raise ValueError(f"the normal initialization needs std > 0, got {std!r}")
    for layer in model.modules():
        if not isinstance(layer, nn.Linear | nn.Conv2d):
            continue
        with torch.no_grad():
            if scheme == "default":
                layer.reset_parameters()
                continue
            if scheme == "zeros":
                layer.weight.zero_()
            elif scheme == "normal":
                layer.weight.normal_(0.0, std, generator=generator)
            elif scheme == "xavier":
                nn.init.xavier_normal_(layer.weight, generator=generator)
            else:
                nn.init.kaiming_normal_(layer.weight, nonlinearity="relu", generator=generator)
            if layer.bias is not None:
                layer.bias.zero_()
    return model


__all__ = ["INITIALIZATIONS", "MLP", "SmallCNN", "SoftmaxRegression", "initialize"]
