"""Federated averaging: the data stays on K clients, each trains a few local epochs from the global
weights, the server averages what they send back (McMahan et al. 2017), optionally through an
adaptive server rule (Reddi et al. 2021).

- :mod:`~descent.federated.partition`: IID, shards, Dirichlet(α), unbalanced splits;
- :mod:`~descent.federated.client`: local training, looped or vectorized with ``torch.func``;
- :mod:`~descent.federated.server`: the weighted average and FedAvg/FedAvgM/FedAdagrad/FedAdam/
  FedYogi on the pseudo-gradient;
- :mod:`~descent.federated.simulation`: rounds in one process, evaluation, TensorBoard,
  checkpoints with exact resume;
- :mod:`~descent.federated.flower`: the same training as a Flower ServerApp and ClientApp (the
  only module that imports flwr; install the ``federated`` extra).
"""

from descent.federated.client import (
    ELEMENTWISE_RULES,
    ClientConfig,
    ClientUpdate,
    fedsgd,
    train_looped,
    train_vectorized,
)
from descent.federated.partition import (
    PARTITIONS,
    Partition,
    dirichlet,
    iid,
    partition,
    shards,
    unbalanced,
)
from descent.federated.server import (
    SERVER_RULES,
    ServerOptimizer,
    Yogi,
    server_rule,
    weighted_average,
)
from descent.federated.simulation import (
    FederatedConfig,
    FederatedResult,
    Federation,
    RoundMetrics,
    sample_clients,
)

__all__ = [
    "ELEMENTWISE_RULES",
    "PARTITIONS",
    "SERVER_RULES",
    "ClientConfig",
    "ClientUpdate",
    "FederatedConfig",
    "FederatedResult",
    "Federation",
    "Partition",
    "RoundMetrics",
    "ServerOptimizer",
    "Yogi",
    "dirichlet",
    "fedsgd",
    "iid",
    "partition",
    "sample_clients",
    "server_rule",
    "shards",
    "train_looped",
    "train_vectorized",
    "unbalanced",
    "weighted_average",
]
