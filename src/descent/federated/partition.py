"""Splitting a data set among K clients: IID, pathological non-IID shards, Dirichlet label skew,
unbalanced sizes. Every split is a pure function of (labels, K, seed) and prints as a table of
examples and labels per client.

- IID (McMahan et al. 2017): shuffle, deal K nearly equal parts.
- Shards (McMahan et al. 2017, "pathological non-IID"): sort by label, cut K·s shards of equal
  size, give each client s of them at random (s = 2: most clients see two digits).
- Dirichlet(α) (Hsu, Qi & Brown 2019, arXiv 1909.06335): for each class c, split its examples
  among the clients in proportions p_c ~ Dir(α·1_K); small α = strong label skew, α → ∞ = IID.
- Unbalanced: IID labels, sizes n_k ∝ exp(N(0, σ²)) (a lognormal spread, every client ≥ 1).

Example::

    >>> from descent.federated import partition
    >>> split = partition("shards", labels, clients=100, seed=0)
    >>> print(split)                       # examples and labels per client
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from descent import validate
from descent.errors import InputError

PARTITIONS = ("iid", "shards", "dirichlet", "unbalanced")


@dataclass(frozen=True)
class Partition:
    """Which training examples each client holds (``indices[k]``: row numbers into the data)."""

    kind: str
    indices: tuple[np.ndarray, ...]
    labels: np.ndarray  # every example's label, to print label counts

    @property
    def clients(self) -> int:
        return len(self.indices)

    @property
    def sizes(self) -> np.ndarray:
        """n_k for every client."""
        return np.array([len(index) for index in self.indices], dtype=np.int64)

    def label_counts(self) -> np.ndarray:
        """(K, classes) examples of each label per client."""
        classes = int(self.labels.max()) + 1 if len(self.labels) else 0
        return np.stack(
            [np.bincount(self.labels[index], minlength=classes) for index in self.indices]
        )

    def __str__(self) -> str:
        counts = self.label_counts()
        sizes = self.sizes
        lines = [
            f"{self.kind}: {self.clients} clients, {int(sizes.sum())} examples, n_k from "
            f"{int(sizes.min())} to {int(sizes.max())}, labels per client from "
            f"{int((counts > 0).sum(1).min())} to {int((counts > 0).sum(1).max())}",
            "client  n_k  examples per label",
        ]
        shown = list(range(min(self.clients, 10)))
        for k in shown:
            lines.append(f"{k:>6} {sizes[k]:>4}  {' '.join(f'{c:>3}' for c in counts[k])}")
        if self.clients > len(shown):
            lines.append(f"   … {self.clients - len(shown)} more")
        return "\n".join(lines)


def _check(labels: np.ndarray, clients: int) -> None:
    validate.positive_int(clients, "the number of clients K")
    if clients > len(labels):
        raise InputError(
            f"the number of clients K must be at most the number of examples "
            f"({len(labels)}), got {clients}"
        )


def iid(labels: Sequence[int] | np.ndarray, clients: int, seed: int = 0) -> Partition:
    """Shuffle the examples and deal K parts whose sizes differ by at most one."""
    labels = np.asarray(labels)
    _check(labels, clients)
    order = np.random.default_rng(seed).permutation(len(labels))
    return Partition("iid", tuple(np.sort(p) for p in np.array_split(order, clients)), labels)


def shards(
    labels: Sequence[int] | np.ndarray, clients: int, per_client: int = 2, seed: int = 0
) -> Partition:
    """McMahan et al.'s pathological non-IID split: sort by label, cut ``clients · per_client``
    equal shards (the remainder of the division is left out), give each client ``per_client``
    shards drawn at random."""
    labels = np.asarray(labels)
    _check(labels, clients)
    validate.positive_int(per_client, "shards per client")
    count = clients * per_client
    if count > len(labels):
        raise InputError(
            f"shards: {clients} clients × {per_client} shards = {count} shards cannot be cut "
            f"from {len(labels)} examples; use at most {len(labels)} shards"
        )
    rng = np.random.default_rng(seed)
    # a stable sort with a random tie-break: examples of one label in random order
    order = np.lexsort((rng.permutation(len(labels)), labels))
    size = len(labels) // count
    pieces = [order[i * size : (i + 1) * size] for i in range(count)]
    dealt = rng.permutation(count).reshape(clients, per_client)
    return Partition(
        f"shards ({per_client} per client, {size} examples each)",
        tuple(np.sort(np.concatenate([pieces[s] for s in row])) for row in dealt),
        labels,
    )


def dirichlet(
    labels: Sequence[int] | np.ndarray, clients: int, alpha: float = 0.5, seed: int = 0
) -> Partition:
    """Hsu et al.'s label skew: each class split among clients in proportions ~ Dir(α·1).

    Draws are repeated (from the same seeded stream) until every client holds at least one
    example, as is usual, so no client is empty."""
    labels = np.asarray(labels)
    _check(labels, clients)
    alpha = validate.positive(alpha, "the Dirichlet concentration α")
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    for _ in range(1000):
        parts: list[list[np.ndarray]] = [[] for _ in range(clients)]
        for label in classes:
            members = rng.permutation(np.flatnonzero(labels == label))
            shares = rng.dirichlet(np.full(clients, alpha))
            cuts = (np.cumsum(shares)[:-1] * len(members)).round().astype(int)
            for k, piece in enumerate(np.split(members, cuts)):
                parts[k].append(piece)
        indices = tuple(np.sort(np.concatenate(p)) for p in parts)
        if min(len(i) for i in indices) > 0:
            return Partition(f"dirichlet (α = {alpha:g})", indices, labels)
    raise InputError(
        f"dirichlet: α = {alpha:g} left a client empty in 1000 draws for {clients} clients and "
        f"{len(labels)} examples; use fewer clients or a larger α"
    )


def unbalanced(
    labels: Sequence[int] | np.ndarray, clients: int, sigma: float = 1.0, seed: int = 0
) -> Partition:
    """IID labels with lognormal sizes: n_k ∝ exp(N(0, σ²)), rounded, each client ≥ 1."""
    labels = np.asarray(labels)
    _check(labels, clients)
    sigma = validate.positive(sigma, "the lognormal spread σ")
    rng = np.random.default_rng(seed)
    weights = np.exp(rng.normal(0.0, sigma, clients))
    spare = len(labels) - clients  # one example per client first, the rest by weight
    sizes = 1 + np.floor(weights / weights.sum() * spare).astype(int)
    sizes[np.argsort(-weights)[: len(labels) - sizes.sum()]] += 1
    order = rng.permutation(len(labels))
    return Partition(
        f"unbalanced (σ = {sigma:g})",
        tuple(np.sort(p) for p in np.split(order, np.cumsum(sizes)[:-1])),
        labels,
    )


def partition(
    spec: str, labels: Sequence[int] | np.ndarray, clients: int, seed: int = 0
) -> Partition:
    """A split by name: ``iid``, ``shards`` (or ``shards:S``, S shards per client),
    ``dirichlet:α`` (α defaults to 0.5), ``unbalanced`` (or ``unbalanced:σ``)."""
    name, _, argument = str(spec).partition(":")
    kind = validate.choice(name, "partition", PARTITIONS)
    if kind == "iid":
        if argument:
            raise InputError(f"partition iid takes no argument, got {spec!r}")
        return iid(labels, clients, seed)
    try:
        value = float(argument) if argument else None
    except ValueError:
        raise InputError(f"partition {kind} takes a number after ':', got {spec!r}") from None
    if kind == "shards":
        if value is not None and not value.is_integer():
            raise InputError(f"shards per client must be a positive integer, got {argument!r}")
        return shards(labels, clients, 2 if value is None else int(value), seed)
    if kind == "dirichlet":
        return dirichlet(labels, clients, 0.5 if value is None else value, seed)
    return unbalanced(labels, clients, 1.0 if value is None else value, seed)


__all__ = ["PARTITIONS", "Partition", "dirichlet", "iid", "partition", "shards", "unbalanced"]
