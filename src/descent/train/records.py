"""What a training run records: the metrics of each epoch, the result of fit(), the counters a
checkpoint holds, and the running sums of an epoch kept on the device."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from descent.train.distributed import Context, sum_across


@dataclass
class EpochMetrics:
    """One epoch: ``train`` and ``val`` map "loss" and each metric's name to its mean over the
    epoch's examples (``val`` is None without validation data)."""

    epoch: int
    step: int
    train: dict[str, float]
    val: dict[str, float] | None
    learning_rate: float
    seconds: float

    @property
    def train_loss(self) -> float:
        return self.train["loss"]

    @property
    def val_loss(self) -> float | None:
        return self.val["loss"] if self.val is not None else None

    @property
    def train_accuracy(self) -> float | None:
        return self.train.get("accuracy")

    @property
    def val_accuracy(self) -> float | None:
        return self.val.get("accuracy") if self.val is not None else None

    def flat(self) -> dict[str, Any]:
        """One flat record: epoch, step, train_loss, train_<metric>…, val_loss, val_<metric>…
        (None without validation), learning_rate, seconds: the form of metrics.json's history and
        of the "epoch" callback's info."""
        record: dict[str, Any] = {"epoch": self.epoch, "step": self.step}
        record.update({f"train_{name}": value for name, value in self.train.items()})
        for name in self.train:
            record[f"val_{name}"] = self.val.get(name) if self.val is not None else None
        record.update(learning_rate=self.learning_rate, seconds=self.seconds)
        return record

    @classmethod
    def from_flat(cls, record: Mapping[str, Any]) -> EpochMetrics:
        names = [key[len("train_") :] for key in record if key.startswith("train_")]
        val = {name: record[f"val_{name}"] for name in names}
        return cls(
            record["epoch"],
            record["step"],
            {name: record[f"train_{name}"] for name in names},
            None if val["loss"] is None else val,
            record["learning_rate"],
            record["seconds"],
        )


@dataclass
class TrainResult:
    history: list[EpochMetrics]
    stopped: str  # "budget", "early stopping", "max steps"
    best_epoch: int
    steps: int
    examples_per_second: float
    checkpoint: Path | None = None
    seconds: float = 0.0  # the time fit() spent, from its start to its return

    @property
    def final(self) -> EpochMetrics:
        return self.history[-1]


@dataclass
class State:
    """The counters a checkpoint holds beyond the model and optimizer."""

    epoch: int = 0
    step: int = 0
    best_metric: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


class Running:
    """An epoch's sums so far, kept on the device: reading them is a host synchronization, done
    only at logged steps and at the end of the epoch."""

    def __init__(self, names: Sequence[str], device: torch.device) -> None:
        self.names = list(names)
        # "loss" first, then the metrics; float64 so an epoch of millions of examples sums exactly
        # enough; the last entry counts the examples (filled from ``count`` when read).
        self.sums = torch.zeros(len(self.names) + 2, dtype=torch.float64, device=device)
        self._weighted = self.sums[:-1]  # a view: the loss and metrics, weighted by batch size
        self.count = 0  # examples so far: a host integer, known without asking the device

    def add(self, loss: Tensor, values: list[Tensor], count: int) -> None:
        # One stacked add at every step rather than one per value: on small models each tensor
        # operation's fixed cost is a visible share of a step.
        batch = torch.stack([loss.detach(), *(value.detach() for value in values)])
        self._weighted.add_(batch, alpha=count)
        self.count += count

    def zero(self) -> None:
        self.sums.zero_()
        self.count = 0

    def _with_count(self) -> Tensor:
        self.sums[-1].fill_(self.count)
        return self.sums

    def means(self, context: Context) -> dict[str, float]:
        total = sum_across(context, self._with_count()).tolist()
        count = max(total[-1], 1.0)
        names = ["loss", *self.names]
        return {name: value / count for name, value in zip(names, total[:-1], strict=True)}

    def state(self) -> Tensor:
        return self._with_count().detach().cpu()

    def load(self, sums: Tensor) -> None:
        self.sums.copy_(sums)
        self.count = round(float(sums[-1]))
