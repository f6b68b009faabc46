"""The server: the n_k-weighted average of the clients' weights and the server optimizers of Reddi
et al. (2021), *Adaptive Federated Optimization* (ICLR, arXiv 2003.00295), on the pseudo-gradient.

Round t, sampled clients S, n_S = Σ_{k∈S} n_k:

    w̄ = Σ_{k∈S} (n_k / n_S) w_k                 (McMahan et al. 2017, FedAvg's average)
    Δ_t = w̄ − w_t                                (the average client move)

The server treats −Δ_t as a gradient and takes one step of a descent update rule on w_t:

    FedAvg      w ← w + η Δ                                   (η = 1: w ← w̄, McMahan's FedAvg)
    FedAvgM     v ← β v + (−Δ) ; w ← w − η v                  (Hsu et al. 2019; descent Momentum)
    FedAdagrad  v ← v + Δ² ; w ← w + η Δ / (√v + τ)           (descent Adagrad, ε = τ outside √,
                                                                v₀ = τ², β₁ = 0)
    FedAdam     m ← β₁m + (1−β₁)Δ ; v ← β₂v + (1−β₂)Δ²
                w ← w + η √(1−β₂ᵗ)/(1−β₁ᵗ) · m / (√v + τ)     (descent Adam, ε-hat form, ε = τ)
    FedYogi     m as Adam ; v ← v − (1−β₂) Δ² sign(v − Δ²)
                w ← w + η m / (√v + τ)                        (:class:`Yogi` below, v₀ = τ²)

Where descent differs from the paper's Algorithm 2, and why:

- FedAdam is bias-corrected here (descent's Adam, with τ where Keras puts ε̂); the paper's
  Algorithm 2 has no bias correction. The two differ by the factor √(1−β₂ᵗ)/(1−β₁ᵗ) on step t:
  with the paper's β₁ = 0.9, β₂ = 0.99 it is exactly 1 at t = 1, dips to 0.47 at t = 13, is 0.80
  at t = 100 and → 1, so the corrected rule is the paper's with a gentler warm-up over the first
  hundred rounds and the same limit; keeping descent's Adam keeps one Adam in the code base.
  Flower's FedAdam is bias-corrected as well (with its round counter one ahead of t).
- FedAdagrad uses β₁ = 0 (Adagrad as McMahan & Streeter wrote it, as descent's rule has it); the
  paper's grid also reports it with momentum. A server momentum with Adagrad is FedAdam with
  β₂ → 1; use ``fedadam`` for that.
- FedYogi is the paper's form (no bias correction). descent.optim has no Yogi rule, so the class
  here is one, on descent's optimizer shell (schedules, state_dict, resume).

Example::

    >>> server = ServerOptimizer("fedadam", [w.clone() for w in global_weights], lr=0.01)
    >>> server.step(averaged)            # w ← w + η m̂/(√v̂ + τ), in place
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor

from descent import optim, validate
from descent.optim.base import (
    DescentOptimizer,
    Group,
    Host,
    LearningRate,
    State,
    validate_betas,
)
from descent.optim.options import hyperparameters
from descent.optim.reference import apply_reference

SERVER_RULES = ("fedavg", "fedavgm", "fedadagrad", "fedadam", "fedyogi")
SERVER_ALIASES = {
    "avg": "fedavg",
    "sgd": "fedavg",
    "avgm": "fedavgm",
    "momentum": "fedavgm",
    "adagrad": "fedadagrad",
    "adam": "fedadam",
    "yogi": "fedyogi",
}
#: the server learning rate η when none is given: FedAvg and FedAvgM move by the whole average,
#: the adaptive rules by the paper's best-grid values for image tasks.
DEFAULT_SERVER_LR = {
    "fedavg": 1.0,
    "fedavgm": 1.0,
    "fedadagrad": 0.1,
    "fedadam": 0.01,
    "fedyogi": 0.01,
}
#: τ, the adaptivity of the paper (its ε), 1e-3 in its grid
DEFAULT_TAU = 1e-3


def weighted_average(weights: Sequence[Sequence[Tensor]], sizes: Sequence[int]) -> list[Tensor]:
    """w̄ = Σ_k (n_k / n) w_k, layer by layer (the FedAvg aggregation)."""
    if len(weights) == 0:
        raise ValueError("the weighted average needs at least one client")
    total = float(sum(sizes))
    layers = len(weights[0])
    return [
        sum(client[layer] * (size / total) for client, size in zip(weights, sizes, strict=True))
        for layer in range(layers)
    ]  # type: ignore[misc]


def yogi_reference(
    param: Tensor,
    grad: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """Yogi (Zaheer et al., NeurIPS 2018), the form of Reddi et al.'s Algorithm 2:

        m ← β₁m + (1−β₁)g ;  v ← v − (1−β₂) g² sign(v − g²) ;  θ ← θ − η m / (√v + ε)

    Returns (θ, m, v)."""
    exp_avg = beta1 * exp_avg + (1 - beta1) * grad
    square = grad * grad
    exp_avg_sq = exp_avg_sq - (1 - beta2) * square * torch.sign(exp_avg_sq - square)
    return param - lr * exp_avg / (exp_avg_sq.sqrt() + eps), exp_avg, exp_avg_sq


class Yogi(DescentOptimizer):
    """Yogi: Adam's first moment, an additive second moment that cannot grow too fast.

        m ← β₁m + (1−β₁)g
        v ← v − (1−β₂) g² sign(v − g²)
        θ ← θ − η m / (√v + ε)               η = 0.01, β = (0.9, 0.99), ε = 1e-3, v₀ = ε²

    Zaheer, Reddi, Sachan, Kale, Kumar, *Adaptive Methods for Nonconvex Optimization* (NeurIPS
    2018); the server rule FedYogi of Reddi et al. (2021). No bias correction (their Algorithm 2).

    Example::

        >>> opt = Yogi(model.parameters(), lr=0.01)
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: LearningRate = 1e-2,
        betas: tuple[float, float] = (0.9, 0.99),
        eps: float = 1e-3,
        initial_accumulator_value: float | None = None,
    ) -> None:
        super().__init__(params, {**hyperparameters(locals()), "impl": "reference"})

    def _validate(self, group: Group) -> None:
        super()._validate(group)
        group["betas"] = validate_betas(group["betas"])
        validate.positive(group["eps"], "eps (τ)")

    def _init_state(self, param: Tensor, group: Group) -> State:
        start = group["initial_accumulator_value"]
        start = group["eps"] ** 2 if start is None else start
        return {
            "exp_avg": torch.zeros_like(param),
            "exp_avg_sq": torch.full_like(param, start),
        }

    def _reference_update(
        self, group: Group, param: Tensor, grad: Tensor, state: State, host: Host, lr: float
    ) -> None:
        tensors = ("exp_avg", "exp_avg_sq")
        apply_reference(yogi_reference, group, param, grad, state, host, lr, tensors)

    _fast_update = None  # type: ignore[assignment]  # impl is always "reference"


