"""Partitions: every split covers disjoint examples, is a function of its seed, has the shape its
paper describes; bad input is one sentence."""

from __future__ import annotations

import numpy as np
import pytest

from descent.errors import InputError
from descent.federated import (
    ClientConfig,
    FederatedConfig,
    dirichlet,
    iid,
    partition,
    shards,
    unbalanced,
)

LABELS = np.repeat(np.arange(10), 60)  # 600 examples, 60 per label, sorted like a worst case


@pytest.mark.parametrize("spec", ["iid", "shards", "shards:3", "dirichlet:0.3", "unbalanced"])
def test_disjoint_seeded_and_printable(spec: str) -> None:
    split = partition(spec, LABELS, clients=20, seed=1)
    every = np.concatenate(split.indices)
    assert len(every) == len(np.unique(every))  # no example on two clients
    assert split.clients == 20
    assert split.sizes.min() >= 1
    again = partition(spec, LABELS, clients=20, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(split.indices, again.indices, strict=True))
    other = partition(spec, LABELS, clients=20, seed=2)
    assert not all(np.array_equal(a, b) for a, b in zip(split.indices, other.indices, strict=True))
    text = str(split)
    assert "20 clients" in text
    assert "examples per label" in text


def test_iid_and_unbalanced_sizes() -> None:
    assert set(iid(LABELS, 7).sizes) == {85, 86}
    assert iid(LABELS, 7).sizes.sum() == 600
    sizes = unbalanced(LABELS, 20, sigma=1.0).sizes
    assert sizes.sum() == 600
    assert sizes.max() > 2 * sizes.min()


def test_shards_are_pathological() -> None:
    # 20 clients × 2 shards of 15: every shard lies within one label, so ≤ 2 labels per client
    split = shards(LABELS, 20, per_client=2, seed=0)
    labels_per_client = (split.label_counts() > 0).sum(1)
    assert labels_per_client.max() <= 2
    assert set(split.sizes) == {30}


def test_dirichlet_skew_grows_as_alpha_shrinks() -> None:
    def mean_labels(alpha: float) -> float:
        return float((dirichlet(LABELS, 20, alpha, seed=0).label_counts() > 0).sum(1).mean())

    assert mean_labels(0.05) < mean_labels(1.0) < mean_labels(100.0) + 1e-9
    assert mean_labels(100.0) > 9


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda: iid(LABELS, 0), "the number of clients K must be a positive integer, got 0"),
        (lambda: iid(LABELS, 601), "at most the number of examples (600), got 601"),
        (lambda: dirichlet(LABELS, 5, alpha=0.0), "α must be > 0, got 0.0"),
        (lambda: dirichlet(LABELS, 5, alpha=-1), "α must be > 0"),
        (lambda: shards(LABELS, 400, per_client=2), "800 shards cannot be cut from 600"),
        (lambda: partition("zipf", LABELS, 5), "partition must be one of iid, shards"),
        (lambda: FederatedConfig(fraction=0.0), "the client fraction C must be in (0, 1], got 0.0"),
        (lambda: FederatedConfig(fraction=1.5), "(0, 1], got 1.5"),
        (lambda: ClientConfig(batch_size=0), "local batch B must be a positive integer, got 0"),
        (lambda: ClientConfig(optimizer="lbfgs"), "client optimizer must be one of sgd"),
    ],
)
def test_bad_input_is_one_sentence(call, fragment: str) -> None:
    with pytest.raises(InputError) as error:
        call()
    message = str(error.value)
    assert fragment in message
    assert "\n" not in message
