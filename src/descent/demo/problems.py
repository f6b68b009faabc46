"""The tour `descent demo` prints: every update rule on the same convex problem, with the exact
optimum beside it, so a person sees how far each rule gets in the same number of steps."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from sklearn.datasets import load_diabetes

from descent import optim
from descent.landscapes.functions import ADAPTIVE_RATES

# Learning rates that suit this problem (standardized features and target, mean squared error);
# the other hyperparameters are each rule's defaults, the lecture's. AdamW's decoupled decay would
# pull the weights away from the least-squares optimum, so it is switched off here (and Muon's,
# whose non-matrix tensors take AdamW, and SOAP's).
DEMO_LEARNING_RATES: dict[str, float] = {
    "sgd": 0.1,
    "momentum": 0.05,
    "nesterov": 0.05,
    **ADAPTIVE_RATES,
    "radam": 0.05,
    "lion": 0.01,
    "lamb": 0.1,
    # LARS scales each step to ηκ‖w‖: from w₀ = 0 it crawls (a large-batch rule for deep nets)
    "lars": 0.05,
    "schedule_free_sgd": 0.1,
    "schedule_free_adamw": 0.05,
    "prodigy": 1.0,
    "muon": 0.05,
    "adafactor": 0.5,
    # SOAP steps a vector as Adam (its Shampoo rotation is for matrices)
    "soap": 0.05,
}


@dataclass(frozen=True)
class RuleResult:
    name: str
    lr: float
    steps: int
    final_loss: float
    optimum_loss: float
    seconds: float

    @property
    def relative_gap(self) -> float:
        return (self.final_loss - self.optimum_loss) / self.optimum_loss


def diabetes_design() -> tuple[torch.Tensor, torch.Tensor]:
    """Standardized diabetes features with a bias column, and the standardized target."""
    features, target = load_diabetes(return_X_y=True)
    X = torch.tensor(features, dtype=torch.float64)
    y = torch.tensor(target, dtype=torch.float64)
    X = (X - X.mean(0)) / X.std(0)
    y = (y - y.mean()) / y.std()
    return torch.cat([torch.ones(len(X), 1, dtype=torch.float64), X], dim=1), y


def compare_rules(steps: int = 300) -> list[RuleResult]:
    """Full-batch training of J(w) = mean (y − Φw)², w₀ = 0, with every rule."""
    Phi, y = diabetes_design()
    w_star = torch.linalg.lstsq(Phi, y.unsqueeze(1)).solution.squeeze(1)
    optimum = float(((y - Phi @ w_star) ** 2).mean())
    results = []
    for name, lr in DEMO_LEARNING_RATES.items():
        w = torch.zeros(Phi.shape[1], dtype=torch.float64, requires_grad=True)
        extra = {"weight_decay": 0.0} if name in ("adamw", "muon", "soap") else {}
        opt = optim.create(name, [w], lr=lr, **extra)
        start = time.perf_counter()
        for _ in range(steps):
            opt.zero_grad()
            loss = ((y - Phi @ w) ** 2).mean()
            loss.backward()
            opt.step()
        seconds = time.perf_counter() - start
        final = float(((y - Phi @ w.detach()) ** 2).mean())
        results.append(RuleResult(name, lr, steps, final, optimum, seconds))
    return results