def server_rule(
    name: str,
    params: list[Tensor],
    lr: float | None = None,
    momentum: float = 0.9,
    betas: tuple[float, float] = (0.9, 0.99),
    tau: float = DEFAULT_TAU,
) -> DescentOptimizer:
    """The descent update rule behind a server optimizer (see the module docstring)."""
    key = validate.choice(name, "server optimizer", SERVER_RULES, SERVER_ALIASES)
    rate = DEFAULT_SERVER_LR[key] if lr is None else validate.positive(lr, "server lr")
    if key == "fedavg":
        return optim.create("sgd", params, lr=rate)
    if key == "fedavgm":
        return optim.create("momentum", params, lr=rate, momentum=momentum)
    tau = validate.positive(tau, "server τ")
    if key == "fedadagrad":
        return optim.create(
            "adagrad",
            params,
            lr=rate,
            eps=tau,
            eps_inside_sqrt=False,
            initial_accumulator_value=tau**2,
        )
    if key == "fedadam":
        return optim.create("adam", params, lr=rate, betas=betas, eps=tau, epsilon_hat=True)
    return Yogi(params, lr=rate, betas=betas, eps=tau)


class ServerOptimizer:
    """Holds the global weights and moves them with a server rule on the pseudo-gradient.

    ``step(averaged)`` sets g = w − w̄ = −Δ and runs the rule; FedAvg with η = 1 assigns w ← w̄
    directly (the same value, without the rounding of w − (w − w̄)).

    Example::

        >>> server = ServerOptimizer("fedavgm", weights, lr=1.0, momentum=0.9)
        >>> server.step(weighted_average(client_weights, sizes))
    """

    def __init__(
        self, name: str, weights: Sequence[Tensor], lr: float | None = None, **options: Any
    ) -> None:
        self.name = validate.choice(name, "server optimizer", SERVER_RULES, SERVER_ALIASES)
        self.weights = [w.detach().clone() for w in weights]
        self.rule = server_rule(self.name, self.weights, lr, **options)
        self.lr = self.rule.param_groups[0]["lr"]

    @torch.no_grad()
    def step(self, averaged: Sequence[Tensor]) -> list[Tensor]:
        """One server update from the clients' average; returns the new global weights."""
        if self.name == "fedavg" and self.lr == 1.0:
            for weight, mean in zip(self.weights, averaged, strict=True):
                weight.copy_(mean)
            self.rule.param_groups[0]["step"] += 1
            return self.weights
        for weight, mean in zip(self.weights, averaged, strict=True):
            weight.grad = weight - mean
        self.rule.step()
        for weight in self.weights:
            weight.grad = None
        return self.weights

    def state_dict(self) -> dict[str, Any]:
        return {"weights": [w.clone() for w in self.weights], "rule": self.rule.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            for weight, saved in zip(self.weights, state["weights"], strict=True):
                weight.copy_(saved)
        self.rule.load_state_dict(state["rule"])


__all__ = [
    "DEFAULT_SERVER_LR",
    "DEFAULT_TAU",
    "SERVER_RULES",
    "ServerOptimizer",
    "Yogi",
    "server_rule",
    "weighted_average",
    "yogi_reference",
]
