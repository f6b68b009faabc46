"""The stacked forward pass (descent.federated.stacked) is each client's own forward pass, and
stacked training of clients of unequal size (padded batches, masked losses) is their looped
training."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from descent.federated import ClientConfig, fedsgd
from descent.federated.client import client_seed, train_looped, train_vectorized
from descent.federated.stacked import stacked_forward
from descent.models import MLP, SmallCNN
from tests.federated.helpers import seeded, tiny_digits


def sequential_cnn() -> nn.Sequential:
    return nn.Sequential(
        nn.Identity(),
        nn.Conv2d(1, 3, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(3, 4, 3, stride=2, bias=False),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4, 10),
    )


def sequential_mlp() -> nn.Sequential:
    return nn.Sequential(
        nn.Flatten(), nn.Linear(64, 12), nn.ReLU(), nn.Dropout(0.0), nn.Linear(12, 10)
    )


def client_weights(model: nn.Module, clients: int) -> list[torch.Tensor]:
    """K different weight sets: the model's, moved by a different random step per client."""
    generator = torch.Generator().manual_seed(1)
    return [
        (p.detach() + 0.3 * torch.randn((clients, *p.shape), generator=generator, dtype=p.dtype))
        for p in model.parameters()
    ]


@pytest.mark.parametrize(
    ("factory", "image_shape"),
    [
        (lambda: SmallCNN((1, 8, 8), 10, channels=(4, 8)), (64,)),
        (sequential_cnn, (1, 8, 8)),
        (sequential_mlp, (1, 8, 8)),
    ],
    ids=["SmallCNN", "Sequential-CNN", "Sequential-MLP"],
)
def test_the_stacked_forward_is_each_clients_forward(factory, image_shape) -> None:
    model = seeded(factory)
    names = [name for name, _ in model.named_parameters()]
    forward = stacked_forward(model, names)
    assert forward is not None
    clients, batch = 3, 5
    stacked = [w.requires_grad_() for w in client_weights(model, clients)]
    images = tiny_digits(clients * batch)[0].images.reshape(clients, batch, *image_shape)
    labels = torch.arange(clients * batch).reshape(clients, batch) % 10
    logits = forward(dict(zip(names, stacked, strict=True)), images)
    assert logits.shape == (clients, batch, 10)
    losses = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="none")
    grads = torch.autograd.grad(losses.view(clients, batch).mean(1).sum(), stacked)
    for k in range(clients):
        own = [w[k].detach().clone().requires_grad_() for w in stacked]
        alone = torch.func.functional_call(model, dict(zip(names, own, strict=True)), (images[k],))
        torch.testing.assert_close(logits[k], alone, rtol=0, atol=1e-12)
        own_grads = torch.autograd.grad(F.cross_entropy(alone, labels[k]), own)
        for g, h in zip(grads, own_grads, strict=True):
            torch.testing.assert_close(g[k], h, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "factory",
    [
        lambda: SmallCNN((1, 8, 8), 10, channels=(4,), dropout=0.5),  # random: vmap decides
        lambda: nn.Sequential(nn.Flatten(), nn.Linear(64, 10), nn.BatchNorm1d(10)),  # buffers
        lambda: nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect")),
        lambda: nn.Sequential(nn.Flatten(), nn.Linear(64, 10), nn.Tanh()),
        lambda: MLP(64, 10),  # not a Sequential itself: the generic vmap path
    ],
    ids=["dropout", "batchnorm", "reflect-padding", "tanh", "MLP"],
)
def test_models_with_other_layers_are_left_to_vmap(factory) -> None:
    model = factory()
    assert stacked_forward(model, [name for name, _ in model.named_parameters()]) is None


def clients_of_sizes(sizes: list[int]) -> list[tuple[int, torch.Tensor, torch.Tensor, int]]:
    train, _ = tiny_digits(sum(sizes))
    clients, start = [], 0
    for k, size in enumerate(sizes):
        rows = slice(start, start + size)
        clients.append((k, train.images[rows], train.labels[rows], client_seed(0, 1, k)))
        start += size
    return clients


@pytest.mark.parametrize(
    ("factory", "config"),
    [
        (
            lambda: SmallCNN((1, 8, 8), 10, channels=(3, 4)),
            ClientConfig(optimizer="adam", lr=0.01, epochs=2, batch_size=10),
        ),
        (
            lambda: SmallCNN((1, 8, 8), 10, channels=(3, 4)),
            ClientConfig(optimizer="momentum", lr=0.05, epochs=2, batch_size=10, proximal_mu=0.2),
        ),
        (lambda: MLP(64, 10, hidden=(8,)), ClientConfig(lr=0.1, epochs=2, batch_size=10)),
        (lambda: SmallCNN((1, 8, 8), 10, channels=(3, 4)), fedsgd(lr=0.3)),
    ],
    ids=["cnn-adam", "cnn-momentum-fedprox", "mlp-vmap", "cnn-fedsgd"],
)
def test_clients_of_unequal_size_train_stacked_as_if_alone(factory, config) -> None:
    """n_k = 11, 20, 14: two batches of B = 10 each epoch for every one of them (FedSGD: one
    full batch), so they stack; the padded examples must change nothing."""
    model = seeded(factory)
    names = [name for name, _ in model.named_parameters()]
    weights = [p.detach() for p in model.parameters()]
    clients = clients_of_sizes([11, 20, 14])
    stacked = train_vectorized(model, names, weights, clients, config)
    alone = train_looped(model, names, weights, clients, config)
    for s, lone in zip(stacked, alone, strict=True):
        assert (s.client, s.size) == (lone.client, lone.size)
        assert s.loss == pytest.approx(lone.loss, rel=1e-12)
        moved = max(float((a - w).abs().max()) for a, w in zip(lone.weights, weights, strict=True))
        assert moved > 1e-4
        for a, b in zip(s.weights, lone.weights, strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


def test_clients_with_different_update_counts_do_not_stack() -> None:
    model = seeded(lambda: SmallCNN((1, 8, 8), 10, channels=(3, 4)))
    names = [name for name, _ in model.named_parameters()]
    clients = clients_of_sizes([10, 11])  # one batch of B = 10 against two
    with pytest.raises(ValueError, match="equally many local updates"):
        train_vectorized(
            model, names, [p.detach() for p in model.parameters()], clients, ClientConfig()
        )


def test_evaluation_through_the_stacked_forward_is_the_models() -> None:
    from descent.federated import FederatedConfig, Federation, iid

    train, test = tiny_digits(60)
    model = seeded(lambda: SmallCNN((1, 8, 8), 10, channels=(3, 4)))
    federation = Federation(model, train, test, iid(train.labels.numpy(), 2), FederatedConfig())
    loss, accuracy = federation.evaluate(test)
    with torch.no_grad():
        logits = model(test.images)
    assert loss == pytest.approx(float(F.cross_entropy(logits, test.labels)), rel=1e-12)
    assert accuracy == float((logits.argmax(1) == test.labels).double().mean())
