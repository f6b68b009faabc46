"""McMahan et al.'s shape on the bundled digits: with IID clients FedAvg (E = 5, B = 10) reaches
the target accuracy in at least 5× fewer communication rounds than FedSGD, and the pathological
non-IID split (two label shards per client) needs more rounds than IID."""

from __future__ import annotations

import pytest
import torch

from descent.federated import ClientConfig, FederatedConfig, fedsgd
from descent.federated.experiment import Experiment

pytestmark = pytest.mark.slow

#: 10 clients of ~126 digits, half of them per round, the CNN; each rule with its own tuned lr
TARGET = 0.95


def rounds_to_target(partition: str, client: ClientConfig, limit: int) -> int | None:
    torch.set_num_threads(1)
    experiment = Experiment(
        model="cnn",
        clients=10,
        partition=partition,
        federated=FederatedConfig(fraction=0.5, rounds=limit, target=TARGET, client=client),
    )
    return experiment.federation().run().reached


def test_fedavg_needs_5x_fewer_rounds_than_fedsgd_and_non_iid_needs_more() -> None:
    fedavg = ClientConfig(optimizer="sgd", lr=0.05, epochs=5, batch_size=10)
    fedavg_iid = rounds_to_target("iid", fedavg, 40)
    fedsgd_iid = rounds_to_target("iid", fedsgd(lr=0.5), 200)
    assert fedavg_iid is not None
    assert fedsgd_iid is not None
    assert fedsgd_iid >= 5 * fedavg_iid
    fedavg_shards = rounds_to_target("shards", fedavg, 6 * fedavg_iid)
    assert fedavg_shards is None or fedavg_shards > fedavg_iid
