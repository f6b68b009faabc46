"""The Trainer's data in any form torch users hold it: tensors, a map-style Dataset, a DataLoader.

* Tensors — ``(inputs, targets)``, a ``TensorDataset`` of two tensors, or a descent ``Split`` — are
  moved to the device once and indexed there: no collation, no copies per step.
* A map-style ``Dataset`` is read through a DataLoader that descent builds, with
  :class:`BatchSampler` choosing the batches (so the batch modes, the seeded reshuffle and exact
  resume hold), ``num_workers`` worker processes and pinned memory when the device is a GPU.
* A ``DataLoader`` the user built is iterated as it is (its own batches); each epoch's iterator is
  created under a generator seeded with (seed, epoch), so its shuffle, drawn from torch's global
  generator, repeats on resume, where the batches already trained on are skipped. Build it with
  ``batch_sampler=BatchSampler(...)`` to keep descent's batch modes and O(1) resume.

All three give the same batches, hence the same weights, for the same seed and batch mode.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, IterableDataset, Sampler, TensorDataset

from descent import validate
from descent.data.batches import Batches
from descent.errors import InputError
from descent.train.distributed import Context, batch_share

Batch = tuple[Tensor, Tensor]


class BatchSampler(Sampler[list[int]]):
    """The three batch modes as a DataLoader batch sampler: "full" (all n examples, in order),
    "single" (one example per update) or "minibatch" (B examples, the last batch possibly
    smaller), reshuffled every epoch from a generator seeded with ``seed``. Under data-parallel
    training every rank draws the same order and yields its own contiguous part of each batch.

    Example::

        sampler = BatchSampler(len(dataset), "minibatch", 64, seed=0)
        loader = DataLoader(dataset, batch_sampler=sampler, num_workers=4)
    """

    def __init__(
        self,
        n: int,
        mode: str = "minibatch",
        batch_size: int = 50,
        *,
        seed: int = 0,
        context: Context | None = None,
    ) -> None:
        self.mode = validate.batch_mode(mode)
        validate.positive_int(batch_size, "batch_size")
        self.batches = Batches(n, self.mode, batch_size, seed=seed)
        self.context = context or Context()
        if self.context.active and self.batches.batch_size < self.context.world_size:
            raise InputError(
                f"a batch of {self.batches.batch_size} example(s) cannot be shared by "
                f"{self.context.world_size} processes; use a batch of at least "
                f"{self.context.world_size} (mode minibatch or full)"
            )
        self._epoch_start = self.batches.state_dict()
        self._skip = 0

    def __len__(self) -> int:
        return len(self.batches)

    def index_batches(self) -> Iterator[Tensor]:
        """The next epoch's batches of indices (this rank's part), as tensors."""
        self._epoch_start = self.batches.state_dict()
        skip, self._skip = self._skip, 0
        for number, batch in enumerate(self.batches.epoch()):
            if number >= skip:
                yield batch_share(batch, self.context)

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.index_batches():
            yield batch.tolist()

    def state_dict(self, position: int) -> dict[str, Any]:
        """What continues the order after ``position`` batches of the running epoch (0: the epoch
        is complete, the next one starts)."""
        state = self.batches.state_dict() if position == 0 else self._epoch_start
        return {
            "generator": state["generator"].clone(),
            "epochs_done": state["epochs_done"],
            "position": position,
        }

    def global_batch_size(self, position: int) -> int:
        """The size of the whole batch number ``position`` of an epoch (all ranks' parts)."""
        size = self.batches.batch_size
        return min(size, self.batches.n - position * size)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.batches.load_state_dict(
            {"generator": state["generator"], "epochs_done": state["epochs_done"]}
        )
        self._skip = int(state["position"])


def _as_tensors(data: Any) -> tuple[Tensor, Tensor] | None:
    if hasattr(data, "images") and hasattr(data, "labels"):  # descent's Split
        return data.images, data.labels
    if isinstance(data, TensorDataset) and len(data.tensors) == 2:
        return data.tensors[0], data.tensors[1]
    if (
        isinstance(data, tuple | list)
        and len(data) == 2
        and all(isinstance(part, Tensor) for part in data)
    ):
        if len(data[0]) != len(data[1]):
            raise InputError(
                f"inputs and targets must have the same length, got {len(data[0])} and "
                f"{len(data[1])}"
            )
        return data[0], data[1]
    return None


def _kind(data: Any, name: str) -> str:
    if _as_tensors(data) is not None:
        return "tensors"
    if isinstance(data, DataLoader):
        return "loader"
    if isinstance(data, IterableDataset):
        raise InputError(
            f"{name} is an IterableDataset, which cannot be resumed exactly; give a map-style "
            "Dataset, a DataLoader, or (inputs, targets) tensors"
        )
    if isinstance(data, Dataset) or (hasattr(data, "__getitem__") and hasattr(data, "__len__")):
        if len(data) == 0:
            raise InputError(f"{name} is empty")
        return "dataset"
    raise InputError(
        f"{name} must be (inputs, targets) tensors, a Dataset or a DataLoader, got "
        f"{type(data).__name__}"
    )


def to_device(batch: Any, device: torch.device, dtype: torch.dtype) -> Batch:
    """(inputs, targets) on the device; floating-point tensors in the model's dtype."""
    if not isinstance(batch, tuple | list) or len(batch) != 2:
        raise InputError(
            f"a batch must be (inputs, targets), got a {type(batch).__name__}"
            + (f" of {len(batch)} items" if isinstance(batch, tuple | list) else "")
        )
    return tuple(  # type: ignore[return-value]
        part.to(device, dtype if part.is_floating_point() else None, non_blocking=True)
        for part in batch
    )


class TrainingData:
    """The training batches of one run, epoch after epoch, resumable at any batch."""

    def __init__(
        self,
        data: Any,
        *,
        mode: str,
        batch_size: int,
        seed: int,
        device: torch.device,
        dtype: torch.dtype,
        num_workers: int,
        context: Context,
    ) -> None:
        self.kind = _kind(data, "the training data")
        self.device, self.dtype, self.seed = device, dtype, seed
        self.sampler: BatchSampler | None = None
        self.epochs_done = 0
        self._skip = 0
        if self.kind == "tensors":
            inputs, targets = _as_tensors(data)  # type: ignore[misc]
            self.inputs, self.targets = to_device((inputs, targets), device, dtype)
            self.examples = len(inputs)
            self.sampler = BatchSampler(self.examples, mode, batch_size, seed=seed, context=context)
        elif self.kind == "dataset":
            self.examples = len(data)
            self.sampler = BatchSampler(self.examples, mode, batch_size, seed=seed, context=context)
            self.loader = DataLoader(
                data,
                batch_sampler=self.sampler,
                num_workers=num_workers,
                pin_memory=device.type == "cuda",
                persistent_workers=num_workers > 0,
                # Worker seeds come from this generator, not torch's global one, which would
                # otherwise advance once per epoch and shift dropout's randomness on resume.
                generator=torch.Generator().manual_seed(seed),
            )
        else:
            self.loader = data
            if isinstance(data.batch_sampler, BatchSampler):
                self.sampler = data.batch_sampler
            self.examples = len(data.dataset) if hasattr(data.dataset, "__len__") else 0

    def global_batch_size(self, position: int) -> int | None:
        """The whole batch's size at ``position`` (None: the loader's own batches, taken to be
        equal parts on every rank)."""
        return self.sampler.global_batch_size(position) if self.sampler is not None else None

    def __len__(self) -> int:
        """Batches per epoch (this rank's)."""
        return len(self.sampler) if self.sampler is not None else len(self.loader)

    def epoch(self) -> Iterator[Batch]:
        """The next epoch's batches on the device (after the ones skipped on resume)."""
        self.epochs_done += 1
        if self.kind == "tensors":
            assert self.sampler is not None
            for indices in self.sampler.index_batches():
                indices = indices.to(self.device, non_blocking=True)
                yield self.inputs[indices], self.targets[indices]
            return
        if self.sampler is not None:  # descent's sampler skips on its own
            for batch in self.loader:
                yield to_device(batch, self.device, self.dtype)
            return
        yield from self._foreign_epoch()

    def _foreign_epoch(self) -> Iterator[Batch]:
        epoch = self.epochs_done - 1
        set_epoch = getattr(getattr(self.loader, "sampler", None), "set_epoch", None)
        if callable(set_epoch):  # a DistributedSampler reshuffles by epoch
            set_epoch(epoch)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed * 100_003 + epoch)
            batches = iter(self.loader)
            first = next(batches, None)  # the sampler draws its order here, under the seed
        skip, self._skip = self._skip, 0
        if first is None:
            return
        if skip == 0:
            yield to_device(first, self.device, self.dtype)
        for number, batch in enumerate(batches, start=1):
            if number >= skip:
                yield to_device(batch, self.device, self.dtype)

    def state_dict(self, position: int) -> dict[str, Any]:
        if self.sampler is not None:
            return {"sampler": self.sampler.state_dict(position)}
        return {"epochs_done": self.epochs_done - (1 if position else 0), "position": position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.sampler is not None:
            if "sampler" not in state:
                raise InputError(
                    "the checkpoint was written with other data (a DataLoader of its "
                    "own batches); resume with the same kind of data"
                )
            self.sampler.load_state_dict(state["sampler"])
            self.epochs_done = int(state["sampler"]["epochs_done"])
        else:
            if "epochs_done" not in state:
                raise InputError(
                    "the checkpoint was written with other data (descent's batch "
                    "sampler); resume with the same kind of data"
                )
            self.epochs_done = int(state["epochs_done"])
            self._skip = int(state["position"])


def evaluation_batches(
    data: Any,
    *,
    device: torch.device,
    dtype: torch.dtype,
    context: Context,
    num_workers: int = 0,
    chunk: int = 2048,
) -> Iterator[Batch]:
    """``data`` once, in order, in chunks: this rank's contiguous share of the examples (a
    DataLoader of the user's is iterated as it is, each rank its own, as its sampler shards)."""
    kind = _kind(data, "the evaluation data")
    if kind == "loader":
        for batch in data:
            yield to_device(batch, device, dtype)
        return
    count = len(_as_tensors(data)[0]) if kind == "tensors" else len(data)  # type: ignore[index]
    share = batch_share(torch.arange(count), context)
    if kind == "tensors":
        inputs, targets = _as_tensors(data)  # type: ignore[misc]
        for start in range(0, len(share), chunk):
            indices = share[start : start + chunk]
            yield to_device((inputs[indices], targets[indices]), device, dtype)
        return
    loader = DataLoader(
        data,
        batch_sampler=[chunk_.tolist() for chunk_ in share.split(chunk)],  # type: ignore[arg-type]
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
    )
    for batch in loader:
        yield to_device(batch, device, dtype)
