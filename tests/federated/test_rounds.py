"""Rounds as a whole: a client that raises is left out and the round goes on; a run killed between
rounds resumes exactly; TensorBoard gets one point per round; a target accuracy stops the run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from descent.federated import (
    ClientConfig,
    FederatedConfig,
    Federation,
    Partition,
    iid,
    weighted_average,
)
from descent.models import MLP, SoftmaxRegression
from tests.federated.helpers import seeded, tiny_digits

SRC = Path(__file__).resolve().parents[2] / "src"


def test_a_failing_client_is_left_out_and_the_round_goes_on() -> None:
    train, test = tiny_digits(160)
    model = seeded(lambda: SoftmaxRegression(64, 10))
    split = iid(train.labels.numpy(), 4, seed=0)
    client = ClientConfig(lr=0.2, epochs=2, batch_size=None)  # full batch: no shuffle to match
    config = FederatedConfig(fraction=1.0, rounds=1, client=client)

    def fail(round_number: int, client_id: int) -> None:
        if client_id == 2:
            raise RuntimeError("the client's disk is full")

    result = Federation(model, train, test, split, config, before_client=fail).run()
    assert result.history[0].clients == [0, 1, 2, 3]
    assert result.history[0].failed == [2]
    survivors = Partition("three", tuple(split.indices[k] for k in (0, 1, 3)), split.labels)
    expected = Federation(model, train, test, survivors, config).run()
    for got, want in zip(result.weights, expected.weights, strict=True):
        assert torch.equal(got, want)


def test_a_round_where_every_client_fails_keeps_the_weights() -> None:
    train, test = tiny_digits(80)
    model = seeded(lambda: SoftmaxRegression(64, 10))

    def fail(round_number: int, client_id: int) -> None:
        raise RuntimeError("network down")

    config = FederatedConfig(fraction=1.0, rounds=2, client=ClientConfig(batch_size=None))
    result = Federation(
        model, train, test, iid(train.labels.numpy(), 3), config, before_client=fail
    ).run()
    assert [m.failed for m in result.history] == [[0, 1, 2], [0, 1, 2]]
    for got, start in zip(result.weights, model.parameters(), strict=True):
        assert torch.equal(got, start.detach())


def test_a_client_whose_training_raises_inside_a_vmap_group_is_found() -> None:
    train, test = tiny_digits(120)
    model = seeded(lambda: SoftmaxRegression(64, 10))
    split = iid(train.labels.numpy(), 4, seed=0)  # equal sizes: one vectorized group
    federation = Federation(
        model,
        train,
        test,
        split,
        FederatedConfig(fraction=1.0, rounds=1, client=ClientConfig(batch_size=None)),
    )
    images, labels = federation.client_data[1]
    federation.client_data[1] = (images, labels + 100)  # labels out of range: cross-entropy raises
    metrics = federation.step()
    assert metrics.failed == [1]
    assert np.isfinite(metrics.test_loss)


KILL_SCRIPT = """
import os, signal, sys
import torch
sys.path.insert(0, {tests!r})
from tests.federated.test_rounds import build
federation = build(sys.argv[1])
def kill(metrics):
    if metrics.round == 2:
        os.kill(os.getpid(), signal.SIGKILL)
federation.run(callback=kill)
"""


def build(logdir: str | None) -> Federation:
    torch.set_num_threads(1)
    train, test = tiny_digits(200)
    model = seeded(lambda: MLP(64, 10, hidden=(12,)))
    client = ClientConfig(optimizer="adam", lr=0.01, epochs=1, batch_size=8)
    config = FederatedConfig(
        fraction=0.5, rounds=4, client=client, server="fedadam", server_lr=0.05, seed=3
    )
    return Federation(model, train, test, iid(train.labels.numpy(), 6, seed=1), config, logdir)


@pytest.mark.slow
def test_a_run_killed_between_rounds_resumes_exactly(tmp_path: Path) -> None:
    logdir = tmp_path / "run"
    script = KILL_SCRIPT.format(tests=str(Path(__file__).resolve().parents[2]))
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    killed = subprocess.run(
        [sys.executable, "-c", script, str(logdir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -9, killed.stderr
    resumed = build(str(logdir)).run(resume=True)
    straight = build(None).run()
    assert [m.round for m in resumed.history] == [1, 2, 3, 4]
    for got, want in zip(resumed.weights, straight.weights, strict=True):
        assert torch.equal(got, want)
    assert [m.clients for m in resumed.history] == [m.clients for m in straight.history]
    assert [m.test_loss for m in resumed.history] == [m.test_loss for m in straight.history]

    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

    board = EventMultiplexer().AddRunsFromDirectory(str(logdir))
    board.Reload()
    (run,) = board.Runs()
    steps = [event.step for event in board.Scalars(run, "federated/test_accuracy")]
    assert steps == [1, 2, 3, 4]  # one point per round, none twice after the resume
    assert {"federated/train_loss", "federated/client_loss", "federated/failed_clients"} <= set(
        board.Runs()[run]["scalars"]
    )


def test_a_target_accuracy_stops_the_run() -> None:
    train, test = tiny_digits(240)
    model = seeded(lambda: SoftmaxRegression(64, 10))
    config = FederatedConfig(
        fraction=1.0, rounds=50, target=0.5, client=ClientConfig(lr=0.5, epochs=1, batch_size=16)
    )
    result = Federation(model, train, test, iid(train.labels.numpy(), 4), config).run()
    assert result.reached == len(result.history) < 50
    assert result.history[-1].test_accuracy >= 0.5 > result.history[-2].test_accuracy


def test_the_weighted_average_weights_by_examples() -> None:
    a = [torch.tensor([0.0, 10.0])]
    b = [torch.tensor([4.0, 0.0])]
    assert torch.allclose(weighted_average([a, b], [1, 3])[0], torch.tensor([3.0, 2.5]))
