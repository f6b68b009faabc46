"""Client training: E local epochs of mini-batch updates with batch B on the client's own data,
starting from the global weights w_t, with any descent update rule and schedule.

Client k minimizes (FedProx, Li et al. 2020, arXiv 1812.06127, when μ > 0)

    h_k(w) = F_k(w) + (μ/2) ‖w − w_t‖²,   F_k = mean cross-entropy over a batch of client k

by u_k = E·⌈n_k/B⌉ updates (B = None: full batch, one update per epoch), the examples reshuffled
each epoch by a generator seeded with (seed, round, client): the same client in the same round
sees the same batches whichever path trains it. Each client starts a fresh optimizer each round
(clients are stateless, as in McMahan et al. 2017); a schedule runs over the local update count.

Two paths give the same weights:

- looped: one client after the other;
- vectorized: clients with the same update count u_k are trained together: their weights are
  stacked on a leading client axis, one call runs every client's forward pass (the stacked
  forward of :mod:`descent.federated.stacked` where descent writes the model's layers out, else
  ``torch.func.vmap`` of ``functional_call``), one backward of the sum of their losses gives every
  client's gradient, and one descent optimizer steps the stacked tensors. Their n_k may differ:
  each batch is padded to the group's widest and a client's loss is the mean over its own
  examples (a 0/1 mask), so each client takes exactly its looped steps. That is exact for the
  elementwise rules (:data:`ELEMENTWISE_RULES`, from each rule's ``elementwise`` flag): the
  stacked step is each client's step side by side (the step counter and schedule are shared,
  and equal, within a group). Rules that reduce over a whole tensor
  (LAMB's and LARS's trust ratios, Adafactor's factored moments, Muon's orthogonalization,
  Prodigy's global d estimate) would mix the clients of a stack, so their clients are looped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap
from torch.nn import functional as F

from descent import optim, validate
from descent.federated.stacked import StackedForward, stack_weights, stacked_forward
from descent.optim.base import LearningRate

#: the rules whose clients may train stacked (``DescentOptimizer.elementwise``: each entry's update
#: reads only that entry's gradient and state); the others train one client after the other
ELEMENTWISE_RULES = frozenset(name for name, rule in optim.OPTIMIZERS.items() if rule.elementwise)


@dataclass(frozen=True)
class ClientConfig:
    """How each client trains in a round.

    Args:
        optimizer: any descent update rule by name (``descent.optim.OPTIMIZERS``).
        lr: a float or a schedule of the local update number.
        epochs: E, local passes over the client's data.
        batch_size: B; None is B = ∞ (the full local batch).
        proximal_mu: FedProx's μ ≥ 0 (0: plain FedAvg).
        options: other hyperparameters of the rule (momentum, betas, …).
    """

    optimizer: str = "sgd"
    lr: LearningRate = 0.05
    epochs: int = 5
    batch_size: int | None = 10
    proximal_mu: float = 0.0
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        validate.choice(self.optimizer, "client optimizer", optim.OPTIMIZERS)
        validate.positive_int(self.epochs, "local epochs E")
        if self.batch_size is not None:
            validate.positive_int(self.batch_size, "local batch B")
        validate.nonnegative(self.proximal_mu, "FedProx μ")

    def updates(self, size: int) -> int:
        """u = E · ⌈n_k / B⌉ local updates for a client of ``size`` examples."""
        per_epoch = 1 if self.batch_size is None else math.ceil(size / self.batch_size)
        return self.epochs * per_epoch

    @property
    def vectorizable(self) -> bool:
        """Whether clients with equal update counts may train stacked (the rule is elementwise)."""
        key = validate.choice(self.optimizer, "client optimizer", optim.OPTIMIZERS)
        return key in ELEMENTWISE_RULES

    def make_optimizer(self, params: list[Tensor]) -> optim.DescentOptimizer:
        return optim.create(self.optimizer, params, lr=self.lr, **self.options)


def fedsgd(lr: LearningRate = 0.1) -> ClientConfig:
    """FedSGD (McMahan et al. 2017): each client takes one full-batch gradient step (E = 1,
    B = ∞, plain SGD); averaging those weights is one step of gradient descent with the
    n_k-weighted average gradient."""
    return ClientConfig(optimizer="sgd", lr=lr, epochs=1, batch_size=None)


def client_seed(seed: int, round_number: int, client: int) -> int:
    """The seed of client ``client``'s batch order in round ``round_number``."""
    return int(np.random.SeedSequence([seed, round_number, client]).generate_state(1)[0])


def epoch_orders(size: int, config: ClientConfig, seed: int) -> list[Tensor]:
    """The order of the client's examples in each local epoch (B = ∞: their stored order)."""
    if config.batch_size is None:
        return [torch.arange(size)] * config.epochs
    generator = torch.Generator().manual_seed(seed)
    return [torch.randperm(size, generator=generator) for _ in range(config.epochs)]


