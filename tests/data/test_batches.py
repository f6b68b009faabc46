"""The three batch modes: sizes, reshuffling, the last partial batch, seeds, resume."""

from __future__ import annotations

import pytest
import torch

from descent.data import Batches


def sizes(batches: Batches) -> list[int]:
    return [len(b) for b in batches.epoch()]


def test_modes() -> None:
    assert sizes(Batches(120, "full")) == [120]
    assert sizes(Batches(120, "sgd")) == [1] * 120
    assert sizes(Batches(120, "minibatch")) == [50, 50, 20]  # the last partial batch is kept
    assert len(Batches(120, "minibatch")) == 3


def test_every_epoch_is_a_new_permutation() -> None:
    batches = Batches(100, "minibatch", 32, seed=1)
    first = torch.cat(list(batches.epoch()))
    second = torch.cat(list(batches.epoch()))
    assert sorted(first.tolist()) == list(range(100)) == sorted(second.tolist())
    assert not torch.equal(first, second)
    assert torch.equal(torch.cat(list(Batches(100, "full").epoch())), torch.arange(100))


def test_same_seed_same_order_and_resume() -> None:
    a, b = Batches(50, "sgd", seed=7), Batches(50, "sgd", seed=7)
    assert [x.tolist() for x in a.epoch()] == [x.tolist() for x in b.epoch()]
    state = a.state_dict()
    expected = [x.tolist() for x in a.epoch()]
    resumed = Batches(50, "sgd", seed=999)
    resumed.load_state_dict(state)
    assert [x.tolist() for x in resumed.epoch()] == expected
    assert resumed.epochs_done == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": 0}, "positive integer"),
        ({"n": 10, "mode": "online"}, "batch mode must be one of"),
        ({"n": 10, "mode": "minibatch", "batch_size": 0}, "batch_size"),
    ],
)
def test_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Batches(**kwargs)
