"""The three batch modes of the lecture as one reusable, resumable iterator.

Gradient descent, stochastic gradient descent and mini-batch gradient descent differ only in
which examples form the batch behind a gradient: all n ("full"), one ("single") or B
("minibatch"; the lecture uses 50). For the last two the order is reshuffled every epoch from a
seeded generator; the last partial batch is kept, so every example is seen exactly once per epoch.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

import torch

from descent import validate

BatchMode = Literal["full", "single", "minibatch"]
#: The canonical names; "sgd" (and the other aliases of :func:`descent.validate.batch_mode`) are
#: accepted wherever a mode is read.
MODES: tuple[str, ...] = validate.BATCH_MODES


class Batches:
    """Index batches over ``n`` examples: ``for indices in batches.epoch(): ...``.

    Args:
        n: number of examples.
        mode: "full" (one batch of all n, in order), "single" (n batches of one example; "sgd"
            is accepted for it) or "minibatch" (batches of ``batch_size``, the last one possibly
            smaller).
        batch_size: B for "minibatch" (default 50, the lecture's).
        shuffle: reshuffle at every epoch ("single" and "minibatch"; "full" never shuffles since
            the order of a sum does not change its value beyond rounding).
        seed: seeds the generator; the same seed gives the same order of every epoch.

    Example::

        batches = Batches(120, "minibatch", 50, seed=0)
        [len(b) for b in batches.epoch()]  # [50, 50, 20]
    """

    def __init__(
        self,
        n: int,
        mode: str = "full",
        batch_size: int = 50,
        *,
        shuffle: bool = True,
        seed: int | None = 0,
    ) -> None:
        validate.positive_int(n, "the number of examples")
        self.mode: BatchMode = validate.batch_mode(mode)  # type: ignore[assignment]
        validate.positive_int(batch_size, "batch_size")
        self.n = n
        self.requested_batch_size = batch_size
        self.batch_size = {"full": n, "single": 1, "minibatch": min(batch_size, n)}[self.mode]
        self.shuffle = shuffle and self.mode != "full"
        self.generator = torch.Generator()
        self.generator.manual_seed(seed if seed is not None else torch.seed())
        self.epochs_done = 0

    def __len__(self) -> int:
        """Batches per epoch."""
        return -(-self.n // self.batch_size)

    def order(self) -> torch.Tensor:
        """The order of the next epoch's examples, all n indices (drawing it advances the
        generator and counts the epoch). Batch b of the epoch is
        ``order[b * batch_size : (b + 1) * batch_size]``: gather the data once in this order and
        slice it, instead of gathering batch by batch."""
        if self.shuffle:
            order = torch.randperm(self.n, generator=self.generator)
        else:
            order = torch.arange(self.n)
        self.epochs_done += 1
        return order

    def epoch(self) -> Iterator[torch.Tensor]:
        """The index batches of the next epoch."""
        return iter(self.order().split(self.batch_size))

    def bounds(self) -> list[tuple[int, int]]:
        """(start, stop) of each batch within an epoch's order."""
        return [
            (start, min(start + self.batch_size, self.n))
            for start in range(0, self.n, self.batch_size)
        ]

    def resized(self, n: int) -> Batches:
        """Batches of the same mode over ``n`` examples that continue this random stream (the
        next epoch draws from where this one's generator stands); ``self`` if n is unchanged."""
        if n == self.n:
            return self
        fresh = Batches(n, self.mode, self.requested_batch_size, shuffle=self.shuffle, seed=0)
        fresh.load_state_dict(self.state_dict())
        return fresh

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue with the same order: generator state and epoch count."""
        return {"generator": self.generator.get_state(), "epochs_done": self.epochs_done}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.epochs_done = int(state["epochs_done"])