def batch_order(size: int, config: ClientConfig, seed: int) -> list[Tensor]:
    """The example indices of every local update, in order (one tensor per update)."""
    batch = size if config.batch_size is None else config.batch_size
    return [step for order in epoch_orders(size, config, seed) for step in order.split(batch)]


#: One client's work in a round: (client id, images, labels, the seed of its batch order).
ClientData = tuple[int, Tensor, Tensor, int]


@dataclass
class ClientUpdate:
    """What a client sends back: its weights, n_k, and its mean local training loss."""

    client: int
    weights: list[Tensor]
    size: int
    loss: float


def _with_proximal_term(
    data_loss: Callable[..., Tensor], mu: float, total: Callable[[Tensor], Tensor]
) -> Callable[..., Any]:
    """The client objective h_k = F_k + (μ/2)‖w − w_t‖² (FedProx; μ = 0 is FedAvg's F_k) around
    ``data_loss(weights, x, y, mask)``; ``total`` sums a squared difference to one number per
    client. The returned ``loss(weights, anchor, x, y, mask=None)`` gives (h_k, F_k detached)."""

    def loss(
        weights: tuple[Tensor, ...],
        anchor: tuple[Tensor, ...],
        x: Tensor,
        y: Tensor,
        mask: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        value = data_loss(weights, x, y, mask)
        objective = value
        if mu > 0:
            objective = objective + 0.5 * mu * sum(
                total((w - a) ** 2) for w, a in zip(weights, anchor, strict=True)
            )
        return objective, value.detach()

    return loss


def _loss_function(model: nn.Module, names: Sequence[str], mu: float) -> Callable[..., Any]:
    """One client's objective h_k and loss F_k on a batch; ``mask`` (0/1 per example, or None)
    marks the examples that are real when the batch is padded to a stacked group's width."""

    def cross_entropy(
        weights: tuple[Tensor, ...], x: Tensor, y: Tensor, mask: Tensor | None
    ) -> Tensor:
        logits = functional_call(model, dict(zip(names, weights, strict=True)), (x,))
        if mask is None:
            return F.cross_entropy(logits, y)
        return (F.cross_entropy(logits, y, reduction="none") * mask).sum() / mask.sum()

    return _with_proximal_term(cross_entropy, mu, lambda square: square.sum())


def _stacked_loss_function(
    forward: StackedForward, names: Sequence[str], mu: float
) -> Callable[..., Any]:
    """The loss of K clients at once (the same values as vmap of :func:`_loss_function`): each
    client's mean cross-entropy over its batch, and its proximal term."""

    def cross_entropy(
        weights: tuple[Tensor, ...], x: Tensor, y: Tensor, mask: Tensor | None
    ) -> Tensor:
        logits = forward(dict(zip(names, weights, strict=True)), x)
        each = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(y.shape)
        return each.mean(1) if mask is None else (each * mask).sum(1) / mask.sum(1)

    return _with_proximal_term(cross_entropy, mu, lambda square: square.flatten(1).sum(1))


def _descend(
    objective_of: Callable[..., tuple[Tensor, Tensor]],
    weights: list[Tensor],
    anchor: tuple[Tensor, ...],
    rule: optim.DescentOptimizer,
    batches: Iterable[tuple[Tensor, Tensor, Tensor | None]],
) -> Tensor:
    """The local updates: each batch's gradient by plain autograd (of the sum of the losses when
    clients are stacked: client k's weights reach only client k's loss), then one step of the
    rule. Returns the training losses, one row per update."""
    losses = []
    for images, labels, mask in batches:
        objective, loss = objective_of(tuple(weights), anchor, images, labels, mask)
        grads = torch.autograd.grad(objective.sum(), weights)
        for weight, g in zip(weights, grads, strict=True):
            # the rule's in-place kernels run several times faster when the gradient is laid out
            # as its weight (a channels-last convolution may hand back another layout)
            weight.grad = g if g.stride() == weight.stride() else torch.empty_like(weight).copy_(g)
        rule.step()
        losses.append(loss)
    return torch.stack(losses)


def train_looped(
    model: nn.Module,
    names: Sequence[str],
    global_weights: Sequence[Tensor],
    clients: Sequence[ClientData],
    config: ClientConfig,
) -> list[ClientUpdate]:
    """Train each client in turn."""
    # plain autograd: ~1.2× faster than torch.func.grad for these small steps
    objective_of = _loss_function(model, names, config.proximal_mu)
    anchor = tuple(w.detach() for w in global_weights)
    updates = []
    for client, images, labels, seed in clients:
        weights = [w.detach().clone().requires_grad_() for w in global_weights]
        batches = (
            (images[index], labels[index], None) for index in batch_order(len(labels), config, seed)
        )
        losses = _descend(objective_of, weights, anchor, config.make_optimizer(weights), batches)
        updates.append(
            ClientUpdate(client, [w.detach() for w in weights], len(labels), float(losses.mean()))
        )
    return updates


def stacked_batches(
    images: Sequence[Tensor],
    labels: Sequence[Tensor],
    orders: Sequence[Sequence[Tensor]],
    batch_size: int | None,
) -> Iterable[tuple[Tensor, Tensor, Tensor | None]]:
    """The stacked batches (K, b, ...) of K clients with the same update count, one per update.

    ``orders[k][e]`` is client k's example order in epoch e. Each epoch gathers every client's
    examples once, in that order, padded to the largest n_k: then update j's batch is the slice
    [jB, (j + 1)B) of every client's row, exactly the looped client's j-th batch, followed in a
    shorter last batch by padding that the mask (None when no client is padded) leaves out."""
    sizes = [len(y) for y in labels]
    widest = max(sizes)
    count = len(sizes)
    rows = torch.arange(count)[:, None]
    positions = torch.arange(widest)
    mask = None
    if min(sizes) < widest:
        mask = (positions < torch.tensor(sizes)[:, None]).to(images[0].dtype)

    def padded(tensors: Sequence[Tensor]) -> Tensor:  # (K, widest, ...), zeros after n_k
        if mask is None:
            return torch.stack(list(tensors))
        return torch.stack(
            [F.pad(x, (0, 0) * (x.dim() - 1) + (0, widest - len(x))) for x in tensors]
        )

    padded_images, padded_labels = padded(images), padded(labels)
    step = widest if batch_size is None else batch_size
    for epoch in zip(*orders, strict=True):
        index = padded(epoch)
        epoch_images, epoch_labels = padded_images[rows, index], padded_labels[rows, index]
        for start in range(0, widest, step):
            chunk = slice(start, start + step)
            yield (
                epoch_images[:, chunk],
                epoch_labels[:, chunk],
                None if mask is None else mask[:, chunk],
            )


def train_vectorized(
    model: nn.Module,
    names: Sequence[str],
    global_weights: Sequence[Tensor],
    clients: Sequence[ClientData],
    config: ClientConfig,
) -> list[ClientUpdate]:
    """Train clients with the same update count E·⌈n_k/B⌉ together (a leading client axis).

    Their n_k may differ: every batch is padded to the group's widest, and each client's loss
    is the mean over its own examples only, so each client takes exactly its looped steps."""
    counts = {config.updates(len(labels)) for _, _, labels, _ in clients}
    if len(counts) != 1:
        raise ValueError(
            f"vectorized clients must take equally many local updates, got {sorted(counts)}"
        )
    count = len(clients)
    # the forward pass written out for the stacked clients where descent knows the model's layers
    # (descent.federated.stacked), else vmapped; the backward plain autograd (~1.3× faster than
    # vmap(grad(...)) here)
    forward = stacked_forward(model, names)
    if forward is not None:
        objectives = _stacked_loss_function(forward, names, config.proximal_mu)
    else:
        one_client = _loss_function(model, names, config.proximal_mu)
        unpadded = vmap(one_client, in_dims=(0, None, 0, 0))
        padded = vmap(one_client, in_dims=(0, None, 0, 0, 0))

        def objectives(
            weights: tuple[Tensor, ...],
            anchor: tuple[Tensor, ...],
            x: Tensor,
            y: Tensor,
            mask: Tensor | None,
        ) -> tuple[Tensor, Tensor]:
            return (
                unpadded(weights, anchor, x, y)
                if mask is None
                else padded(weights, anchor, x, y, mask)
            )

    anchor = tuple(w.detach() for w in global_weights)
    if forward is not None:
        stacked = stack_weights(model, names, global_weights, count)
    else:
        stacked = [
            w.detach().unsqueeze(0).repeat(count, *([1] * w.dim())).requires_grad_()
            for w in global_weights
        ]
    orders = [epoch_orders(len(labels), config, seed) for _, _, labels, seed in clients]
    batches = stacked_batches(
        [c[1] for c in clients], [c[2] for c in clients], orders, config.batch_size
    )
    losses = _descend(objectives, stacked, anchor, config.make_optimizer(stacked), batches)
    mean_losses = losses.mean(0)
    return [
        ClientUpdate(
            client,
            [w[i].detach().contiguous() for w in stacked],
            len(labels),
            float(mean_losses[i]),
        )
        for i, (client, _, labels, _) in enumerate(clients)
    ]


__all__ = [
    "ELEMENTWISE_RULES",
    "ClientConfig",
    "ClientData",
    "ClientUpdate",
    "batch_order",
    "client_seed",
    "epoch_orders",
    "fedsgd",
    "stacked_batches",
    "train_looped",
    "train_vectorized",
]
