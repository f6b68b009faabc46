"""The algebra of federated averaging, checked exactly: one client is centralized training, FedSGD
is gradient descent on the union, vmap'd clients are looped clients, the average is Flower's,
the server rules are Reddi et al.'s formulas, FedProx adds μ(w − w_t) to the gradient."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from descent import optim, schedules
from descent.federated import (
    ELEMENTWISE_RULES,
    ClientConfig,
    FederatedConfig,
    Federation,
    ServerOptimizer,
    fedsgd,
    iid,
    unbalanced,
    weighted_average,
)
from descent.models import MLP, SmallCNN, SoftmaxRegression
from tests.federated.helpers import seeded, tiny_digits


def full_batch_gradient(model, weights, images, labels):
    names = [name for name, _ in model.named_parameters()]
    leaves = [w.detach().clone().requires_grad_() for w in weights]
    logits = torch.func.functional_call(model, dict(zip(names, leaves, strict=True)), (images,))
    return torch.autograd.grad(F.cross_entropy(logits, labels), leaves)


def test_one_client_full_batch_is_one_centralized_step_exactly() -> None:
    train, test = tiny_digits(120)
    model = seeded(lambda: MLP(64, 10, hidden=(16,)))
    config = FederatedConfig(fraction=1.0, rounds=1, client=fedsgd(lr=0.3))
    result = Federation(model, train, test, iid(train.labels.numpy(), 1), config).run()
    weights = [p.detach().clone() for p in model.parameters()]
    grads = full_batch_gradient(model, weights, train.images, train.labels)
    rule = optim.create("sgd", weights, lr=0.3)
    for weight, g in zip(weights, grads, strict=True):
        weight.grad = g
    rule.step()
    for mine, central in zip(result.weights, weights, strict=True):
        assert torch.equal(mine, central)


def test_fedsgd_is_gradient_descent_on_the_union() -> None:
    train, test = tiny_digits(200)
    model = seeded(lambda: SoftmaxRegression(64, 10))
    split = unbalanced(train.labels.numpy(), 6, sigma=0.8, seed=3)  # unequal n_k on purpose
    config = FederatedConfig(fraction=1.0, rounds=4, client=fedsgd(lr=0.5))
    result = Federation(model, train, test, split, config).run()
    every = torch.from_numpy(np.concatenate(split.indices))
    weights = [p.detach().clone() for p in model.parameters()]
    for _ in range(4):
        grads = full_batch_gradient(model, weights, train.images[every], train.labels[every])
        weights = [w - 0.5 * g for w, g in zip(weights, grads, strict=True)]
    for mine, central in zip(result.weights, weights, strict=True):
        assert torch.allclose(mine, central, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "client",
    [
        ClientConfig(optimizer="sgd", lr=0.1, epochs=2, batch_size=7),
        ClientConfig(optimizer="momentum", lr=0.05, epochs=1, batch_size=8, proximal_mu=0.1),
        ClientConfig(
            optimizer="adam",
            lr=schedules.ExponentialDecay(0.01, decay_steps=3, decay_rate=0.5),
            epochs=2,
            batch_size=11,
        ),
    ],
    ids=["sgd", "momentum-fedprox", "adam-schedule"],
)
def test_vectorized_and_looped_clients_give_the_same_weights(client: ClientConfig) -> None:
    train, test = tiny_digits(240)
    model = seeded(lambda: SmallCNN((1, 8, 8), 10, channels=(4, 8)))
    split = iid(train.labels.numpy(), 8, seed=0)  # 30 examples each: one vmap group
    runs = []
    for vectorize in (True, False):
        config = FederatedConfig(fraction=0.5, rounds=2, client=client, vectorize=vectorize, seed=5)
        runs.append(Federation(model, train, test, split, config).run())
    vectorized, looped = runs
    assert [m.clients for m in vectorized.history] == [m.clients for m in looped.history]
    moved = max(
        float((w - p).abs().max()) for w, p in zip(looped.weights, model.parameters(), strict=True)
    )
    assert moved > 1e-3  # the clients did train
    for a, b in zip(vectorized.weights, looped.weights, strict=True):
        assert torch.allclose(a, b, rtol=0, atol=1e-10)


def test_weighted_average_equals_flowers_fedavg_aggregation() -> None:
    from flwr.server.strategy.aggregate import aggregate

    generator = torch.Generator().manual_seed(0)
    shapes = [(3, 4), (4,), (2, 2, 3)]
    clients = [
        [torch.randn(s, generator=generator, dtype=torch.float64) for s in shapes] for _ in range(5)
    ]
    sizes = [13, 1, 600, 42, 7]
    mine = weighted_average(clients, sizes)
    theirs = aggregate([([w.numpy() for w in c], n) for c, n in zip(clients, sizes, strict=True)])
    for a, b in zip(mine, theirs, strict=True):
        np.testing.assert_allclose(a.numpy(), b, rtol=1e-14, atol=1e-15)


def reddi(name: str, w: np.ndarray, averages: list[np.ndarray], lr: float, tau: float = 1e-3):
    """Reddi et al.'s Algorithm 2 written out (FedAdam with descent's bias correction)."""
    beta1, beta2 = 0.9, 0.99
    m = np.zeros_like(w)
    v = np.full_like(w, tau**2) if name in ("fedadagrad", "fedyogi") else np.zeros_like(w)
    velocity = np.zeros_like(w)
    for t, average in enumerate(averages, start=1):
        delta = average - w
        if name == "fedavgm":
            velocity = 0.9 * velocity - delta
            w = w - lr * velocity
            continue
        if name == "fedadagrad":
            v = v + delta**2
            w = w + lr * delta / (np.sqrt(v) + tau)
            continue
        m = beta1 * m + (1 - beta1) * delta
        if name == "fedadam":
            v = beta2 * v + (1 - beta2) * delta**2
            w = w + lr * np.sqrt(1 - beta2**t) / (1 - beta1**t) * m / (np.sqrt(v) + tau)
        else:
            v = v - (1 - beta2) * delta**2 * np.sign(v - delta**2)
            w = w + lr * m / (np.sqrt(v) + tau)
    return w


@pytest.mark.parametrize("name", ["fedavgm", "fedadagrad", "fedadam", "fedyogi"])
def test_server_rules_follow_reddi_et_al(name: str) -> None:
    rng = np.random.default_rng(1)
    start = rng.normal(size=(5, 3))
    averages = [start + rng.normal(scale=0.1, size=start.shape) * (t + 1) for t in range(6)]
    server = ServerOptimizer(name, [torch.from_numpy(start)], lr=0.05)
    for average in averages:
        server.step([torch.from_numpy(average)])
    expected = reddi(name, start, averages, lr=0.05)
    np.testing.assert_allclose(server.weights[0].numpy(), expected, rtol=1e-12, atol=1e-14)


def test_fedavg_with_a_server_lr_moves_part_way() -> None:
    server = ServerOptimizer("fedavg", [torch.zeros(3, dtype=torch.float64)], lr=0.25)
    server.step([torch.tensor([4.0, -8.0, 1.0], dtype=torch.float64)])
    assert torch.equal(server.weights[0], torch.tensor([1.0, -2.0, 0.25], dtype=torch.float64))


def test_fedprox_adds_the_proximal_gradient() -> None:
    train, test = tiny_digits(60)
    model = seeded(lambda: SoftmaxRegression(64, 10))
    mu, lr = 0.7, 0.4
    client = ClientConfig(optimizer="sgd", lr=lr, epochs=3, batch_size=None, proximal_mu=mu)
    config = FederatedConfig(fraction=1.0, rounds=1, client=client)
    result = Federation(model, train, test, iid(train.labels.numpy(), 1), config).run()
    start = [p.detach().clone() for p in model.parameters()]
    weights = [w.clone() for w in start]
    for _ in range(3):  # ∇h = ∇F(w) + μ(w − w_t)
        grads = full_batch_gradient(model, weights, train.images, train.labels)
        weights = [
            w - lr * (g + mu * (w - s)) for w, g, s in zip(weights, grads, start, strict=True)
        ]
    for mine, formula in zip(result.weights, weights, strict=True):
        assert torch.allclose(mine, formula, rtol=0, atol=1e-13)


@pytest.mark.parametrize("rule", sorted(optim.OPTIMIZERS))
def test_every_rule_trains_stacked_clients_as_if_alone(rule: str) -> None:
    """Elementwise rules train equal-size clients stacked under vmap; the others (whole-tensor
    reductions would mix the stacked clients) are looped: either way the weights are the looped
    ones."""
    train, test = tiny_digits(120)
    model = seeded(lambda: SmallCNN((1, 8, 8), 10, channels=(3, 4)))
    split = iid(train.labels.numpy(), 4, seed=0)  # 30 examples each: one vmap group
    client = ClientConfig(optimizer=rule, lr=0.01, epochs=1, batch_size=10)
    assert client.vectorizable == (rule in ELEMENTWISE_RULES)
    runs = []
    for vectorize in (True, False):
        config = FederatedConfig(fraction=1.0, rounds=1, client=client, vectorize=vectorize)
        runs.append(Federation(model, train, test, split, config).run())
    for a, b in zip(runs[0].weights, runs[1].weights, strict=True):
        assert torch.allclose(a, b, rtol=0, atol=1e-10)


def test_a_per_tensor_rule_would_mix_stacked_clients() -> None:
    """Why LAMB is not in ELEMENTWISE_RULES: its trust ratio ‖w‖/‖u‖ over a stacked tensor mixes
    the clients, so stacked training differs from training each client alone."""
    from descent.federated.client import client_seed, train_looped, train_vectorized

    train, _ = tiny_digits(60)
    model = seeded(lambda: SmallCNN((1, 8, 8), 10, channels=(3, 4)))
    names = [name for name, _ in model.named_parameters()]
    weights = [p.detach() for p in model.parameters()]
    clients = [
        (k, train.images[30 * k : 30 * (k + 1)], train.labels[30 * k : 30 * (k + 1)],
         client_seed(0, 1, k))
        for k in range(2)
    ]  # fmt: skip
    client = ClientConfig(optimizer="lamb", lr=0.01, epochs=1, batch_size=10)
    stacked = train_vectorized(model, names, weights, clients, client)
    alone = train_looped(model, names, weights, clients, client)
    gap = max(
        float((a - b).abs().max())
        for s, lone in zip(stacked, alone, strict=True)
        for a, b in zip(s.weights, lone.weights, strict=True)
    )
    assert gap > 1e-8
