"""One federated experiment by name: the data, the model, the split and the rounds, as the CLI,
the demo, the benchmark and the Flower apps build it (one place, so they all build the same
thing from the same seed).

Example::

    >>> experiment = Experiment(model="cnn", clients=100, partition="shards",
    ...                         federated=FederatedConfig(fraction=0.1, rounds=50))
    >>> result = experiment.federation().run()
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from descent import validate
from descent.data.images import ImageData
from descent.data.images import load as load_images
from descent.errors import InputError
from descent.federated.client import ClientConfig
from descent.federated.partition import Partition, partition
from descent.federated.simulation import FederatedConfig, Federation

MODELS = ("softmax", "mlp", "cnn")


def build_model(name: str, image_shape: tuple[int, ...], classes: int, seed: int) -> nn.Module:
    """The global model's architecture and initial weights (torch's init under ``seed``)."""
    from descent.models import MLP, SmallCNN, SoftmaxRegression

    key = validate.choice(name, "model", MODELS)
    features = 1
    for size in image_shape:
        features *= size
    torch.manual_seed(seed)
    if key == "softmax":
        return SoftmaxRegression(features, classes)
    if key == "mlp":
        return MLP(features, classes, hidden=(200, 200))  # McMahan et al.'s 2NN
    return SmallCNN(image_shape, classes, channels=(32, 64))  # their CNN, smaller


@dataclass(frozen=True)
class Experiment:
    """Data (``digits`` or ``mnist:DIR``…), model, K clients, the split, the rounds."""

    data: str = "digits"
    model: str = "cnn"
    clients: int = 100
    partition: str = "iid"
    federated: FederatedConfig = field(default_factory=FederatedConfig)

    def __post_init__(self) -> None:
        validate.positive_int(self.clients, "the number of clients K")
        validate.choice(self.model, "model", MODELS)

    def load(self) -> tuple[ImageData, Partition, nn.Module]:
        data = load_images(self.data, seed=self.federated.seed)
        split = partition(
            self.partition, data.train.labels.numpy(), self.clients, seed=self.federated.seed
        )
        model = build_model(
            self.model, data.image_shape, len(data.classes), seed=self.federated.seed
        )
        return data, split, model

    def federation(self, logdir: str | Path | None = None, **options: Any) -> Federation:
        data, split, model = self.load()
        return Federation(model, data.train, data.test, split, self.federated, logdir, **options)

    # -- a flat form for Flower's run config (str, int, float, bool values) -------------------

    def run_config(self) -> dict[str, str | int | float | bool]:
        """Every setting as one flat mapping; 0 stands for "none" (B = ∞, no target, the server
        rule's default lr)."""
        federated, client = self.federated, self.federated.client
        if client.options or callable(client.lr) or federated.server_options:
            raise InputError(
                "the Flower run config carries a float client lr and no extra rule options; "
                "drop the schedule or options to deploy on Flower"
            )
        return {
            "data": self.data,
            "model": self.model,
            "clients": self.clients,
            "partition": self.partition,
            "fraction": float(federated.fraction),
            "rounds": federated.rounds,
            "target": float(federated.target or 0.0),
            "seed": federated.seed,
            "server": federated.server,
            "server-lr": float(federated.server_lr or 0.0),
            "local-optimizer": client.optimizer,
            "local-lr": float(client.lr),  # type: ignore[arg-type]
            "local-epochs": client.epochs,
            "local-batch": client.batch_size or 0,
            "proximal-mu": float(client.proximal_mu),
        }

    @classmethod
    def from_run_config(cls, config: dict[str, Any]) -> Experiment:
        """The inverse of :meth:`run_config` (unknown keys are ignored: the apps add their own)."""
        default = cls()
        base = default.run_config()
        merged = {**base, **{k: v for k, v in config.items() if k in base}}
        client = ClientConfig(
            optimizer=str(merged["local-optimizer"]),
            lr=float(merged["local-lr"]),
            epochs=int(merged["local-epochs"]),
            batch_size=int(merged["local-batch"]) or None,
            proximal_mu=float(merged["proximal-mu"]),
        )
        federated = replace(
            default.federated,
            fraction=float(merged["fraction"]),
            rounds=int(merged["rounds"]),
            target=float(merged["target"]) or None,
            seed=int(merged["seed"]),
            server=str(merged["server"]),
            server_lr=float(merged["server-lr"]) or None,
            client=client,
            vectorize=False,
        )
        known = {f.name for f in fields(cls)}
        return cls(
            **{k: merged[k] for k in ("data", "model", "partition") if k in known},
            clients=int(merged["clients"]),
            federated=federated,
        )


@dataclass(frozen=True)
class ComparisonRow:
    """Rounds to the target accuracy for FedSGD and FedAvg on one split (None: not reached)."""

    partition: str
    fedsgd_rounds: int | None
    fedavg_rounds: int | None
    max_rounds: int
    fedsgd_seconds: float
    fedavg_seconds: float

    @property
    def reduction(self) -> float | None:
        """FedSGD's rounds over FedAvg's (a lower bound when FedSGD did not reach the target)."""
        if self.fedavg_rounds is None:
            return None
        return (self.fedsgd_rounds or self.max_rounds) / self.fedavg_rounds


def compare(
    experiment: Experiment,
    target: float,
    fedsgd_lr: float,
    partitions: tuple[str, ...] = ("iid", "shards"),
    max_rounds: int | None = None,
) -> list[ComparisonRow]:
    """McMahan et al.'s Table 2 in small: communication rounds to ``target`` test accuracy for
    FedSGD (one full-batch step per client, lr ``fedsgd_lr``) and for ``experiment``'s FedAvg,
    on each split, with the same model, clients, C and seed."""
    import time

    limit = max_rounds or experiment.federated.rounds
    rows = []
    for spec in partitions:
        reached, seconds = [], []
        for client in (_fedsgd_client(fedsgd_lr), experiment.federated.client):
            federated = replace(experiment.federated, client=client, target=target, rounds=limit)
            started = time.perf_counter()
            result = replace(experiment, partition=spec, federated=federated).federation().run()
            reached.append(result.reached)
            seconds.append(time.perf_counter() - started)
        rows.append(ComparisonRow(spec, reached[0], reached[1], limit, seconds[0], seconds[1]))
    return rows


def _fedsgd_client(lr: float) -> ClientConfig:
    from descent.federated.client import fedsgd

    return fedsgd(lr)


__all__ = ["MODELS", "ComparisonRow", "Experiment", "build_model", "compare"]
