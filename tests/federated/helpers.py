"""Small data and models shared by the federated tests (float64, a few dozen examples)."""

from __future__ import annotations

import torch

from descent.data.images import Split, digits


def tiny_digits(count: int = 240, seed: int = 0) -> tuple[Split, Split]:
    """The first ``count`` training digits and 200 test digits, in float64."""
    data = digits(seed=seed)
    train = Split(data.train.images[:count].double(), data.train.labels[:count])
    test = Split(data.test.images[:200].double(), data.test.labels[:200])
    return train, test


def seeded(model_factory, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return model_factory().double()
