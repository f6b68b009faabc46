"""The least-squares loss of the lecture, its gradient, the exact optimum, and the step size
that makes full-batch gradient descent converge without tuning.

    J(w) = Σᵢ (yⁱ − Σⱼ wⱼ φⱼ(xⁱ))² = ‖y − Φw‖²
    ∂J/∂wⱼ = −2 Σᵢ (yⁱ − ŷⁱ) φⱼ(xⁱ),   i.e. ∇J = −2 Φᵀ(y − Φw)

(the slides drop the minus sign; the step is w ← w − λ∇J). With ``reduction="mean"`` both are
divided by n. J is convex, so gradient descent with a small enough step reaches the global
optimum, the least-squares solution.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

Reduction = Literal["sum", "mean"]


def _scale(n: int, reduction: Reduction) -> float:
    if reduction not in ("sum", "mean"):
        raise ValueError(f"loss_reduction must be 'sum' or 'mean', got {reduction!r}")
    return 1.0 if reduction == "sum" else 1.0 / n


def loss(Phi: Tensor, y: Tensor, w: Tensor, reduction: Reduction = "sum") -> Tensor:
    """J(w) = Σᵢ (yⁱ − φ(xⁱ)ᵀw)² (or its mean)."""
    residual = y - Phi @ w
    return (residual @ residual) * _scale(len(y), reduction)


def gradient(Phi: Tensor, y: Tensor, w: Tensor, reduction: Reduction = "sum") -> Tensor:
    """∇J(w) = −2 Φᵀ(y − Φw) (or its mean): the analytic gradient."""
    return -2.0 * (Phi.T @ (y - Phi @ w)) * _scale(len(y), reduction)


@dataclass(frozen=True)
class Gram:
    """ΦᵀΦ, Φᵀy and yᵀy: with them a full-batch gradient and loss cost O(k²), not O(nk).

    ∇J(w) = 2(ΦᵀΦ w − Φᵀy) and J(w) = yᵀy − 2(Φᵀy)ᵀw + wᵀΦᵀΦw (times 1/n for "mean"); the
    iterates are those of gradient descent on J computed the plain way, up to rounding.
    """

    gram: Tensor
    moment: Tensor
    total: Tensor
    n: int

    @classmethod
    def of(cls, Phi: Tensor, y: Tensor) -> Gram:
        return cls(Phi.T @ Phi, Phi.T @ y, y @ y, len(y))

    def gradient(self, w: Tensor, reduction: Reduction = "sum") -> Tensor:
        return 2.0 * (self.gram @ w - self.moment) * _scale(self.n, reduction)

    def loss(self, w: Tensor, reduction: Reduction = "sum") -> Tensor:
        value = self.total - 2.0 * (self.moment @ w) + w @ (self.gram @ w)
        return value.clamp_min(0.0) * _scale(self.n, reduction)


@dataclass(frozen=True)
class LeastSquares:
    """The exact optimum: weights w* and J(w*)."""

    weights: Tensor
    loss: float
    rank: int


def least_squares(Phi: Tensor, y: Tensor, reduction: Reduction = "sum") -> LeastSquares:
    """w* = argmin ‖y − Φw‖² by an SVD-based solver (LAPACK gelsd): stable for ill-conditioned
    and rank-deficient Φ, where it returns the minimum-norm solution."""
    Phi64, y64 = Phi.to(torch.float64), y.to(torch.float64)
    solution = torch.linalg.lstsq(Phi64, y64.unsqueeze(1), driver="gelsd")
    weights = solution.solution.squeeze(1)
    return LeastSquares(weights, float(loss(Phi64, y64, weights, reduction)), int(solution.rank))


def largest_eigenvalue(
    gram: Tensor | Callable[[Tensor], Tensor],
    iterations: int = 50,
    seed: int = 0,
    size: int | None = None,
) -> float:
    """λ_max of a symmetric positive semi-definite matrix by power iteration (a lower estimate
    that tightens with iterations; callers keep a safety margin). ``gram`` is the matrix or a
    function v ↦ Gv (then ``size`` is its order), e.g. v ↦ Φᵀ(Φv) without forming ΦᵀΦ."""
    apply = gram if callable(gram) else gram.__matmul__
    order = size if callable(gram) else len(gram)
    if order is None:
        raise ValueError("largest_eigenvalue needs size when given a function")
    generator = torch.Generator().manual_seed(seed)
    vector = torch.randn(order, generator=generator, dtype=torch.float64)
    vector /= vector.norm()
    estimate = 0.0
    for _ in range(iterations):
        product = apply(vector)
        norm = float(product.norm())
        if norm == 0.0:
            return 0.0
        estimate = float(vector @ product)
        vector = product / norm
    return max(estimate, float(vector @ apply(vector)))


def lipschitz_step(
    Phi: Tensor,
    mode: str,
    batch_size: int,
    reduction: Reduction = "sum",
    gram: Tensor | None = None,
) -> float:
    """1/L for the batches a mode draws, L the Lipschitz constant of the batch gradient.

    Full batch: L = 2 λ_max(ΦᵀΦ) (÷ n for "mean"), λ_max by power iteration. The step 1/L is
    half the largest stable step 2/L, which leaves room for the power iteration's underestimate.
    One example or B examples: the batch Hessian 2 Φ_bᵀΦ_b has λ_max ≤ 2 min(λ_max(ΦᵀΦ),
    Σ_{i∈b} ‖φⁱ‖²), and Σ_{i∈b} ‖φⁱ‖² is at most the sum of the B largest ‖φⁱ‖²: 1/L with that
    bound is stable for every batch any shuffle can draw (÷ B for "mean").
    """
    n = len(Phi)
    if gram is None:  # v ↦ Φᵀ(Φv): two passes over Φ per iteration, no k × k matrix
        top = largest_eigenvalue(lambda v: Phi.T @ (Phi @ v), size=Phi.shape[1])
    else:
        top = largest_eigenvalue(gram)
    if mode == "full":
        lipschitz = 2.0 * top * _scale(n, reduction)
    else:
        size = 1 if mode == "sgd" else min(batch_size, n)
        row_norms = (Phi * Phi).sum(dim=1)
        heaviest_batch = float(row_norms.topk(size).values.sum())
        lipschitz = 2.0 * min(1.05 * top, heaviest_batch) * _scale(size, reduction)
    return 1.0 / lipschitz if lipschitz > 0 else 1.0
