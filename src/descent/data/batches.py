"""The three batch modes of the lecture as one reusable, resumable iterator.

Gradient descent, stochastic gradient descent and mini-batch gradient descent differ only in
which examples form the batch behind a gradient: all n, one, or B (the lecture uses 50). For the
last two the order is reshuffled every epoch from a seeded generator; the last partial batch is
kept, so every example is seen exactly once per epoch.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

import torch

BatchMode = Literal["full", "sgd", "minibatch"]
MODES: tuple[str, ...] = ("full", "sgd", "minibatch")


class Batches:
    """Index batches over ``n`` examples: ``for indices in batches.epoch(): ...``.

    Args:
        n: number of examples.
        mode: "full" (one batch of all n, in order), "sgd" (n batches of one example) or
            "minibatch" (batches of ``batch_size``, the last one possibly smaller).
        batch_size: B for "minibatch" (default 50, the lecture's).
        shuffle: reshuffle at every epoch ("sgd" and "minibatch"; "full" never shuffles since
            the order of a sum does not change its value beyond rounding).
        seed: seeds the generator; the same seed gives the same order of every epoch.
    """

    def __init__(
        self,
        n: int,
        mode: BatchMode = "full",
        batch_size: int = 50,
        *,
        shuffle: bool = True,
        seed: int | None = 0,
    ) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
            raise ValueError(f"the number of examples must be a positive integer, got {n!r}")
        if mode not in MODES:
            raise ValueError(f"batch mode must be one of {', '.join(MODES)}, got {mode!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.n = n
        self.mode = mode
        self.batch_size = {"full": n, "sgd": 1, "minibatch": min(batch_size, n)}[mode]
        self.shuffle = shuffle and mode != "full"
        self.generator = torch.Generator()
        self.generator.manual_seed(seed if seed is not None else torch.seed())
        self.epochs_done = 0

    def __len__(self) -> int:
        """Batches per epoch."""
        return -(-self.n // self.batch_size)

    def epoch(self) -> Iterator[torch.Tensor]:
        """The index batches of the next epoch (drawing its order advances the generator)."""
        if self.shuffle:
            order = torch.randperm(self.n, generator=self.generator)
        else:
            order = torch.arange(self.n)
        self.epochs_done += 1
        return iter(order.split(self.batch_size))

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue with the same order: generator state and epoch count."""
        return {"generator": self.generator.get_state(), "epochs_done": self.epochs_done}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.epochs_done = int(state["epochs_done"])
