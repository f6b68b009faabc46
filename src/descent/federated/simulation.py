"""Federated averaging simulated in one process (McMahan, Moore, Ramage, Hampson, Agüera y Arcas,
*Communication-Efficient Learning of Deep Networks from Decentralized Data*, AISTATS 2017).

Round t = 1, 2, …:

1. the server samples m = max(⌊C·K⌋, 1) of the K clients (seeded by (seed, t));
2. each sampled client trains from w_t (:mod:`descent.federated.client`) and returns w_k;
3. w̄ = Σ_{k∈S} (n_k/n_S) w_k and the server rule moves w_t towards it
   (:mod:`descent.federated.server`; FedAvg: w_{t+1} = w̄);
4. the global model is evaluated: accuracy and loss on the central test set, and the
   client-weighted training loss Σ_k (n_k/n) F_k(w_{t+1}) over all K clients;
5. the round's scalars go to TensorBoard (``federated/…``) and a checkpoint is written (temporary
   file, then renamed), from which ``resume=True`` continues exactly.

Failure policy: a client that raises during its local training (or in ``before_client``) is left
out of that round; the round averages the others, weighted by their own n_k, and records the
failure. If every sampled client fails, the global weights stay w_t for that round. Nothing
already aggregated is lost: rounds are atomic and checkpointed.

Example::

    >>> data = digits()
    >>> split = partition("iid", data.train.labels, clients=100, seed=0)
    >>> config = FederatedConfig(fraction=0.1, rounds=20, client=ClientConfig(epochs=5,
    ...                          batch_size=10, lr=0.05))
    >>> result = Federation(model, data.train, data.test, split, config).run()
"""

from __future__ import annotations

import copy
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from descent import validate
from descent.data.images import Split
from descent.errors import InputError
from descent.federated.client import (
    ClientConfig,
    ClientData,
    ClientUpdate,
    client_seed,
    train_looped,
    train_vectorized,
)
from descent.federated.partition import Partition
from descent.federated.server import SERVER_ALIASES, SERVER_RULES, ServerOptimizer, weighted_average
from descent.federated.stacked import stacked_forward

log = logging.getLogger(__name__)

CHECKPOINT = "federated.pt"


@dataclass(frozen=True)
class FederatedConfig:
    """One federated experiment.

    Args:
        fraction: C ∈ (0, 1], the share of clients sampled each round (m = max(⌊C·K⌋, 1)).
        rounds: the most rounds to run.
        target: stop at the first round whose test accuracy reaches it (None: run all rounds).
        client: the local training (:class:`ClientConfig`).
        server: fedavg, fedavgm, fedadagrad, fedadam or fedyogi.
        server_lr: η of the server rule (None: the rule's default).
        server_options: momentum, betas or tau of the server rule.
        seed: seeds the client sampling and every client's batch order.
        vectorize: train clients with equal update counts E·⌈n_k/B⌉ together, stacked (False:
            one after another).
    """

    fraction: float = 0.1
    rounds: int = 20
    target: float | None = None
    client: ClientConfig = field(default_factory=ClientConfig)
    server: str = "fedavg"
    server_lr: float | None = None
    server_options: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    vectorize: bool = True

    def __post_init__(self) -> None:
        if (
            isinstance(self.fraction, bool)
            or not isinstance(self.fraction, int | float)
            or not 0 < self.fraction <= 1
        ):
            raise InputError(f"the client fraction C must be in (0, 1], got {self.fraction!r}")
        validate.positive_int(self.rounds, "rounds")
        if self.target is not None and not 0 < self.target <= 1:
            raise InputError(f"the target accuracy must be in (0, 1], got {self.target!r}")
        validate.choice(self.server, "server optimizer", SERVER_RULES, SERVER_ALIASES)
        if self.server_lr is not None:
            validate.positive(self.server_lr, "server lr")
        validate.nonnegative_int(self.seed, "seed")
        validate.flag(self.vectorize, "vectorize")

    def sampled(self, clients: int) -> int:
        """m = max(⌊C·K⌋, 1)."""
        return max(math.floor(self.fraction * clients + 1e-9), 1)


@dataclass
class RoundMetrics:
    round: int
    clients: list[int]
    failed: list[int]
    client_loss: float  # n_k-weighted mean local training loss of the clients that reported
    train_loss: float  # Σ_k (n_k/n) F_k(w_{t+1}) over all clients
    test_loss: float
    test_accuracy: float
    seconds: float


@dataclass
class FederatedResult:
    history: list[RoundMetrics]
    weights: list[Tensor]
    reached: int | None  # first round at the target accuracy, if one was set and reached

    @property
    def final_accuracy(self) -> float:
        return self.history[-1].test_accuracy if self.history else float("nan")


