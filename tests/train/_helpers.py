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


def data_parallel_run(settings: dict) -> dict | None:
    """One process of a data-parallel test run (started by torch's launcher); rank 0 returns the
    final weights. ``kill_at`` = (rank, step): that rank kills itself at that step."""
    import os
    import signal

    torch.set_num_threads(1)
    rank = int(os.environ.get("RANK", "0"))
    callbacks = []
    if settings.get("kill_at") and settings["kill_at"][0] == rank:

        def kill(trainer, event: str, info: dict) -> None:
            if event == "step" and info["step"] == settings["kill_at"][1]:
                os.kill(os.getpid(), signal.SIGKILL)

        callbacks.append(kill)
    trainer = data_parallel_trainer(settings, callbacks)
    inputs, targets = blobs(110)
    trainer.fit((inputs, targets), (inputs, targets), resume=settings.get("resume", False))
    if rank != 0:
        return None
    return {name: value.clone() for name, value in trainer.model.state_dict().items()}


def data_parallel_trainer(settings: dict, callbacks: list = ()):
    from descent.train import Trainer

    return Trainer(
        small_mlp(),
        optimizer="momentum",
        lr=0.05,
        batch_size=20,  # 110 examples: five batches of 20 and one of 10, 5 per process
        epochs=3,
        precision="64",
        device="cpu",
        seed=2,
        logdir=settings.get("logdir"),
        checkpoint_every=4,
        callbacks=callbacks,
    )
