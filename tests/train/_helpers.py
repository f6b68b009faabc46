"""Small data and models the Trainer tests share (importable by their subprocesses too)."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import Dataset


def blobs(n: int = 130, features: int = 6, classes: int = 3, seed: int = 0) -> tuple:
    """A small classification set: class-dependent means plus noise."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (n,), generator=generator)
    centers = torch.randn(classes, features, generator=generator) * 2
    inputs = centers[labels] + torch.randn(n, features, generator=generator)
    return inputs, labels


class PairDataset(Dataset):
    """A map-style Dataset of (input, target) pairs, one example at a time, as users write them."""

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        self.inputs, self.targets = inputs, targets

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.inputs[index], self.targets[index]


def small_mlp(
    features: int = 6, classes: int = 3, dropout: float = 0.0, seed: int = 0
) -> nn.Module:
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Linear(features, 16), nn.Tanh()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(16, classes))
    return nn.Sequential(*layers)