def sample_clients(clients: int, count: int, seed: int, round_number: int) -> list[int]:
    """The m clients of round ``round_number``, sorted (a pure function of its arguments)."""
    rng = np.random.default_rng([seed, round_number])
    return sorted(int(k) for k in rng.choice(clients, size=count, replace=False))


class Federation:
    """K clients holding ``partition`` of ``train``, a global ``model``, a server rule.

    ``model`` gives the architecture and the initial global weights (its parameters, in
    ``named_parameters`` order; buffers are not averaged). ``before_client(round, client)`` is
    called before each client's local training: an exception there or in the training drops that
    client from the round (the failure policy of the module docstring).
    """

    def __init__(
        self,
        model: nn.Module,
        train: Split,
        test: Split | None,
        partition: Partition,
        config: FederatedConfig,
        logdir: str | Path | None = None,
        before_client: Callable[[int, int], None] | None = None,
    ) -> None:
        if int(partition.sizes.sum()) > len(train) or max(
            int(i.max()) for i in partition.indices
        ) >= len(train):
            raise InputError(
                f"the partition indexes {int(partition.sizes.sum())} examples but the training "
                f"data has {len(train)}"
            )
        self.model = copy.deepcopy(model)
        self.names = [name for name, _ in self.model.named_parameters()]
        dtype = next(self.model.parameters()).dtype
        self.dtype = dtype
        self.train = Split(train.images.to(dtype), train.labels)
        self.test = None if test is None else Split(test.images.to(dtype), test.labels)
        self.partition = partition
        self.config = config
        self.logdir = None if logdir is None else Path(logdir)
        self.before_client = before_client
        self.client_data = [
            (self.train.images[torch.from_numpy(index)], self.train.labels[torch.from_numpy(index)])
            for index in partition.indices
        ]
        weights = [p.detach().clone() for p in self.model.parameters()]
        self.server = ServerOptimizer(
            config.server, weights, config.server_lr, **config.server_options
        )
        self.round = 0
        self.history: list[RoundMetrics] = []

    # -- one round ----------------------------------------------------------------------------

    @property
    def weights(self) -> list[Tensor]:
        return self.server.weights

    def train_clients(
        self, round_number: int, chosen: Sequence[int]
    ) -> tuple[list[ClientUpdate], list[int]]:
        """Local training of the chosen clients; returns (updates, failed clients)."""
        failed: list[int] = []
        ready = []
        for client in chosen:
            try:
                if self.before_client is not None:
                    self.before_client(round_number, client)
            except Exception as error:  # the failure policy: drop this client, keep the round
                log.warning("client %d failed in round %d: %s", client, round_number, error)
                failed.append(client)
                continue
            images, labels = self.client_data[client]
            ready.append(
                (client, images, labels, client_seed(self.config.seed, round_number, client))
            )
        groups: dict[int, list[ClientData]] = {}
        if self.config.vectorize and self.config.client.vectorizable:
            for entry in ready:  # clients taking equally many local updates train stacked
                groups.setdefault(self.config.client.updates(len(entry[2])), []).append(entry)
        else:
            groups = {i: [entry] for i, entry in enumerate(ready)}
        updates: list[ClientUpdate] = []
        for group in groups.values():
            try:
                if len(group) > 1:
                    updates += train_vectorized(
                        self.model, self.names, self.weights, group, self.config.client
                    )
                else:
                    updates += train_looped(
                        self.model, self.names, self.weights, group, self.config.client
                    )
                continue
            except Exception as error:
                if len(group) == 1:
                    log.warning(
                        "client %d failed in round %d: %s", group[0][0], round_number, error
                    )
                    failed.append(group[0][0])
                    continue
            for entry in group:  # a group failed together: find who, train the rest alone
                try:
                    updates += train_looped(
                        self.model, self.names, self.weights, [entry], self.config.client
                    )
                except Exception as error:
                    log.warning("client %d failed in round %d: %s", entry[0], round_number, error)
                    failed.append(entry[0])
        updates.sort(key=lambda update: update.client)
        return updates, sorted(failed)

    def aggregate(self, updates: Sequence[ClientUpdate]) -> None:
        """The server step from the clients' updates (no update at all: w stays)."""
        if not updates:
            return
        finite = [u for u in updates if all(torch.isfinite(w).all() for w in u.weights)]
        if len(finite) < len(updates):
            raise FloatingPointError(
                "a client returned NaN or infinite weights; lower the client learning rate"
            )
        averaged = weighted_average([u.weights for u in updates], [u.size for u in updates])
        self.server.step(averaged)

    @torch.no_grad()
    def evaluate(self, split: Split) -> tuple[float, float]:
        """(mean cross-entropy, accuracy) of the global model on ``split``."""
        # the stacked forward with one client where descent writes the model out: its
        # channels-last pooling makes the CNN's evaluation several times faster on CPU
        forward = stacked_forward(self.model, self.names)
        parameters = dict(zip(self.names, self.weights, strict=True))
        total_loss, correct = 0.0, 0
        for start in range(0, len(split), 4096):
            images = split.images[start : start + 4096]
            labels = split.labels[start : start + 4096]
            if forward is None:
                logits = torch.func.functional_call(self.model, parameters, (images,))
            else:
                one = {name: weight.unsqueeze(0) for name, weight in parameters.items()}
                logits = forward(one, images.unsqueeze(0))[0]
            total_loss += float(F.cross_entropy(logits, labels, reduction="sum"))
            correct += int((logits.argmax(1) == labels).sum())
        return total_loss / len(split), correct / len(split)

    def step(self) -> RoundMetrics:
        """Run the next round and return its metrics."""
        started = time.perf_counter()
        self.round += 1
        count = self.config.sampled(self.partition.clients)
        chosen = sample_clients(self.partition.clients, count, self.config.seed, self.round)
        updates, failed = self.train_clients(self.round, chosen)
        self.aggregate(updates)
        reported = sum(u.size for u in updates)
        client_loss = sum(u.loss * u.size for u in updates) / reported if updates else float("nan")
        every = np.concatenate(self.partition.indices)
        train_loss, _ = self.evaluate(
            Split(
                self.train.images[torch.from_numpy(every)],
                self.train.labels[torch.from_numpy(every)],
            )
        )
        test_loss, accuracy = (
            self.evaluate(self.test) if self.test is not None else (float("nan"), float("nan"))
        )
        metrics = RoundMetrics(
            self.round,
            chosen,
            failed,
            client_loss,
            train_loss,
            test_loss,
            accuracy,
            time.perf_counter() - started,
        )
        self.history.append(metrics)
        return metrics

    # -- a whole run --------------------------------------------------------------------------

    def _checkpoint_payload(self) -> dict[str, Any]:
        return {
            "round": self.round,
            "server": self.server.state_dict(),
            "history": [asdict(m) for m in self.history],
            "sizes": self.partition.sizes.tolist(),
            "seed": self.config.seed,
        }

    def save(self, path: Path) -> None:
        """Write the checkpoint atomically (temporary file, then rename)."""
        temporary = path.with_suffix(".tmp")
        torch.save(self._checkpoint_payload(), temporary)
        os.replace(temporary, path)

    def load(self, path: Path) -> None:
        saved = torch.load(path, weights_only=False)
        if saved["sizes"] != self.partition.sizes.tolist() or saved["seed"] != self.config.seed:
            raise InputError(
                f"{path} was written for another split or seed; resume with the same "
                "--clients, --partition and --seed, or start a new run folder"
            )
        self.round = saved["round"]
        self.server.load_state_dict(saved["server"])
        self.history = [RoundMetrics(**m) for m in saved["history"]]

    def run(
        self,
        resume: bool = False,
        callback: Callable[[RoundMetrics], None] | None = None,
    ) -> FederatedResult:
        """Rounds until ``config.rounds`` (or the target accuracy); ``resume`` continues from the
        run folder's checkpoint exactly as if never interrupted."""
        checkpoint = None if self.logdir is None else self.logdir / CHECKPOINT
        if resume:
            if checkpoint is None or not checkpoint.is_file():
                raise InputError(f"resume: there is no checkpoint {checkpoint}")
            self.load(checkpoint)
        writer = None
        if self.logdir is not None:
            from descent.train.logs import open_event_writer

            self.logdir.mkdir(parents=True, exist_ok=True)
            writer = open_event_writer(self.logdir, purge_step=self.round + 1)
        target = self.config.target
        reached = next(
            (m.round for m in self.history if target is not None and m.test_accuracy >= target),
            None,
        )
        try:
            while self.round < self.config.rounds and reached is None:
                metrics = self.step()
                if writer is not None:
                    for name in ("test_accuracy", "test_loss", "train_loss", "client_loss"):
                        writer.add_scalar(
                            f"federated/{name}", getattr(metrics, name), metrics.round
                        )
                    writer.add_scalar(
                        "federated/clients",
                        len(metrics.clients) - len(metrics.failed),
                        metrics.round,
                    )
                    writer.add_scalar(
                        "federated/failed_clients", len(metrics.failed), metrics.round
                    )
                    writer.flush()
                if checkpoint is not None:
                    self.save(checkpoint)
                if target is not None and metrics.test_accuracy >= target:
                    reached = metrics.round
                if callback is not None:
                    callback(metrics)
        finally:
            if writer is not None:
                writer.close()
        return FederatedResult(self.history, [w.clone() for w in self.weights], reached)


__all__ = [
    "CHECKPOINT",
    "FederatedConfig",
    "FederatedResult",
    "Federation",
    "RoundMetrics",
    "sample_clients",
]
