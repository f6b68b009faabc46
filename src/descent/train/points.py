"""Schedule-Free's two points, as the Trainer sees them.

A Schedule-Free optimizer (descent's, or the schedulefree package's) trains at a point y and keeps
an average x, which is the model to evaluate and save; ``optimizer.train()`` and ``.eval()`` move
the weights between the two, and every parameter group says which is loaded in ``train_mode``.
For any other optimizer every function here does nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


def switches_points(optimizer: torch.optim.Optimizer) -> bool:
    """Whether ``optimizer`` keeps a training point and an average: it has ``train()`` and
    ``eval()``, and ``train_mode`` in every parameter group."""
    return callable(getattr(optimizer, "eval", None)) and all(
        "train_mode" in group for group in optimizer.param_groups
    )


def set_point(optimizer: torch.optim.Optimizer, train: bool) -> None:
    """Load the training point (``train``) or the average into the model's weights."""
    if switches_points(optimizer):
        optimizer.train() if train else optimizer.eval()  # type: ignore[attr-defined]


@contextmanager
def at_average(optimizer: torch.optim.Optimizer) -> Iterator[None]:
    """Evaluate and checkpoint at the average x, train at y: a Schedule-Free optimizer is put
    in eval mode for the block and back after it (a no-op for other rules, and when it is
    already in eval mode). Every checkpoint holds the average, so a resumed run, which loads
    it and switches back, repeats the uninterrupted run's round trip bit for bit."""
    training = switches_points(optimizer) and all(
        group["train_mode"] for group in optimizer.param_groups
    )
    if training:
        optimizer.eval()  # type: ignore[attr-defined]
    try:
        yield
    finally:
        if training:
            optimizer.train()  # type: ignore[attr-defined]
